//! Chain, consensus and sync metrics: Besu's names where Besu has them (`ethereum_*`,
//! `besu_blockchain_*`, `besu_block_processing_*`, `besu_synchronizer_*`, `besu_peers_*`),
//! `consort_qbft_*`, `consort_block_*` and `consort_sync_*` where it has none.

use alloy_consensus::{ReceiptEnvelope, TxReceipt};
use consort_metrics::metrics;
use consort_primitives::Header;
use std::time::Duration;

metrics! {
    /// Chain head and block processing metrics.
    pub struct ChainMetrics {
        /// The current height of the canonical chain
        height: IntGauge = "ethereum_blockchain_height",
        /// The estimated highest block available
        best_known: IntGauge = "ethereum_best_known_block_number",
        /// The current finalized block number (QBFT finality is immediate: the head)
        finalized: IntGauge = "ethereum_blockchain_finalized_block",
        /// The current safe block number (the head, as for finalized)
        safe: IntGauge = "ethereum_blockchain_safe_block",
        /// Total difficulty of the chainhead (each QBFT block has difficulty 1)
        difficulty: IntGauge = "besu_blockchain_difficulty",
        /// Timestamp from the current chain head
        head_timestamp: IntGauge = "besu_blockchain_chain_head_timestamp",
        /// Gas used by the current chain head block
        head_gas_used: IntGauge = "besu_blockchain_chain_head_gas_used",
        /// Block gas limit of the current chain head block
        head_gas_limit: IntGauge = "besu_blockchain_chain_head_gas_limit",
        /// Number of transactions in the current chain head block
        head_tx_count: IntGauge = "besu_blockchain_chain_head_transaction_count",
        /// Counter of gas used by chain head blocks
        gas_counter: IntCounter = "besu_blockchain_chain_head_gas_used_counter_total",
        /// Counter of transactions in chain head blocks
        tx_counter: IntCounter = "besu_blockchain_chain_head_transaction_count_counter_total",
        /// Time to execute the head block and calculate its state root, in nanoseconds
        execution_time_head: IntGauge = "besu_block_processing_execution_time_head",
        /// Minimum gas price in wei
        min_gas_price: Gauge = "ethereum_min_gas_price",
        /// Time to build and execute a proposed block
        pub build_time: Histogram = "consort_block_build_duration_seconds",
        /// Time to execute a block's transactions, proposed or received
        pub execution_time: Histogram = "consort_block_execution_duration_seconds",
        /// Time to calculate a block's state root
        pub state_root_time: Summary = "besu_block_processing_state_root_calculation_duration_seconds",
        /// Time to check seals and commit a decided block
        import_time: Histogram = "consort_block_import_duration_seconds",
        /// Blocks stored, by how they came (decided here, from a peer, by sync, by import)
        pub imported: IntCounterVec = "consort_block_imported_total" ["source"],
        /// Blocks refused, by where they came from
        pub refused: IntCounterVec = "consort_block_refused_total" ["source"],
        /// Transactions in stored blocks, by receipt status (success or failed)
        tx_outcomes: IntCounterVec = "consort_block_transactions_total" ["status"],
        /// Logs emitted by transactions in stored blocks
        logs: IntCounter = "consort_block_logs_total",
        /// Block number each validator last proposed (the head's beneficiary)
        last_proposed: IntGaugeVec = "consort_qbft_validator_last_proposed_block" ["validator"],
        /// Blocks each validator proposed since this node started
        proposed_by: IntCounterVec = "consort_qbft_validator_proposed_blocks_total" ["validator"],
    }
}

impl ChainMetrics {
    /// Sets the head gauges from the stored head at startup (the counters count imports).
    pub fn set_head(&self, header: &Header) {
        let n = i64::try_from(header.number).unwrap_or(i64::MAX);
        self.height.set(n);
        self.finalized.set(n);
        self.safe.set(n);
        self.difficulty.set(n.saturating_add(1));
        self.best_known.set(n.max(self.best_known.get()));
        self.head_timestamp.set(header.timestamp as i64);
        self.head_gas_used.set(header.gas_used as i64);
        self.head_gas_limit.set(header.gas_limit as i64);
    }

    /// Records a new canonical head, executed in `execution` and committed in `import`.
    pub fn on_new_head(&self, header: &Header, import: Duration, execution: Duration) {
        self.set_head(header);
        let n = i64::try_from(header.number).unwrap_or(i64::MAX);
        self.gas_counter.inc_by(header.gas_used);
        self.import_time.observe(import.as_secs_f64());
        self.execution_time_head
            .set(execution.as_nanos().min(i64::MAX as u128) as i64);
        if header.number > 0 {
            let proposer = format!("{:#x}", header.beneficiary);
            self.last_proposed.with_label_values(&[&proposer]).set(n);
            self.proposed_by.with_label_values(&[&proposer]).inc();
        }
    }

    /// Records the transactions of the new head from their receipts.
    pub fn on_head_receipts(&self, receipts: &[ReceiptEnvelope]) {
        self.head_tx_count.set(receipts.len() as i64);
        self.tx_counter.inc_by(receipts.len() as u64);
        let failed = receipts.iter().filter(|r| !r.status()).count();
        let outcome = |status: &str, n: usize| {
            self.tx_outcomes
                .with_label_values(&[status])
                .inc_by(n as u64)
        };
        outcome("success", receipts.len() - failed);
        outcome("failed", failed);
        self.logs
            .inc_by(receipts.iter().map(|r| r.logs().len() as u64).sum());
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

metrics! {
    /// Consensus and sync metrics.
    pub struct QbftMetrics {
        /// The height QBFT is deciding
        pub height: IntGauge = "consort_qbft_height",
        /// The current QBFT round
        pub round: IntGauge = "consort_qbft_current_round",
        /// Rounds left without a decision
        pub round_changes: IntCounter = "consort_qbft_round_changes_total",
        /// Round timers that expired in the round they were set for
        pub round_timeouts: IntCounter = "consort_qbft_round_timeouts_total",
        /// QBFT messages by type and outcome
        pub messages: IntCounterVec = "consort_qbft_messages_total" ["type", "outcome"],
        /// Blocks this validator built to propose
        pub blocks_built: IntCounter = "consort_qbft_blocks_built_total",
        /// Proposals from other validators checked, by verdict (valid or invalid)
        pub proposals_checked: IntCounterVec = "consort_qbft_proposals_checked_total" ["verdict"],
        /// Time from the start of a height to the import of its block
        pub time_to_finality: Histogram = "consort_qbft_time_to_finality_seconds",
        /// Validators in the set deciding the current height
        pub validators: IntGauge = "consort_qbft_validators",
        /// 1 when this node is in the current validator set
        pub is_validator: IntGauge = "consort_qbft_is_validator",
        /// Network inputs dropped because the consensus queue (messagequeuelimit) was full
        pub queue_dropped: IntCounter = "consort_qbft_queue_dropped_total",
        /// 1 when the node has caught up with the best peer, 0 while syncing
        pub in_sync: IntGauge = "besu_synchronizer_in_sync",
        /// Blocks imported by sync
        pub synced_blocks: IntCounter = "consort_sync_imported_blocks_total",
        /// Time spent in each sync phase
        pub sync_duration: HistogramVec = "besu_synchronizer_sync_duration" ["name"],
        /// Internal sync task execution time
        pub sync_task: SummaryVec = "besu_synchronizer_task" ["taskName"],
        /// Items processed by each chain download step
        pub pipeline: IntCounterVec =
            "besu_synchronizer_chain_download_pipeline_processed_total" ["step", "action"],
        /// Time peers took to answer a request
        pub request_time: SummaryVec = "besu_peers_request_time" ["taskName"],
        /// Requests to peers in flight
        pub inflight: IntGaugeVec = "besu_peers_inflight_request_gauge" ["taskName"],
        /// Requests to peers that failed or timed out
        pub request_timeouts: IntCounterVec = "besu_peers_timeout_total" ["taskName"],
        /// Answers from peers that failed the checks
        pub invalid_responses: IntCounterVec = "besu_peers_invalid_response_total" ["taskName"],
    }
}

impl QbftMetrics {
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
