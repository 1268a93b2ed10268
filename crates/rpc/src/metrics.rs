//! JSON-RPC metrics, under Besu's names.

consort_metrics::metrics! {
    /// `besu_rpc_*`.
    pub struct RpcMetrics {
        /// Time taken to process a JSON-RPC request
        pub request_time: SummaryVec = "besu_rpc_request_time" ["methodName"],
        /// Number of errors per RPC method and RPC error type
        pub errors: IntCounterVec = "besu_rpc_errors_count_total" ["rpcMethod", "errorType"],
        /// Number of subscriptions
        pub subscribe: IntCounterVec = "besu_rpc_subscription_subscribe_total" ["type"],
        /// Number of unsubscriptions
        pub unsubscribe: IntCounterVec = "besu_rpc_subscription_unsubscribe_total" ["type"],
        /// Total number of active RPC HTTP connections
        pub active_http: IntGauge = "besu_rpc_active_http_connection_count",
        /// Total number of active RPC WebSocket connections
        pub active_ws: IntGauge = "besu_rpc_active_ws_connection_count",
        /// Gas used by eth_call, by outcome (success or error)
        pub eth_call_gas: IntCounterVec = "besu_rpc_eth_call_gas_used_total" ["status"],
    }
}

/// One open connection, counted in a gauge until dropped.
pub(crate) struct OpenConnection(consort_metrics::IntGauge);

impl OpenConnection {
    pub(crate) fn new(gauge: &consort_metrics::IntGauge) -> Self {
        gauge.inc();
        OpenConnection(gauge.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}
