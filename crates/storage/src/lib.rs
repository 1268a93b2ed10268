//! consort's RocksDB storage: blocks, receipts, the canonical chain, flat account and storage
//! state, path-keyed trie nodes for incremental state roots and proofs, and per-block change sets
//! for a window of historical state. Every block lands in one atomic write batch. Readers see the
//! chain through [`BlockReader`] and [`StateReader`], which an in-memory [`MemoryChain`] also
//! implements.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod changes;
mod db;
mod memory;
mod metrics;
mod new_block;
mod reader;
mod schema;
mod state;

pub use changes::{Account, AccountChange, StateChanges};
pub use db::{BlockLocation, Store, StoreOptions, TxHashes};
pub use memory::{MemoryChain, MemoryState};
pub use new_block::NewBlock;
pub use reader::{BlockReader, StateReader, StateSnapshot};
pub use state::{AccountProof, PreparedState, StateView};

use alloy_primitives::B256;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB reported an error.
    #[error("database: {0}")]
    Db(#[from] rocksdb::Error),
    /// A stored value could not be decoded: the database is corrupt or from another version.
    #[error("corrupt {table} entry: {reason}")]
    Corrupt {
        /// The table (column family).
        table: &'static str,
        /// What could not be decoded.
        reason: String,
    },
    /// The trie is inconsistent with the flat state.
    #[error("state trie: {0}")]
    Trie(#[from] consort_trie::TrieError),
    /// State for this block is outside the history window.
    #[error("state for block {requested} is not available: history is kept from block {oldest} to {head}")]
    StateUnavailable {
        /// The block asked for.
        requested: u64,
        /// The oldest block whose state can be read.
        oldest: u64,
        /// The head block.
        head: u64,
    },
    /// Proofs are built from the trie, which is stored for the head block only.
    #[error("proofs are served for the head block {head} only, not block {requested}")]
    ProofUnavailable {
        /// The block asked for.
        requested: u64,
        /// The head block.
        head: u64,
    },
    /// A block does not extend the current head.
    #[error("block {number} ({hash}) does not extend the head {head_number} ({head_hash})")]
    NotOnHead {
        /// The block's number.
        number: u64,
        /// The block's hash.
        hash: B256,
        /// The current head number.
        head_number: u64,
        /// The current head hash.
        head_hash: B256,
    },
    /// Prepared state was computed against a different head.
    #[error("state was prepared on block {prepared_on}, but the head is {head}")]
    StalePreparedState {
        /// The head the state changes were prepared on.
        prepared_on: u64,
        /// The current head.
        head: u64,
    },
    /// The database holds no genesis block yet.
    #[error("the database is empty: initialize it with a genesis block first")]
    Empty,
    /// The store's metrics could not be registered.
    #[error("storage metrics: {0}")]
    Metrics(#[from] consort_metrics::MetricsError),
}

/// Result of storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
