//! The transaction pool: validates transactions against the head state, keeps them per sender as
//! pending (executable now) or queued (waiting for a lower nonce), bounds them per sender and in
//! total, and hands the block builder the best executable transactions first. Submission reads
//! the head state from storage; the pool metrics are declared here.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod error;
mod metrics;
mod pool;
mod reader;
mod submit;

pub use error::PoolError;
pub use metrics::PoolMetrics;
pub use pool::{
    AccountState, Admission, CheckedTransaction, HeadContext, PoolConfig, PoolContent, PoolStatus,
    PooledTransaction, Removed, TxPool, TxRules,
};
pub use reader::PoolReader;
pub use submit::{submit_transaction, SubmitError, TxSource};
