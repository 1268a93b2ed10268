//! JSON-RPC and transaction pool metrics, under Besu's names.

use consort_metrics::{
    register, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    Result,
};
use consort_txpool::TxPool;

/// `besu_rpc_*`.
#[derive(Debug, Clone)]
pub struct RpcMetrics {
    /// Processing time per method (Besu exports a summary; a histogram here, same `_count`).
    pub request_time: HistogramVec,
    /// Error responses per method and error type.
    pub errors: IntCounterVec,
    /// Subscriptions opened per type.
    pub subscribe: IntCounterVec,
    /// Subscriptions closed per type.
    pub unsubscribe: IntCounterVec,
}

impl RpcMetrics {
    /// Registers the metrics in `registry`.
    pub fn new(registry: &Registry) -> Result<Self> {
        Ok(RpcMetrics {
            request_time: register(
                registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "besu_rpc_request_time",
                        "Time taken to process a JSON-RPC request",
                    )
                    .buckets(vec![
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0,
                    ]),
                    &["methodName"],
                )?,
            )?,
            errors: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "besu_rpc_errors_count_total",
                        "Number of errors per RPC method and RPC error type",
                    ),
                    &["rpcMethod", "errorType"],
                )?,
            )?,
            subscribe: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "besu_rpc_subscription_subscribe_total",
                        "Number of subscriptions",
                    ),
                    &["type"],
                )?,
            )?,
            unsubscribe: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "besu_rpc_subscription_unsubscribe_total",
                        "Number of unsubscriptions",
                    ),
                    &["type"],
                )?,
            )?,
        })
    }
}

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

impl PoolMetrics {
    /// Registers the metrics in `registry`.
    pub fn new(registry: &Registry) -> Result<Self> {
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
