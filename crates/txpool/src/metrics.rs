//! Transaction pool metrics, under Besu's names.

use crate::{Removed, TxPool};

consort_metrics::metrics! {
    /// `besu_transaction_pool_*`: the pool's size, and what enters, leaves and is refused.
    pub struct PoolMetrics {
        /// Current size of the transaction pool
        pub transactions: IntGauge = "besu_transaction_pool_transactions",
        /// The number of transactions currently present in the layer (one layer, `txpool`)
        pub by_layer: IntGaugeVec = "besu_transaction_pool_number_of_transactions" ["layer"],
        /// Transactions in the pool: pending (executable now) or queued (behind a nonce gap)
        pub by_status: IntGaugeVec = "consort_transaction_pool_transactions" ["status"],
        /// The number of transactions currently present in the layer, by type
        pub by_type: IntGaugeVec =
            "besu_transaction_pool_number_of_transactions_by_type" ["layer", "type"],
        /// The number of senders with at least one transaction currently in the layer
        pub unique_senders: IntGaugeVec = "besu_transaction_pool_unique_senders" ["layer"],
        /// The amount of space used by the transactions in the layer
        pub space_used: IntGaugeVec = "besu_transaction_pool_space_used" ["layer"],
        /// Count of transactions added to the transaction pool
        pub added: IntCounterVec = "besu_transaction_pool_transactions_added_total" ["source"],
        /// Count of transactions removed from the transaction pool
        pub removed: IntCounterVec =
            "besu_transaction_pool_transactions_removed_total" ["source", "operation"],
        /// Count of transactions added to the transaction pool layer
        pub layer_added: IntCounterVec =
            "besu_transaction_pool_added_total" ["source", "priority", "reason", "layer"],
        /// Count of transactions removed from the transaction pool layer
        pub layer_removed: IntCounterVec =
            "besu_transaction_pool_removed_total" ["source", "priority", "operation", "layer"],
        /// Count of transactions not accepted to the transaction pool
        pub rejected: IntCounterVec =
            "besu_transaction_pool_rejected_total" ["source", "priority", "reason", "layer"],
        /// Total number of remote transactions received that were already in the pool
        pub already_seen: IntCounterVec =
            "besu_transaction_pool_remote_transactions_already_seen_total" ["message"],
    }
}

impl PoolMetrics {
    /// Sets the size gauges from the pool and counts what it replaced and evicted.
    pub fn observe(&self, pool: &mut TxPool) {
        let status = pool.status();
        self.transactions.set(pool.len() as i64);
        self.by_layer
            .with_label_values(&["txpool"])
            .set(pool.len() as i64);
        self.by_status
            .with_label_values(&["pending"])
            .set(status.pending as i64);
        self.by_status
            .with_label_values(&["queued"])
            .set(status.queued as i64);
        self.unique_senders
            .with_label_values(&["txpool"])
            .set(pool.sender_count() as i64);
        self.space_used
            .with_label_values(&["txpool"])
            .set(pool.bytes() as i64);
        let Removed { replaced, evicted } = pool.take_removed();
        // The layered pool calls a transaction evicted for room `dropped`.
        for (operation, layered, n) in [
            ("replaced", "replaced", replaced),
            ("evicted", "dropped", evicted),
        ] {
            self.removed
                .with_label_values(&["local", operation])
                .inc_by(n);
            self.layer_removed
                .with_label_values(&["local", "no", layered, "txpool"])
                .inc_by(n);
        }
    }

    /// Sets the per-type gauges, which read every transaction: once per block.
    pub fn observe_types(&self, pool: &TxPool) {
        for (kind, n) in pool.count_by_type() {
            self.by_type
                .with_label_values(&["txpool", kind])
                .set(n as i64);
        }
    }

    /// Counts transactions leaving the pool with a new head (`confirmed` or `invalidated`).
    pub fn left(&self, operation: &str, n: usize) {
        let n = n as u64;
        let legacy = if operation == "invalidated" {
            "invalid"
        } else {
            operation
        };
        self.removed.with_label_values(&["local", legacy]).inc_by(n);
        self.layer_removed
            .with_label_values(&["local", "no", operation, "txpool"])
            .inc_by(n);
    }
}
