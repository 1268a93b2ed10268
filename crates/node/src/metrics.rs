//! Chain metrics under Besu's names (`ethereum_*`, `besu_blockchain_*`, `besu_block_processing_*`).

use consort_metrics::{
    register, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    Result,
};
use consort_primitives::Header;
use std::time::Duration;

/// Chain head and block processing metrics.
#[derive(Debug, Clone)]
pub struct ChainMetrics {
    height: IntGauge,
    best_known: IntGauge,
    head_timestamp: IntGauge,
    head_gas_used: IntGauge,
    head_gas_limit: IntGauge,
    head_tx_count: IntGauge,
    gas_counter: IntCounter,
    tx_counter: IntCounter,
    execution_time_head: IntGauge,
    min_gas_price: Gauge,
    /// Time to build (execute and hash) a proposed block.
    pub build_time: Histogram,
    /// Time to compute a block's state root.
    pub state_root_time: Histogram,
    /// Time to check seals and commit a decided block.
    pub import_time: Histogram,
}

fn seconds_buckets() -> Vec<f64> {
    vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
}

impl ChainMetrics {
    /// Registers the metrics in `registry`.
    pub fn new(registry: &Registry) -> Result<Self> {
        let gauge = |name: &str, help: &str| register(registry, IntGauge::new(name, help)?);
        let counter = |name: &str, help: &str| register(registry, IntCounter::new(name, help)?);
        let histogram = |name: &str, help: &str| {
            register(
                registry,
                Histogram::with_opts(HistogramOpts::new(name, help).buckets(seconds_buckets()))?,
            )
        };
        Ok(ChainMetrics {
            height: gauge(
                "ethereum_blockchain_height",
                "The current height of the canonical chain",
            )?,
            best_known: gauge(
                "ethereum_best_known_block_number",
                "The estimated highest block available",
            )?,
            head_timestamp: gauge(
                "besu_blockchain_chain_head_timestamp",
                "Timestamp from the current chain head",
            )?,
            head_gas_used: gauge(
                "besu_blockchain_chain_head_gas_used",
                "Gas used by the current chain head block",
            )?,
            head_gas_limit: gauge(
                "besu_blockchain_chain_head_gas_limit",
                "Block gas limit of the current chain head block",
            )?,
            head_tx_count: gauge(
                "besu_blockchain_chain_head_transaction_count",
                "Number of transactions in the current chain head block",
            )?,
            gas_counter: counter(
                "besu_blockchain_chain_head_gas_used_counter_total",
                "Counter of gas used by chain head blocks",
            )?,
            tx_counter: counter(
                "besu_blockchain_chain_head_transaction_count_counter_total",
                "Counter of transactions in chain head blocks",
            )?,
            execution_time_head: gauge(
                "besu_block_processing_execution_time_head",
                "Time to execute and commit the head block, in nanoseconds",
            )?,
            min_gas_price: register(
                registry,
                Gauge::new("ethereum_min_gas_price", "Minimum gas price in wei")?,
            )?,
            build_time: histogram(
                "consort_block_build_duration_seconds",
                "Time to build and execute a proposed block",
            )?,
            state_root_time: histogram(
                "besu_block_processing_state_root_calculation_duration_seconds",
                "Time to calculate a block's state root",
            )?,
            import_time: histogram(
                "consort_block_import_duration_seconds",
                "Time to check seals and commit a decided block",
            )?,
        })
    }

    /// Records a new canonical head.
    pub fn on_new_head(&self, header: &Header, import: Duration) {
        let n = header.number as i64;
        self.height.set(n);
        self.best_known.set(n.max(self.best_known.get()));
        self.head_timestamp.set(header.timestamp as i64);
        self.head_gas_used.set(header.gas_used as i64);
        self.head_gas_limit.set(header.gas_limit as i64);
        self.gas_counter.inc_by(header.gas_used);
        self.import_time.observe(import.as_secs_f64());
        self.execution_time_head
            .set(import.as_nanos().min(i64::MAX as u128) as i64);
    }

    /// Records the transaction count of the new head.
    pub fn on_head_transactions(&self, count: usize) {
        self.head_tx_count.set(count as i64);
        self.tx_counter.inc_by(count as u64);
    }

    /// A peer announced a block at `number`.
    pub fn saw_block(&self, number: u64) {
        let n = i64::try_from(number).unwrap_or(i64::MAX);
        self.best_known.set(n.max(self.best_known.get()));
    }

    /// Records the configured minimum gas price.
    pub fn set_min_gas_price(&self, wei: u128) {
        self.min_gas_price.set(wei as f64);
    }
}

/// Consensus and sync metrics: `consort_qbft_*`, and Besu's `besu_synchronizer_in_sync`.
#[derive(Debug, Clone)]
pub struct QbftMetrics {
    /// The height being decided.
    pub height: IntGauge,
    /// The current round.
    pub round: IntGauge,
    /// Rounds this validator moved past without a decision.
    pub round_changes: IntCounter,
    /// Consensus messages by `type` (proposal, prepare, commit, round_change) and `outcome`
    /// (sent, accepted, ignored, rejected).
    pub messages: IntCounterVec,
    /// From the start of a height (its block timer) to the import of its block.
    pub time_to_finality: Histogram,
    /// 1 when caught up with the best peer, 0 while syncing.
    pub in_sync: IntGauge,
    /// Blocks imported by sync (not decided here).
    pub synced_blocks: IntCounter,
    /// Inputs from the network dropped because the driver's queue was full.
    pub queue_dropped: IntCounter,
}

impl QbftMetrics {
    /// Registers the metrics in `registry`.
    pub fn new(registry: &Registry) -> Result<Self> {
        let gauge = |name: &str, help: &str| register(registry, IntGauge::new(name, help)?);
        let counter = |name: &str, help: &str| register(registry, IntCounter::new(name, help)?);
        let metrics = QbftMetrics {
            height: gauge("consort_qbft_height", "The height QBFT is deciding")?,
            round: gauge("consort_qbft_current_round", "The current QBFT round")?,
            round_changes: counter(
                "consort_qbft_round_changes_total",
                "Rounds left without a decision",
            )?,
            messages: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "consort_qbft_messages_total",
                        "QBFT messages by type and outcome",
                    ),
                    &["type", "outcome"],
                )?,
            )?,
            time_to_finality: register(
                registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "consort_qbft_time_to_finality_seconds",
                        "Time from the start of a height to the import of its block",
                    )
                    .buckets(seconds_buckets()),
                )?,
            )?,
            in_sync: gauge(
                "besu_synchronizer_in_sync",
                "1 when the node has caught up with the best peer, 0 while syncing",
            )?,
            synced_blocks: counter(
                "consort_sync_imported_blocks_total",
                "Blocks imported by sync",
            )?,
            queue_dropped: counter(
                "consort_qbft_queue_dropped_total",
                "Network inputs dropped because the consensus queue (messagequeuelimit) was full",
            )?,
        };
        metrics.in_sync.set(1);
        Ok(metrics)
    }

    /// Counts a consensus message of wire code `code`.
    pub fn message(&self, code: u8, outcome: &str) {
        let kind = match code {
            0x12 => "proposal",
            0x13 => "prepare",
            0x14 => "commit",
            0x15 => "round_change",
            _ => "invalid",
        };
        self.messages.with_label_values(&[kind, outcome]).inc();
    }
}
