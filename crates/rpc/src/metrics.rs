//! JSON-RPC metrics, under Besu's names.

use consort_metrics::{
    register, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, Result,
};

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
