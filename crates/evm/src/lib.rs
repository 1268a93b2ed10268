//! Execution: revm over consort's storage. Executes blocks (receipts, logs, bloom, roots, gas,
//! QBFT block rewards), recovers senders in parallel, answers read-only calls and gas estimates
//! against any state in the history window, and runs Ethereum state tests.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod call;
mod db;
mod executor;
mod genesis;
mod scratch;
mod spec;
pub mod statetest;
mod validation;

pub use call::{call, estimate_gas, AccountOverride, CallLimits, CallOutcome, CallRequest};
pub use db::{DbError, StoreDb};
pub use executor::{
    bundle_to_changes, execute_block, recover_missing_senders, recover_senders, ExecutedBlock,
    ExecutionError, ExecutionMode, FailedTransaction,
};
pub use genesis::{genesis_changes, init_genesis, GenesisInitError};
pub use scratch::{Scratch, ScratchAccount};
pub use spec::spec_id;
pub use validation::{
    intrinsic_gas, validate_raw_transaction, validate_transaction, TxValidationError,
    ValidTransaction, MAX_INITCODE_SIZE,
};
