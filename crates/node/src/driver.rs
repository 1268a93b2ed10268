//! Runs the pure QBFT core: carries out its outputs (timers, block building, proposal checks,
//! imports) and feeds back the results. One thread owns the core; timers are tokio tasks that
//! send inputs back.

use crate::chain::{Chain, ExecutedProposal};
use crate::metrics::QbftMetrics;
use alloy_primitives::B256;
use consort_chainspec::Genesis;
use consort_network::{NetworkHandle, Topic};
use consort_primitives::{commit_seal_digest, Header};
use consort_qbft::{Block, Head, Input, Output, Qbft, QbftTimings};
use consort_rpc::{HeadState, NewBlock, RpcContext, SyncStatus};
use consort_txpool::HeadContext;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::runtime::Handle;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

/// Most executed proposals kept while waiting for a decision.
const MAX_CACHED_PROPOSALS: usize = 16;

/// Messages to the driver thread.
#[derive(Debug)]
pub enum DriverEvent {
    /// Feed this to the core.
    Input(Input),
    /// A sealed block from a peer (gossip or sync): import it if it extends the head. The
    /// reply says whether it was imported (false: already known) or why it was refused.
    ImportBlock(Box<Block>, Option<oneshot::Sender<Result<bool, String>>>),
    /// Stop after the current step.
    Stop,
}

/// What the driver talks to besides the chain.
#[derive(Debug, Clone)]
pub struct DriverIo {
    /// The peer-to-peer network, if enabled.
    pub network: Option<NetworkHandle>,
    /// Sync progress: while syncing, the validator sits rounds out.
    pub sync: Arc<SyncStatus>,
    /// Consensus metrics.
    pub metrics: QbftMetrics,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
        request_timeout_ms: q.request_timeout_seconds.saturating_mul(1000),
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
pub struct Driver {
    core: Qbft,
    chain: Chain,
    rpc: Arc<RpcContext>,
    events: UnboundedSender<DriverEvent>,
    runtime: Handle,
    proposals: HashMap<B256, ExecutedProposal>,
    io: DriverIo,
    /// The height being decided, its start and the highest round seen in it.
    height_started: Option<(u64, Instant, u32)>,
    /// Wall-clock time the current head was imported, in Unix milliseconds.
    head_at_ms: u64,
}

impl Driver {
    /// A driver for `core` over `chain`. `events` is the sender side of the driver's channel.
    pub fn new(
        core: Qbft,
        chain: Chain,
        rpc: Arc<RpcContext>,
        events: UnboundedSender<DriverEvent>,
        runtime: Handle,
        io: DriverIo,
    ) -> Self {
        Driver {
            core,
            chain,
            rpc,
            events,
            runtime,
            proposals: HashMap::new(),
            io,
            height_started: None,
            head_at_ms: now_ms(),
        }
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

    /// Runs until [`DriverEvent::Stop`] or until every sender is gone. Blocks the thread.
    pub fn run(mut self, mut rx: UnboundedReceiver<DriverEvent>) {
        if let Some(input) = self.head_input() {
            self.step(input);
        }
        while let Some(event) = rx.blocking_recv() {
            match event {
                DriverEvent::Input(input) => self.step(input),
                DriverEvent::ImportBlock(block, reply) => {
                    let result = self.import_external(&block);
                    if let Err(e) = &result {
                        tracing::debug!("block {} from a peer refused: {e}", block.header.number);
                    }
                    if let Some(reply) = reply {
                        let _ = reply.send(result);
                    }
                }
                DriverEvent::Stop => break,
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
        // Seals are checked by `commit`, before anything is written.
        let proposal = self.chain.check(block).map_err(|e| e.to_string())?;
        let hash = self
            .chain
            .commit(block, proposal)
            .map_err(|e| e.to_string())?;
        tracing::info!(
            number = block.header.number,
            %hash,
            txs = block.body.transactions.len(),
            "imported block from peers"
        );
        self.proposals.clear();
        self.after_import(&block.header, hash);
        if let Some(input) = self.head_input() {
            self.step(input);
        }
        Ok(true)
    }

    fn send_later(&self, delay: Duration, input: Input) {
        let events = self.events.clone();
        self.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = events.send(DriverEvent::Input(input));
        });
    }

    fn step(&mut self, input: Input) {
        let mut queue = VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            let syncing = self.io.sync.is_syncing();
            let mut persist_failed = false;
            for output in self.core.handle(input) {
                match output {
                    Output::ArmBlockTimer { height, at_ms } => {
                        // Block periods under a second count from when the head arrived:
                        // whole-second timestamps cannot pace them.
                        let at_ms = at_ms.max(
                            self.head_at_ms
                                .saturating_add(self.sub_second_period(height)),
                        );
                        let delay = Duration::from_millis(at_ms.saturating_sub(now_ms()));
                        let events = self.events.clone();
                        let pool = self.rpc.pool.clone();
                        self.runtime.spawn(async move {
                            tokio::time::sleep(delay).await;
                            let pending = pool.lock().is_ok_and(|p| !p.is_empty());
                            let input = Input::BlockTimer {
                                height,
                                now_ms: now_ms(),
                                pending_transactions: pending,
                            };
                            let _ = events.send(DriverEvent::Input(input));
                        });
                    }
                    Output::ArmRoundTimer {
                        height,
                        round,
                        seq,
                        after_ms,
                    } => {
                        self.send_later(
                            Duration::from_millis(after_ms),
                            Input::RoundTimer { height, round, seq },
                        );
                    }
                    // A syncing validator sits rounds out (its head is behind the others').
                    Output::BuildBlock { .. } if syncing => {}
                    Output::BuildBlock { height, round, .. } => {
                        if let Some(block) = self.build(round) {
                            queue.push_back(Input::BlockBuilt {
                                height,
                                round,
                                block: Box::new(block),
                                now_ms: now_ms(),
                            });
                        }
                    }
                    Output::CheckProposal {
                        height,
                        round,
                        digest,
                        block,
                    } => {
                        let valid = match self.chain.check(&block) {
                            Ok(proposal) => {
                                self.cache(proposal);
                                true
                            }
                            Err(e) => {
                                tracing::warn!(height, round, "rejected proposal {digest}: {e}");
                                false
                            }
                        };
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
                        self.io.metrics.message(msg.code(), "sent");
                        if let Some(network) = &self.io.network {
                            network.publish(Topic::Consensus, msg.encode_wire());
                        }
                    }
                    Output::Import(block) => {
                        if let Some(input) = self.import(&block) {
                            if let Some(network) = &self.io.network {
                                network.publish(Topic::Blocks, alloy_rlp::encode(&*block));
                            }
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
        let m = &self.io.metrics;
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
            _ => self.height_started = Some((height, Instant::now(), round)),
        }
        m.height.set(i64::try_from(height).unwrap_or(i64::MAX));
        m.round.set(i64::from(round));
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
        let timestamp =
            ((now_ms().saturating_add(500)) / 1000).max(parent.timestamp.saturating_add(period));
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
        let proposal = match commit_seal_digest(&block.header)
            .ok()
            .and_then(|d| self.proposals.remove(&d))
        {
            Some(p) => p,
            None => match self.chain.check(block) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!("decided block {number} does not execute: {e}");
                    // Restart the height rather than stall on it.
                    return self.head_input();
                }
            },
        };
        self.proposals.clear();
        if let Some((h, started, _)) = self.height_started {
            if h == number {
                self.io
                    .metrics
                    .time_to_finality
                    .observe(started.elapsed().as_secs_f64());
            }
        }
        let hash = match self.chain.commit(block, proposal) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!("importing block {number} failed: {e}");
                return self.head_input();
            }
        };
        tracing::info!(
            number,
            %hash,
            txs = block.body.transactions.len(),
            gas_used = block.header.gas_used,
            "imported block"
        );
        self.after_import(&block.header, hash);
        self.head_input()
    }

    /// Updates the pool and tells subscribers about the new head.
    fn after_import(&mut self, header: &Header, hash: B256) {
        self.head_at_ms = now_ms();
        let ctx = head_context(&self.chain.genesis, header);
        if let Ok(view) = self.chain.store.state_at(header.number) {
            if let Ok(mut pool) = self.rpc.pool.lock() {
                let (confirmed, invalidated) = pool.on_new_head(ctx, &HeadState(view));
                let m = &self.rpc.pool_metrics;
                m.removed
                    .with_label_values(&["local", "confirmed"])
                    .inc_by(confirmed.len() as u64);
                m.removed
                    .with_label_values(&["local", "invalid"])
                    .inc_by(invalidated.len() as u64);
                m.observe(&pool);
            }
        }
        let logs = consort_rpc::block_logs(&self.rpc, hash).unwrap_or_default();
        let _ = self.rpc.new_blocks.send(Arc::new(NewBlock {
            header: header.clone(),
            hash,
            logs,
        }));
    }
}
