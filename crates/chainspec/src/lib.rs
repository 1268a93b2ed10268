//! Besu-format genesis files: parsing (case-insensitive keys, hex or decimal numbers), the fork
//! schedule, the QBFT configuration with its transitions, and the bit-exact genesis block.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod forks;
mod genesis;
mod json;
mod qbft;

pub use forks::{ForkCondition, ForkSchedule, Hardfork};
pub use genesis::{Genesis, GenesisAccount};
pub use qbft::{QbftConfig, QbftParams, QbftTransition, ValidatorSelection};

/// Why a genesis file was rejected. Every variant names the field that failed.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// The file could not be read.
    #[error("cannot read genesis file {path}: {source}")]
    Io {
        /// The path given.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("genesis file is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A field has the wrong type or value.
    #[error("genesis field `{field}`: {reason}")]
    Field {
        /// The field's path, lower-cased as Besu normalizes it (e.g. `config.londonblock`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl GenesisError {
    pub(crate) fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Field {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Result of genesis parsing.
pub type Result<T, E = GenesisError> = std::result::Result<T, E>;
