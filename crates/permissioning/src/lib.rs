//! Node and account permissioning: who may connect and who may transact. The rules come from
//! local allowlist files (Besu's `permissions_config.toml`) and from allowlist contracts read
//! through the evm crate; the network, the transaction pool, block building and block import
//! ask [`Permissions`] and hold no rule of their own.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod local;

pub use local::{AllowlistError, LocalAllowlists, LocalConfig, LocalConfigError};
pub mod contract;
pub mod genesis;
mod metrics;
mod rules;

pub use contract::{ContractError, ContractReader, NodeContractVersion, TxFacts};
pub use metrics::PermissioningMetrics;
pub use rules::{Permissions, PermissionsConfig, PermissionsError, Purpose, TxRefusal};
