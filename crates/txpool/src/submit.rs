//! Submitting a raw transaction: validation against the head state and insertion into the
//! pool, counted in the pool metrics. Telling subscribers and peers is the caller's.

use crate::{AccountState, PoolError, PoolMetrics, PooledTransaction, TxPool};
use alloy_primitives::{Address, U256};
use consort_storage::{StateView, StorageError, Store};
use std::sync::{Arc, Mutex};

/// Where a transaction came from: Besu's `source` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxSource {
    /// From this node's clients (`eth_sendRawTransaction`).
    Local,
    /// From a peer, by gossip.
    Remote,
}

impl TxSource {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            TxSource::Local => "local",
            TxSource::Remote => "remote",
        }
    }
}

/// Why a transaction was not submitted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Another thread panicked while holding the pool.
    #[error("transaction pool lock poisoned")]
    Poisoned,
    /// The head could not be read.
    #[error(transparent)]
    Head(#[from] StorageError),
    /// The head's state could not be read.
    #[error("state of block {number} is not available: {source}")]
    State {
        /// The head block.
        number: u64,
        /// The failure.
        source: StorageError,
    },
    /// The pool refused the transaction.
    #[error(transparent)]
    Pool(#[from] PoolError),
}

impl AccountState for StateView<'_> {
    fn nonce_and_balance(&self, address: &Address) -> Result<(u64, U256), String> {
        Ok(self
            .basic_account(address)
            .map_err(|e| e.to_string())?
            .map_or((0, U256::ZERO), |a| (a.nonce, a.balance)))
    }
}

/// Validates a raw EIP-2718 transaction against the head state of `store` and adds it to
/// `pool`. Refusals by the pool are counted in `metrics.rejected`, acceptances in
/// `metrics.added`.
pub fn submit_transaction(
    pool: &Mutex<TxPool>,
    metrics: &PoolMetrics,
    store: &Store,
    raw: &[u8],
    source: TxSource,
) -> Result<Arc<PooledTransaction>, SubmitError> {
    let result = {
        let mut pool = pool.lock().map_err(|_| SubmitError::Poisoned)?;
        // The head is read under the pool lock: a block committed meanwhile has its pool
        // update queued behind us, which re-reads every sender.
        let header = store.head_header()?;
        let view = store
            .state_at(header.number)
            .map_err(|source| SubmitError::State {
                number: header.number,
                source,
            })?;
        let r = pool.add_raw(raw, &view);
        metrics.observe(&pool);
        r
    };
    match result {
        Ok(tx) => {
            metrics.added.with_label_values(&[source.label()]).inc();
            Ok(tx)
        }
        Err(e) => {
            metrics
                .rejected
                .with_label_values(&[source.label(), "no", e.reason(), "txpool"])
                .inc();
            Err(e.into())
        }
    }
}
