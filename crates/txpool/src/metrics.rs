//! Transaction pool metrics, under Besu's names.

use crate::TxPool;
use prometheus::core::Collector;
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// `besu_transaction_pool_*`.
#[derive(Debug, Clone)]
pub struct PoolMetrics {
    /// Transactions in the pool.
    pub transactions: IntGauge,
    /// Transactions per layer (`pending`, `queued`).
    pub by_layer: IntGaugeVec,
    /// Distinct senders.
    pub unique_senders: IntGaugeVec,
    /// Bytes held.
    pub space_used: IntGaugeVec,
    /// Transactions accepted, by source.
    pub added: IntCounterVec,
    /// Transactions removed, by source and operation.
    pub removed: IntCounterVec,
    /// Transactions rejected, by reason.
    pub rejected: IntCounterVec,
}

/// Registers `metric` and returns it. The pool takes `prometheus` directly rather than
/// `consort-metrics`, which brings tokio for its HTTP endpoint.
fn register<M: Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> prometheus::Result<M> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

impl PoolMetrics {
    /// Registers the metrics in `registry`.
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        Ok(PoolMetrics {
            transactions: register(registry, IntGauge::new("besu_transaction_pool_transactions", "Current size of the transaction pool")?)?,
            by_layer: register(registry, IntGaugeVec::new(Opts::new("besu_transaction_pool_number_of_transactions", "The number of transactions currently present in the layer"), &["layer"])?)?,
            unique_senders: register(registry, IntGaugeVec::new(Opts::new("besu_transaction_pool_unique_senders", "The number of senders with at least one transaction currently in the layer"), &["layer"])?)?,
            space_used: register(registry, IntGaugeVec::new(Opts::new("besu_transaction_pool_space_used", "The amount of space used by the transactions in the layer"), &["layer"])?)?,
            added: register(registry, IntCounterVec::new(Opts::new("besu_transaction_pool_transactions_added_total", "Count of transactions added to the transaction pool"), &["source"])?)?,
            removed: register(registry, IntCounterVec::new(Opts::new("besu_transaction_pool_transactions_removed_total", "Count of transactions removed from the transaction pool"), &["source", "operation"])?)?,
            rejected: register(registry, IntCounterVec::new(Opts::new("besu_transaction_pool_rejected_total", "Count of transactions not accepted to the transaction pool"), &["source", "priority", "reason", "layer"])?)?,
        })
    }

    /// Sets the size gauges from the pool.
    pub fn observe(&self, pool: &TxPool) {
        let status = pool.status();
        self.transactions.set(pool.len() as i64);
        self.by_layer
            .with_label_values(&["pending"])
            .set(status.pending as i64);
        self.by_layer
            .with_label_values(&["queued"])
            .set(status.queued as i64);
        self.unique_senders
            .with_label_values(&["txpool"])
            .set(pool.sender_count() as i64);
        self.space_used
            .with_label_values(&["txpool"])
            .set(pool.bytes() as i64);
    }
}
