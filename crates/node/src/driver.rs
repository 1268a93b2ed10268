//! Runs the pure QBFT core: carries out its outputs (timers, block building, proposal checks,
//! imports) and feeds back the results. The driver is generic over its [`Host`]: the clock,
//! timers and the network. The node plugs in tokio and libp2p ([`TokioHost`]); the simulator
//! plugs in virtual time and its seeded network. The chain (build, check, commit) is the real
//! [`Chain`] in both.

use crate::chain::{Chain, ExecutedProposal};
use crate::metrics::QbftMetrics;
use crate::sync::SyncStatus;
use alloy_primitives::B256;
use consort_chainspec::Genesis;
use consort_metrics::trace::{self, Scope, Span, SpanKind};
use consort_network::{NetworkHandle, Topic};
use consort_primitives::{commit_seal_digest, Header};
use consort_qbft::Persisted;
use consort_qbft::{Block, Head, Input, Output, Qbft, QbftTimings};
use consort_rpc::RpcContext;
use consort_storage::NewBlock;
use consort_txpool::HeadContext;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::runtime::Handle;
use tokio::sync::mpsc::{self, Receiver};
use tokio::sync::oneshot;

/// Most executed proposals kept while waiting for a decision.
const MAX_CACHED_PROPOSALS: usize = 16;

/// Messages to the driver thread.
#[derive(Debug)]
pub enum DriverEvent {
    /// Feed this to the core.
    Input(Input),
    /// The block timer for `height` fired (the driver looks at the pool then).
    BlockTimer {
        /// The height it was armed for.
        height: u64,
    },
    /// A sealed block from a peer (gossip or sync): import it if it extends the head. The
    /// reply says whether it was imported (false: already known) or why it was refused.
    ImportBlock(Box<Block>, Option<oneshot::Sender<Result<bool, String>>>),
    /// Stop after the current step.
    Stop,
}

/// The driver's inbox: bounded by Besu's `messagequeuelimit`. Network inputs that find it full
/// are dropped and counted ([`DriverSender::offer`]); timers, sync imports and stop wait for
/// room ([`DriverSender::send`]), so nothing the node itself needs is lost.
#[derive(Debug, Clone)]
pub struct DriverSender {
    tx: mpsc::Sender<DriverEvent>,
    dropped: consort_metrics::IntCounter,
    queue: consort_metrics::Executor,
}

impl DriverSender {
    /// A queue of `capacity` events; `dropped` counts what [`DriverSender::offer`] dropped and
    /// `queue` follows the queue as an executor pool.
    pub fn channel(
        capacity: usize,
        dropped: consort_metrics::IntCounter,
        queue: consort_metrics::Executor,
    ) -> (DriverSender, Receiver<DriverEvent>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (DriverSender { tx, dropped, queue }, rx)
    }

    /// Queues an input from the network, or drops it if the queue is full. False if dropped.
    pub fn offer(&self, event: DriverEvent) -> bool {
        self.queue.queuing();
        let result = self.tx.try_send(event);
        self.queue.queued(result.is_ok());
        match result {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.inc();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues an event, waiting for room. False once the driver has stopped.
    pub async fn send(&self, event: DriverEvent) -> bool {
        self.queue.queuing();
        let sent = self.tx.send(event).await.is_ok();
        self.queue.queued(sent);
        sent
    }
}

/// What the driver needs besides the chain: time, timers and the network.
pub trait Host {
    /// Wall-clock time in Unix milliseconds.
    fn now_ms(&self) -> u64;
    /// Hands `event` back to the driver after `delay`.
    fn schedule(&self, delay: Duration, event: DriverEvent);
    /// Gossips `data` on `topic`.
    fn publish(&self, topic: Topic, data: Vec<u8>);
    /// Whether to go on carrying out the current step's outputs. The simulator says no to
    /// crash a node part-way through a step; a real host is always alive.
    fn alive(&self) -> bool {
        true
    }
    /// The node rules may have changed: judge connected peers again.
    fn recheck_peers(&self) {}
}

/// The node's host: the system clock, tokio timers, libp2p gossip.
#[derive(Debug, Clone)]
pub struct TokioHost {
    /// Where timers run.
    pub runtime: Handle,
    /// The driver's own queue, for timers.
    pub events: DriverSender,
    /// The peer-to-peer network, if enabled.
    pub network: Option<NetworkHandle>,
}

impl Host for TokioHost {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    fn schedule(&self, delay: Duration, event: DriverEvent) {
        let events = self.events.clone();
        self.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            events.send(event).await;
        });
    }

    fn publish(&self, topic: Topic, data: Vec<u8>) {
        if let Some(network) = &self.network {
            network.publish(topic, data);
        }
    }

    fn recheck_peers(&self) {
        if let Some(network) = &self.network {
            network.recheck_peers();
        }
    }
}

/// Timings of the QBFT configuration in force at `height`.
pub fn timings(genesis: &Genesis, height: u64) -> QbftTimings {
    let Some(q) = genesis.qbft.as_ref() else {
        return QbftTimings {
            block_period_ms: 1_000,
            empty_block_period_ms: 0,
            request_timeout_ms: 4_000,
        };
    };
    let p = q.params_at(height);
    let block_period_ms = if p.block_period_milliseconds > 0 {
        p.block_period_milliseconds
    } else {
        p.block_period_seconds.saturating_mul(1000)
    };
    QbftTimings {
        block_period_ms,
        empty_block_period_ms: p.empty_block_period_seconds.saturating_mul(1000),
        request_timeout_ms: p.request_timeout_seconds.saturating_mul(1000),
    }
}

/// The pool's view of the chain after `head`.
pub fn head_context(genesis: &Genesis, head: &Header) -> HeadContext {
    let period = genesis.qbft.as_ref().map_or(1, |q| {
        q.params_at(head.number.saturating_add(1))
            .min_timestamp_gap()
    });
    let next_ts = head.timestamp.saturating_add(period);
    HeadContext {
        chain_id: genesis.chain_id,
        fork: genesis
            .forks
            .active_at(head.number.saturating_add(1), next_ts),
        base_fee: genesis.child_base_fee(head, next_ts),
        block_gas_limit: head.gas_limit,
    }
}

/// The consensus driver.
#[derive(Debug)]
pub struct Driver<H> {
    core: Qbft,
    chain: Chain,
    rpc: Arc<RpcContext>,
    host: H,
    proposals: HashMap<B256, ExecutedProposal>,
    /// Sync progress: while syncing, the validator sits rounds out.
    sync: Arc<SyncStatus>,
    metrics: QbftMetrics,
    /// The height being decided, its start (Unix ms) and the highest round seen in it.
    height_started: Option<(u64, u64, u32)>,
    /// Wall-clock time the current head was imported, in Unix milliseconds.
    head_at_ms: u64,
    /// The trace span of the round in progress: its height, round and span.
    round_span: Option<(u64, u32, Span)>,
}

/// Restores a validator's persisted consensus state from the store into `core`. Unreadable
/// state is an error: starting with no memory of the rounds it voted in could make a
/// validator vote twice in one of them.
pub fn restore_consensus_state(
    core: &mut Qbft,
    store: &consort_storage::Store,
) -> Result<Option<Persisted>, String> {
    let Some(saved) = store.consensus_state().map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let state = Persisted::decode(&saved).map_err(|e| e.to_string())?;
    core.restore(state.clone());
    Ok(Some(state))
}

impl<H: Host> Driver<H> {
    /// A driver for `core` over `chain`, talking to the world through `host`.
    pub fn new(
        core: Qbft,
        chain: Chain,
        rpc: Arc<RpcContext>,
        host: H,
        sync: Arc<SyncStatus>,
        metrics: QbftMetrics,
    ) -> Self {
        let head_at_ms = host.now_ms();
        Driver {
            core,
            chain,
            rpc,
            host,
            proposals: HashMap::new(),
            sync,
            metrics,
            height_started: None,
            head_at_ms,
            round_span: None,
        }
    }

    /// The chain.
    #[cfg(test)]
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// `xblockperiodmilliseconds` in force at `height`, or 0 when the period is in seconds.
    fn sub_second_period(&self, height: u64) -> u64 {
        self.chain
            .genesis
            .qbft
            .as_ref()
            .map_or(0, |q| q.params_at(height).block_period_milliseconds)
    }

    /// The core's view of the stored head.
    fn head_input(&self) -> Option<Input> {
        let (number, hash) = self.chain.store.head().ok()??;
        let header = self.chain.store.head_header().ok()?;
        Some(Input::NewHead {
            head: Head {
                number,
                hash,
                timestamp: header.timestamp,
                coinbase: header.beneficiary,
                validators: self.chain.validators_after(&header),
            },
            timings: timings(&self.chain.genesis, number.saturating_add(1)),
        })
    }

    /// Starts the core on the stored head.
    pub fn start(&mut self) {
        if let Some(input) = self.head_input() {
            self.step(input);
        }
    }

    /// Handles one event. False on [`DriverEvent::Stop`].
    pub fn handle(&mut self, event: DriverEvent) -> bool {
        match event {
            DriverEvent::Input(input) => {
                if let Input::RoundTimer { height, round, .. } = &input {
                    if self.core.height() == Some(*height) && self.core.round() == Some(*round) {
                        self.metrics.round_timeouts.inc();
                    }
                }
                self.step(input)
            }
            DriverEvent::BlockTimer { height } => {
                let pending = self.rpc.pool.lock().is_ok_and(|p| !p.is_empty());
                self.step(Input::BlockTimer {
                    height,
                    now_ms: self.host.now_ms(),
                    pending_transactions: pending,
                });
            }
            DriverEvent::ImportBlock(block, reply) => {
                let result = self.import_external(&block);
                let imported = &self.chain.metrics.imported;
                match &result {
                    Ok(true) => imported.with_label_values(&["peer"]).inc(),
                    Ok(false) => {}
                    Err(e) => {
                        self.chain
                            .metrics
                            .refused
                            .with_label_values(&["peer"])
                            .inc();
                        tracing::debug!("block {} from a peer refused: {e}", block.header.number);
                    }
                }
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            DriverEvent::Stop => return false,
        }
        true
    }

    /// Runs until [`DriverEvent::Stop`] or until every sender is gone. Blocks the thread.
    pub fn run(mut self, mut rx: Receiver<DriverEvent>, queue: &consort_metrics::Executor) {
        queue.started(1);
        self.start();
        while let Some(event) = rx.blocking_recv() {
            queue.took();
            let go_on = self.handle(event);
            queue.done();
            if !go_on {
                break;
            }
        }
    }

    /// Imports a sealed block received from a peer, then moves the core to the next height.
    fn import_external(&mut self, block: &Block) -> Result<bool, String> {
        let (head, _) = self
            .chain
            .store
            .head()
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        if block.header.number <= head {
            return Ok(false);
        }
        let mut span = Span::start(Scope::Blocks, "importBlock", SpanKind::Internal, None);
        span.set("block.number", block.header.number);
        span.set("block.source", "peer");
        span.set("block.transactions", block.body.transactions.len());
        let entered = span.enter();
        // Seals are checked by `commit`, before anything is written.
        let stored = self
            .chain
            .check(block, self.host.now_ms() / 1000)
            .and_then(|proposal| self.chain.commit(block, proposal))
            .map_err(|e| e.to_string());
        drop(entered);
        let hash = match stored {
            Ok(hash) => hash,
            Err(e) => {
                span.fail(e.clone());
                return Err(e);
            }
        };
        span.set("block.hash", format!("{hash:#x}"));
        drop(span);
        tracing::info!(
            number = block.header.number,
            %hash,
            txs = block.body.transactions.len(),
            "imported block from peers"
        );
        self.proposals.clear();
        self.after_import(block, hash);
        if let Some(input) = self.head_input() {
            self.step(input);
        }
        Ok(true)
    }

    fn step(&mut self, input: Input) {
        // Blocks built, checked and imported in this step belong to the round's span.
        let _entered = self.round_span.as_ref().map(|(_, _, span)| span.enter());
        let mut queue = VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            if let Input::NewHead { head, .. } = &input {
                let m = &self.metrics;
                m.validators.set(head.validators.len() as i64);
                m.is_validator
                    .set(i64::from(head.validators.contains(&self.core.address())));
            }
            let syncing = self.sync.is_syncing();
            let mut persist_failed = false;
            for output in self.core.handle(input) {
                if !self.host.alive() {
                    return;
                }
                match output {
                    Output::ArmBlockTimer { height, at_ms } => {
                        // Block periods under a second count from when the head arrived:
                        // whole-second timestamps cannot pace them.
                        let at_ms = at_ms.max(
                            self.head_at_ms
                                .saturating_add(self.sub_second_period(height)),
                        );
                        let delay = Duration::from_millis(at_ms.saturating_sub(self.host.now_ms()));
                        self.host
                            .schedule(delay, DriverEvent::BlockTimer { height });
                    }
                    Output::ArmRoundTimer {
                        height,
                        round,
                        seq,
                        after_ms,
                    } => {
                        self.host.schedule(
                            Duration::from_millis(after_ms),
                            DriverEvent::Input(Input::RoundTimer { height, round, seq }),
                        );
                    }
                    // A syncing validator sits rounds out (its head is behind the others').
                    Output::BuildBlock { .. } if syncing => {}
                    Output::BuildBlock { height, round, .. } => {
                        if let Some(block) = self.build(round) {
                            self.metrics.blocks_built.inc();
                            queue.push_back(Input::BlockBuilt {
                                height,
                                round,
                                block: Box::new(block),
                                now_ms: self.host.now_ms(),
                            });
                        }
                    }
                    Output::CheckProposal {
                        height,
                        round,
                        digest,
                        block,
                    } => {
                        let valid = match self.chain.check(&block, self.host.now_ms() / 1000) {
                            Ok(proposal) => {
                                self.cache(proposal);
                                true
                            }
                            Err(e) => {
                                tracing::warn!(height, round, "rejected proposal {digest}: {e}");
                                false
                            }
                        };
                        self.metrics
                            .proposals_checked
                            .with_label_values(&[if valid { "valid" } else { "invalid" }])
                            .inc();
                        queue.push_back(Input::ProposalChecked {
                            height,
                            round,
                            digest,
                            valid,
                        });
                    }
                    Output::Persist(state) => {
                        if let Err(e) = self.chain.store.put_consensus_state(&state.encode()) {
                            // Sending what depends on it could make us equivocate after a
                            // restart; stay silent instead.
                            tracing::error!("cannot persist consensus state: {e}");
                            persist_failed = true;
                        }
                    }
                    Output::Broadcast(_) if syncing || persist_failed => {}
                    Output::Broadcast(msg) => {
                        self.metrics.message(msg.code(), "sent");
                        self.host.publish(Topic::Consensus, msg.encode_wire());
                    }
                    Output::Import(block) => {
                        if let Some(input) = self.import(&block) {
                            self.host.publish(Topic::Blocks, alloy_rlp::encode(&*block));
                            queue.push_back(input);
                        }
                    }
                }
            }
        }
        self.observe_round();
    }

    /// Updates the height and round gauges and counts round changes.
    fn observe_round(&mut self) {
        let m = &self.metrics;
        let Some(height) = self.core.height() else {
            return;
        };
        let round = self.core.round().unwrap_or(0);
        match &mut self.height_started {
            Some((h, _, seen)) if *h == height => {
                if round > *seen {
                    m.round_changes.inc_by(u64::from(round - *seen));
                    *seen = round;
                }
            }
            _ => self.height_started = Some((height, self.host.now_ms(), round)),
        }
        m.height.set(i64::try_from(height).unwrap_or(i64::MAX));
        m.round.set(i64::from(round));
        self.trace_round(height, round);
    }

    /// Ends the span of the round just left (decided when the height moved on, a round change
    /// otherwise) and starts one for the round now in progress.
    fn trace_round(&mut self, height: u64, round: u32) {
        if !trace::enabled() {
            return;
        }
        if let Some((h, r, _)) = &self.round_span {
            if (*h, *r) == (height, round) {
                return;
            }
        }
        if let Some((h, _, mut span)) = self.round_span.take() {
            span.set(
                "qbft.outcome",
                if h < height {
                    "decided"
                } else {
                    "round_change"
                },
            );
        }
        let mut span = Span::start(Scope::Qbft, "qbftRound", SpanKind::Internal, None);
        span.set("qbft.height", height);
        span.set("qbft.round", round);
        span.set("qbft.validator", format!("{:#x}", self.core.address()));
        self.round_span = Some((height, round, span));
    }

    fn cache(&mut self, proposal: ExecutedProposal) {
        if self.proposals.len() >= MAX_CACHED_PROPOSALS {
            self.proposals.clear();
        }
        self.proposals.insert(proposal.digest, proposal);
    }

    fn build(&mut self, round: u32) -> Option<Block> {
        let store = &self.chain.store;
        let (_, parent_hash) = store.head().ok()??;
        let parent = store.head_header().ok()?;
        let genesis = &self.chain.genesis;
        let period = genesis.qbft.as_ref().map_or(1, |q| {
            q.params_at(parent.number.saturating_add(1))
                .min_timestamp_gap()
        });
        let timestamp = ((self.host.now_ms().saturating_add(500)) / 1000)
            .max(parent.timestamp.saturating_add(period));
        let most = usize::try_from(parent.gas_limit / 21_000)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let candidates: Vec<_> = match self.rpc.pool.lock() {
            Ok(pool) => pool
                .best_transactions()
                .into_iter()
                .take(most)
                .map(|t| (t.tx.clone(), t.sender))
                .collect(),
            Err(_) => vec![],
        };
        match self.chain.build(
            &parent,
            parent_hash,
            round,
            self.core.address(),
            timestamp,
            candidates,
        ) {
            Ok((block, proposal)) => {
                for skipped in &proposal.executed.skipped {
                    tracing::debug!(
                        "left transaction {} out of block {}: {}",
                        skipped.hash,
                        block.header.number,
                        skipped.reason
                    );
                }
                self.cache(proposal);
                Some(block)
            }
            Err(e) => {
                tracing::error!(
                    "building block {} failed: {e}",
                    parent.number.saturating_add(1)
                );
                None
            }
        }
    }

    fn import(&mut self, block: &Block) -> Option<Input> {
        let number = block.header.number;
        let mut span = Span::in_current(Scope::Blocks, "importBlock");
        span.set("block.number", number);
        span.set("block.source", "consensus");
        span.set("block.transactions", block.body.transactions.len());
        let _entered = span.enter();
        let proposal = match commit_seal_digest(&block.header)
            .ok()
            .and_then(|d| self.proposals.remove(&d))
        {
            Some(p) => p,
            None => match self.chain.check(block, self.host.now_ms() / 1000) {
                Ok(p) => p,
                Err(e) => {
                    self.chain
                        .metrics
                        .refused
                        .with_label_values(&["consensus"])
                        .inc();
                    tracing::error!("decided block {number} does not execute: {e}");
                    // Restart the height rather than stall on it.
                    return self.head_input();
                }
            },
        };
        self.proposals.clear();
        if let Some((h, started, _)) = self.height_started {
            if h == number {
                let ms = self.host.now_ms().saturating_sub(started);
                self.metrics.time_to_finality.observe(ms as f64 / 1000.0);
            }
        }
        let rules_changed = self.chain.node_rules_changed(&proposal);
        let hash = match self.chain.commit(block, proposal) {
            Ok(h) => h,
            Err(e) => {
                self.chain
                    .metrics
                    .refused
                    .with_label_values(&["consensus"])
                    .inc();
                tracing::error!("importing block {number} failed: {e}");
                return self.head_input();
            }
        };
        self.chain
            .metrics
            .imported
            .with_label_values(&["consensus"])
            .inc();
        if rules_changed {
            tracing::info!(number, "block changed the node rules: checking peers again");
            self.host.recheck_peers();
        }
        tracing::info!(
            number,
            %hash,
            txs = block.body.transactions.len(),
            gas_used = block.header.gas_used,
            "imported block"
        );
        self.after_import(block, hash);
        self.head_input()
    }

    /// Updates the pool and tells subscribers about the new head.
    fn after_import(&mut self, block: &Block, hash: B256) {
        let header = &block.header;
        self.head_at_ms = self.host.now_ms();
        let ctx = head_context(&self.chain.genesis, header);
        if let Ok(view) = self.chain.store.state_at(header.number) {
            if let Ok(mut pool) = self.rpc.pool.lock() {
                let (confirmed, invalidated) = pool.on_new_head(ctx, &view);
                let m = &self.rpc.pool_metrics;
                m.left("confirmed", confirmed.len());
                m.left("invalidated", invalidated.len());
                m.observe(&mut pool);
                m.observe_types(&pool);
            }
        }
        let _ = self.rpc.new_blocks.send(Arc::new(NewBlock {
            header: block.header.clone(),
            hash,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_queue_from_the_network_is_bounded_and_counts_what_it_drops() {
        let dropped = consort_metrics::IntCounter::new("dropped", "dropped").unwrap();
        let registry = consort_metrics::Registry::default();
        let executors = crate::executors::Executors::new(&registry).unwrap();
        let (tx, mut rx) = DriverSender::channel(2, dropped.clone(), executors.consensus);
        let offered: Vec<bool> = (0..5)
            .map(|_| tx.offer(DriverEvent::Input(Input::Rebroadcast)))
            .collect();
        assert_eq!(offered, [true, true, false, false, false]);
        assert_eq!(dropped.get(), 3);
        // What the node itself sends waits for room instead of being dropped.
        assert!(rx.recv().await.is_some());
        assert!(tx.send(DriverEvent::Stop).await);
        assert_eq!(dropped.get(), 3);
        assert!(rx.recv().await.is_some());
        assert!(matches!(rx.recv().await, Some(DriverEvent::Stop)));
        let text = registry.render();
        assert!(text.contains("besu_executors_ethscheduler_consensus_rejected_tasks_total 3"));
        assert!(text.contains("besu_executors_ethscheduler_consensus_submitted_tasks_total 3"));
    }
}
