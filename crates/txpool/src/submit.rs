//! Submitting a raw transaction: validation against the head state and insertion into the
//! pool, counted in the pool metrics. Telling subscribers and peers is the caller's.

use crate::{PoolError, PoolMetrics, PooledTransaction, TxPool};
use consort_storage::{BlockReader, StateReader, StorageError};
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
    /// The head or its state could not be read.
    #[error(transparent)]
    Head(#[from] StorageError),
    /// The pool refused the transaction.
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// Validates a raw EIP-2718 transaction against the head state of `chain` and adds it to
/// `pool`. Refusals by the pool are counted in `metrics.rejected`, acceptances in
/// `metrics.added`.
pub fn submit_transaction<C: BlockReader + StateReader + ?Sized>(
    pool: &Mutex<TxPool>,
    metrics: &PoolMetrics,
    chain: &C,
    raw: &[u8],
    source: TxSource,
) -> Result<Arc<PooledTransaction>, SubmitError> {
    let rules = pool.lock().map_err(|_| SubmitError::Poisoned)?.rules();
    // Decoding and the sender's recovery run outside the pool's lock, so submissions from
    // several threads recover signatures in parallel; a transaction already pooled (a gossip
    // duplicate) is refused before its signature is checked.
    let result = match rules.decode(raw) {
        Err(e) => Err(e),
        Ok(tx)
            if pool
                .lock()
                .map_err(|_| SubmitError::Poisoned)?
                .contains(tx.tx_hash()) =>
        {
            Err(PoolError::AlreadyKnown)
        }
        Ok(tx) => match rules.check(tx) {
            Err(e) => Err(e),
            Ok(checked) => {
                let mut pool = pool.lock().map_err(|_| SubmitError::Poisoned)?;
                // The head is read under the pool lock: a block committed meanwhile has its
                // pool update queued behind us, which re-reads every sender.
                let view = chain.head_state()?;
                let r = pool.add_checked(checked, &view);
                metrics.observe(&mut pool);
                r
            }
        },
    };
    match result {
        Ok(tx) => {
            metrics.added.with_label_values(&[source.label()]).inc();
            metrics
                .layer_added
                .with_label_values(&[source.label(), "no", "new", "txpool"])
                .inc();
            Ok(tx)
        }
        Err(e) => {
            if matches!((source, &e), (TxSource::Remote, PoolError::AlreadyKnown)) {
                metrics
                    .already_seen
                    .with_label_values(&["transactions"])
                    .inc();
            }
            metrics
                .rejected
                .with_label_values(&[source.label(), "no", e.reason(), "txpool"])
                .inc();
            Err(e.into())
        }
    }
}
