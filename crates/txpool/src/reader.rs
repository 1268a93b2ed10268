//! What readers of the pool (RPC) may ask of it, and how the pool reads account state.

use crate::{AccountState, PoolContent, PoolStatus, PooledTransaction, TxPool};
use alloy_primitives::{Address, B256, U256};
use consort_storage::StateSnapshot;
use std::sync::Arc;

/// Read access to the pool: its pending and queued transactions and lookups by hash or
/// sender, in the manner of reth's pool traits.
pub trait PoolReader {
    /// Pending and queued counts.
    fn status(&self) -> PoolStatus;
    /// Pending and queued transactions by sender and nonce.
    fn content(&self) -> (PoolContent, PoolContent);
    /// A pooled transaction by hash.
    fn transaction(&self, hash: &B256) -> Option<Arc<PooledTransaction>>;
    /// The nonce the sender's next transaction should use, if the pool holds any of its.
    fn pending_nonce(&self, sender: &Address) -> Option<u64>;
}

impl PoolReader for TxPool {
    fn status(&self) -> PoolStatus {
        TxPool::status(self)
    }

    fn content(&self) -> (PoolContent, PoolContent) {
        TxPool::content(self)
    }

    fn transaction(&self, hash: &B256) -> Option<Arc<PooledTransaction>> {
        self.get(hash)
    }

    fn pending_nonce(&self, sender: &Address) -> Option<u64> {
        TxPool::pending_nonce(self, sender)
    }
}

/// Any state snapshot serves as the pool's account state.
impl<S: StateSnapshot> AccountState for S {
    fn nonce_and_balance(&self, address: &Address) -> Result<(u64, U256), String> {
        Ok(self
            .basic_account(address)
            .map_err(|e| e.to_string())?
            .map_or((0, U256::ZERO), |a| (a.nonce, a.balance)))
    }
}
