//! The simulated network and hosts: a seeded scheduler over virtual time driving one QBFT core
//! per validator, with the invariants checked as the run goes.

use super::chain::{
    build_block, check_sealed, genesis, head_of, is_marked_invalid, onchain_hash, short, Flavour,
    SealCache, GENESIS_SECS,
};
use super::rng::Rng;
use super::scenario::{ByzKind, Scenario};
use alloy_primitives::{Address, B256};
use consort_primitives::{commit_seal_digest, public_key_address};
use consort_qbft::{quorum, Block, Head, Input, Output, Persisted, Qbft, QbftMessage};
use secp256k1::{SecretKey, SECP256K1};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

/// Most events a run may take before it is declared stuck in a loop.
const EVENT_BUDGET: u64 = 5_000_000;
/// Interval of `Input::Rebroadcast`.
const REBROADCAST_MS: u64 = 2_000;
/// Interval at which each validator asks a random peer for blocks above its head.
const SYNC_MS: u64 = 1_000;
/// Blocks per sync answer.
const SYNC_BATCH: usize = 8;
/// Trace lines kept when tracing (`CONSORT_SIM_TRACE_CAP` overrides).
const TRACE_LINES: usize = 4_000;

fn trace_cap() -> usize {
    use std::sync::OnceLock;
    static CAP: OnceLock<usize> = OnceLock::new();
    *CAP.get_or_init(|| {
        std::env::var("CONSORT_SIM_TRACE_CAP")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(TRACE_LINES)
    })
}

/// What travels between two nodes.
#[derive(Debug, Clone)]
pub enum Payload {
    Qbft(Box<QbftMessage>),
    /// Newly imported blocks, or the answer to a sync request, in height order.
    Blocks(Vec<Block>),
    /// "Send me your blocks from this height on."
    SyncRequest(u64),
}

#[derive(Debug)]
enum Ev {
    Net {
        to: usize,
        from: usize,
        payload: Payload,
    },
    BlockTimer {
        node: usize,
        inc: u64,
        height: u64,
    },
    RoundTimer {
        node: usize,
        inc: u64,
        height: u64,
        round: u32,
        seq: u64,
    },
    Built {
        node: usize,
        inc: u64,
        height: u64,
        round: u32,
        block: Box<Block>,
    },
    Checked {
        node: usize,
        inc: u64,
        height: u64,
        round: u32,
        digest: B256,
        valid: bool,
    },
    Rebroadcast,
    Sync,
    ByzTick {
        node: usize,
    },
    Crash {
        node: usize,
        mid_handle: bool,
    },
    Restart {
        node: usize,
    },
    Gst,
    Deadline,
}

#[derive(Debug)]
struct Scheduled {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    // Reversed: the heap pops the earliest (time, sequence) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// What a Byzantine validator remembers to misbehave with.
#[derive(Debug, Default)]
pub struct ByzMemory {
    /// Messages seen or sent, newest last (Replayer).
    pub seen: VecDeque<QbftMessage>,
    /// Round changes by (height, target round) and author (EquivocatingProposer).
    pub round_changes: BTreeMap<(u64, u32), BTreeMap<Address, QbftMessage>>,
    /// Proposed blocks by (height, round, digest) (ConflictingRoundChanger).
    pub blocks: BTreeMap<(u64, u32, B256), Block>,
    /// Prepares by (height, round, digest) and author (ConflictingRoundChanger).
    pub prepares: BTreeMap<(u64, u32, B256), BTreeMap<Address, QbftMessage>>,
    /// Signed junk votes by height, re-sent by a flooding validator.
    pub junk: BTreeMap<u64, Vec<QbftMessage>>,
}

#[derive(Debug)]
pub struct Node {
    pub key: SecretKey,
    pub addr: Address,
    pub byz: Option<ByzKind>,
    pub core: Option<Qbft>,
    pub up: bool,
    /// Bumped on every crash: timers and host answers of an earlier run are dropped.
    pub incarnation: u64,
    /// The node's database: genesis and every block it imported.
    pub chain: Vec<Block>,
    pub head: Head,
    /// The last `Output::Persist`, as stored (encoded) and as emitted.
    pub persisted: Option<(Vec<u8>, Persisted)>,
    /// Crash while carrying out the outputs of the next input.
    pub crash_armed: bool,
    pub restarts: u32,
    pub memory: ByzMemory,
}

impl Node {
    pub fn honest(&self) -> bool {
        self.byz.is_none()
    }

    pub fn height(&self) -> u64 {
        self.head.number
    }
}

/// Counters of a finished run.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub virtual_ms: u64,
    pub events: u64,
    pub max_round: u32,
    /// Time from GST until every honest validator reached its target height, and the bound.
    pub after_gst_ms: u64,
    pub bound_ms: u64,
    pub cov: Coverage,
}

/// How often the interesting things happened, to see what the seeds exercise.
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    pub crashes: u64,
    pub mid_handle_crashes: u64,
    pub restores: u64,
    pub restores_with_certificate: u64,
    pub equivocations: u64,
    pub equivocations_in_later_rounds: u64,
    pub invalid_blocks: u64,
    pub flood_messages: u64,
    pub replays: u64,
    pub decided_in_later_round: u64,
    pub reproposals: u64,
    pub sync_imports: u64,
}

impl Coverage {
    pub fn add(&mut self, o: &Coverage) {
        self.crashes += o.crashes;
        self.mid_handle_crashes += o.mid_handle_crashes;
        self.restores += o.restores;
        self.restores_with_certificate += o.restores_with_certificate;
        self.equivocations += o.equivocations;
        self.equivocations_in_later_rounds += o.equivocations_in_later_rounds;
        self.invalid_blocks += o.invalid_blocks;
        self.flood_messages += o.flood_messages;
        self.replays += o.replays;
        self.decided_in_later_round += o.decided_in_later_round;
        self.reproposals += o.reproposals;
        self.sync_imports += o.sync_imports;
    }
}

/// What each honest validator signed, to check it never signs two conflicting votes.
#[derive(Debug, Default)]
struct Signed {
    /// (author, height, round) → digest.
    prepares: BTreeMap<(Address, u64, u32), B256>,
    commits: BTreeMap<(Address, u64, u32), B256>,
    proposals: BTreeMap<(Address, u64, u32), B256>,
    /// (author, height) → highest round-change target sent.
    round_changes: BTreeMap<(Address, u64), u32>,
}

/// What anyone sent: enough to see whether two blocks ever gathered a quorum of commit
/// seals at one height (then whoever holds them, a Byzantine node included, can hand honest
/// nodes conflicting sealed blocks).
#[derive(Debug, Default)]
struct Sent {
    /// Digest of every proposed block → its on-chain hash.
    proposed: std::collections::HashMap<B256, B256>,
    /// (height, digest) → authors of valid commit seals over it.
    commits: BTreeMap<(u64, B256), std::collections::BTreeSet<Address>>,
    /// Height → on-chain hash of the first block that gathered a quorum of commits.
    committed: BTreeMap<u64, (B256, u32)>,
    violation: Option<String>,
}

#[derive(Debug)]
pub struct World {
    pub sc: Scenario,
    pub rng: Rng,
    pub start_ms: u64,
    pub now: u64,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    pub nodes: Vec<Node>,
    pub validators: Vec<Address>,
    pub seals: SealCache,
    /// Height → on-chain hash of what honest validators finalized there, and who was first.
    finalized: BTreeMap<u64, (B256, usize)>,
    signed: Signed,
    sent: Sent,
    pub gst: bool,
    /// Height every honest validator must reach after GST, and by when.
    target: Option<(u64, u64)>,
    done: bool,
    pub events: u64,
    pub max_round: u32,
    bound_ms: u64,
    pub cov: Coverage,
    trace: Option<VecDeque<String>>,
}

impl World {
    pub fn new(sc: Scenario, trace: bool) -> World {
        let mut rng = Rng::new(sc.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5bd1_e995);
        let mut keys = Vec::new();
        while keys.len() < sc.n {
            let mut bytes = [0u8; 32];
            for chunk in bytes.chunks_mut(8) {
                chunk.copy_from_slice(&rng.next_u64().to_be_bytes());
            }
            if let Ok(k) = SecretKey::from_slice(&bytes) {
                keys.push(k);
            }
        }
        let addrs: Vec<Address> = keys
            .iter()
            .map(|k| public_key_address(&k.public_key(SECP256K1)))
            .collect();
        let mut validators = addrs.clone();
        validators.sort();
        let genesis = genesis(&validators);
        let head = head_of(&genesis, &validators);
        let nodes = keys
            .iter()
            .zip(&addrs)
            .enumerate()
            .map(|(i, (key, addr))| Node {
                key: *key,
                addr: *addr,
                byz: sc.byz(i),
                core: None,
                up: true,
                incarnation: 0,
                chain: vec![genesis.clone()],
                head: head.clone(),
                persisted: None,
                crash_armed: false,
                restarts: 0,
                memory: ByzMemory::default(),
            })
            .collect();
        let start_ms = GENESIS_SECS * 1000;
        World {
            sc,
            rng,
            start_ms,
            now: start_ms,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            validators,
            seals: SealCache::default(),
            finalized: BTreeMap::new(),
            signed: Signed::default(),
            sent: Sent::default(),
            gst: false,
            target: None,
            done: false,
            events: 0,
            max_round: 0,
            bound_ms: 0,
            cov: Coverage::default(),
            trace: trace.then(VecDeque::new),
        }
    }

    /// Runs to the end: Ok when every honest validator reached its target height after GST.
    pub fn run(&mut self) -> Result<Stats, String> {
        self.boot()?;
        while let Some(Scheduled { at, ev, .. }) = self.queue.pop() {
            self.now = at;
            self.events += 1;
            if self.events > EVENT_BUDGET {
                return Err(format!("event budget of {EVENT_BUDGET} exhausted"));
            }
            self.step(ev)?;
            if let Some(v) = self.sent.violation.take() {
                return Err(v);
            }
            if self.done {
                break;
            }
        }
        if !self.done {
            return Err("the event queue ran dry".into());
        }
        self.check_chains()?;
        Ok(Stats {
            virtual_ms: self.now - self.start_ms,
            events: self.events,
            max_round: self.max_round,
            after_gst_ms: self.now - self.start_ms - self.sc.gst_ms,
            bound_ms: self.bound_ms,
            cov: self.cov.clone(),
        })
    }

    fn boot(&mut self) -> Result<(), String> {
        for i in 0..self.nodes.len() {
            if self.nodes[i].byz != Some(ByzKind::SilentValidator) {
                self.nodes[i].core = Some(Qbft::with_config(self.nodes[i].key, self.sc.config));
                let head = self.nodes[i].head.clone();
                self.feed(
                    i,
                    Input::NewHead {
                        head,
                        timings: self.sc.timings,
                    },
                )?;
            }
            if matches!(
                self.nodes[i].byz,
                Some(ByzKind::Replayer | ByzKind::ConflictingRoundChanger)
            ) {
                let at = self.now + self.rng.range(1, self.sc.byz_tick_ms);
                self.schedule(at, Ev::ByzTick { node: i });
            }
        }
        self.schedule(self.now + REBROADCAST_MS, Ev::Rebroadcast);
        self.schedule(self.now + SYNC_MS, Ev::Sync);
        for c in self.sc.crashes.clone() {
            self.schedule(
                self.start_ms + c.at_ms,
                Ev::Crash {
                    node: c.node,
                    mid_handle: c.mid_handle,
                },
            );
            self.schedule(self.start_ms + c.restart_ms, Ev::Restart { node: c.node });
        }
        self.schedule(self.start_ms + self.sc.gst_ms, Ev::Gst);
        Ok(())
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            ev,
        });
    }

    pub fn trace(&mut self, line: impl FnOnce() -> String) {
        if let Some(t) = self.trace.as_mut() {
            if t.len() >= trace_cap() {
                t.pop_front();
            }
            let at = self.now - self.start_ms;
            t.push_back(format!("{:>7}.{:03}s {}", at / 1000, at % 1000, line()));
        }
    }

    pub fn trace_lines(&self) -> Vec<String> {
        self.trace
            .as_ref()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Height, round and state of every node, one line.
    pub fn node_summary(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let role = match n.byz {
                    Some(k) => format!("{k:?}"),
                    None => "honest".into(),
                };
                let core = n
                    .core
                    .as_ref()
                    .map(|c| format!("h{:?} r{:?}", c.height(), c.round()))
                    .unwrap_or_else(|| "no core".into());
                format!(
                    "n{i}({}, {role}, {}, head {}, {core}, restarts {})",
                    alloy_primitives::hex::encode(&n.addr[..3]),
                    if n.up { "up" } else { "DOWN" },
                    n.height(),
                    n.restarts
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn honest_heights(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.honest())
            .map(Node::height)
            .collect()
    }

    fn step(&mut self, ev: Ev) -> Result<(), String> {
        match ev {
            Ev::Net { to, from, payload } => {
                if !self.nodes[to].up {
                    return Ok(());
                }
                match payload {
                    Payload::Qbft(msg) => {
                        if self.trace.is_some() {
                            let line = describe(&msg);
                            self.trace(|| format!("n{to} <- n{from} {line}"));
                        }
                        if self.nodes[to].byz.is_some() {
                            self.byz_observe(to, &msg);
                        }
                        self.feed(to, Input::Message(msg))
                    }
                    Payload::Blocks(blocks) => self.receive_blocks(to, from, blocks),
                    Payload::SyncRequest(next) => {
                        let node = &self.nodes[to];
                        if node.byz == Some(ByzKind::SilentValidator) {
                            return Ok(());
                        }
                        let next = next as usize;
                        if node.chain.len() > next {
                            let end = node.chain.len().min(next + SYNC_BATCH);
                            let blocks = node.chain[next..end].to_vec();
                            self.send(to, from, Payload::Blocks(blocks));
                        }
                        Ok(())
                    }
                }
            }
            Ev::BlockTimer { node, inc, height } => {
                if !self.live(node, inc) {
                    return Ok(());
                }
                let pending_transactions = self.rng.chance(500);
                self.trace(|| {
                    format!("n{node} block timer h{height} pending={pending_transactions}")
                });
                self.feed(
                    node,
                    Input::BlockTimer {
                        height,
                        now_ms: self.local_now(node),
                        pending_transactions,
                    },
                )
            }
            Ev::RoundTimer {
                node,
                inc,
                height,
                round,
                seq,
            } => {
                if !self.live(node, inc) {
                    return Ok(());
                }
                self.trace(|| format!("n{node} round timer h{height} r{round} seq{seq}"));
                self.feed(node, Input::RoundTimer { height, round, seq })
            }
            Ev::Built {
                node,
                inc,
                height,
                round,
                block,
            } => {
                if !self.live(node, inc) {
                    return Ok(());
                }
                self.feed(
                    node,
                    Input::BlockBuilt {
                        height,
                        round,
                        block,
                        now_ms: self.local_now(node),
                    },
                )
            }
            Ev::Checked {
                node,
                inc,
                height,
                round,
                digest,
                valid,
            } => {
                if !self.live(node, inc) {
                    return Ok(());
                }
                self.feed(
                    node,
                    Input::ProposalChecked {
                        height,
                        round,
                        digest,
                        valid,
                    },
                )
            }
            Ev::Rebroadcast => {
                for i in 0..self.nodes.len() {
                    if self.nodes[i].up {
                        self.feed(i, Input::Rebroadcast)?;
                    }
                }
                self.schedule(self.now + REBROADCAST_MS, Ev::Rebroadcast);
                Ok(())
            }
            Ev::Sync => {
                let n = self.nodes.len();
                for i in 0..n {
                    if self.nodes[i].up && self.nodes[i].byz != Some(ByzKind::SilentValidator) {
                        let peer = (i + 1 + self.rng.index(n - 1)) % n;
                        let next = self.nodes[i].chain.len() as u64;
                        self.send(i, peer, Payload::SyncRequest(next));
                    }
                }
                self.schedule(self.now + SYNC_MS, Ev::Sync);
                Ok(())
            }
            Ev::ByzTick { node } => {
                self.byz_tick(node)?;
                let at = self.now + self.rng.range(self.sc.byz_tick_ms / 2, self.sc.byz_tick_ms);
                self.schedule(at, Ev::ByzTick { node });
                Ok(())
            }
            Ev::Crash { node, mid_handle } => {
                if !self.nodes[node].up {
                    return Ok(());
                }
                if mid_handle {
                    self.trace(|| format!("n{node} will crash in its next input"));
                    self.nodes[node].crash_armed = true;
                } else {
                    self.crash(node);
                }
                Ok(())
            }
            Ev::Restart { node } => {
                if self.nodes[node].up {
                    self.crash(node);
                }
                self.restart(node)
            }
            Ev::Gst => {
                self.gst = true;
                for n in &self.nodes {
                    if n.honest() && !n.up {
                        return Err("a validator is still down at GST".into());
                    }
                }
                let top = self.honest_heights().into_iter().max().unwrap_or(0);
                let target = top + self.sc.k_heights;
                let bound = self.liveness_bound();
                self.bound_ms = bound;
                self.trace(|| format!("GST: target height {target} within {bound}ms"));
                self.target = Some((target, self.now + bound));
                self.schedule(self.now + bound, Ev::Deadline);
                self.check_done();
                Ok(())
            }
            Ev::Deadline => {
                if self.done {
                    return Ok(());
                }
                let (target, _) = self.target.unwrap_or_default();
                Err(format!(
                    "liveness: {}s after GST not every honest validator reached height {target} \
                     (honest heights {:?})",
                    (self.now - self.start_ms - self.sc.gst_ms) / 1000,
                    self.honest_heights()
                ))
            }
        }
    }

    /// How long after GST the honest validators may take to add `k_heights` heights. At GST
    /// they may be in round `top` of a height; that round's timer runs out, and each later
    /// round fails only with a faulty proposer (there are `b` Byzantine validators; crashed
    /// ones are back), plus one round for stragglers (a proposer still catching up, or an
    /// empty-block wait longer than the round timeout). Each further height costs its block
    /// wait plus as many failed rounds from round 0.
    fn liveness_bound(&self) -> u64 {
        let timeout = |round: u32| -> u64 {
            let t = &self.sc.timings;
            t.request_timeout_ms
                .saturating_mul(1u64 << round.min(40))
                .min(
                    self.sc
                        .config
                        .round_timeout_max_ms
                        .max(t.request_timeout_ms),
                )
        };
        let top = self
            .nodes
            .iter()
            .filter(|n| n.honest())
            .filter_map(|n| n.core.as_ref().and_then(Qbft::round))
            .max()
            .unwrap_or(0);
        let b = self.sc.byzantine.len() as u32;
        let first_height = (top..=top + b + 2).map(timeout).sum::<u64>() + 5_000;
        let per_height = (0..=b + 1).map(timeout).sum::<u64>()
            + self.sc.timings.empty_block_period_ms
            + self.sc.timings.block_period_ms
            + 2_000;
        first_height + self.sc.k_heights.saturating_sub(1) * per_height
    }

    fn check_done(&mut self) {
        if let Some((target, _)) = self.target {
            if self.honest_heights().iter().all(|h| *h >= target) {
                self.done = true;
            }
        }
    }

    /// The node's wall clock, off the true time by its skew.
    pub fn local_now(&self, node: usize) -> u64 {
        self.now.saturating_add_signed(self.sc.clock_skew_ms[node])
    }

    /// The true time at which the node's clock reads `local_ms`.
    fn global_time(&self, node: usize, local_ms: u64) -> u64 {
        local_ms.saturating_add_signed(-self.sc.clock_skew_ms[node])
    }

    fn live(&self, node: usize, inc: u64) -> bool {
        self.nodes[node].up && self.nodes[node].incarnation == inc
    }

    fn crash(&mut self, node: usize) {
        self.trace(|| format!("n{node} CRASH"));
        self.cov.crashes += 1;
        if self.nodes[node].crash_armed {
            self.cov.mid_handle_crashes += 1;
        }
        let n = &mut self.nodes[node];
        n.up = false;
        n.core = None;
        n.crash_armed = false;
        n.incarnation += 1;
    }

    /// A new core restored from what the last one persisted, on the last imported block.
    fn restart(&mut self, node: usize) -> Result<(), String> {
        let n = &mut self.nodes[node];
        n.up = true;
        n.restarts += 1;
        let mut core = Qbft::with_config(n.key, self.sc.config);
        let mut restored = None;
        if let Some((bytes, emitted)) = &n.persisted {
            let decoded = Persisted::decode(bytes)
                .map_err(|e| format!("n{node}: persisted state does not decode: {e}"))?;
            if &decoded != emitted {
                return Err(format!(
                    "n{node}: persisted state changed through encode/decode: {emitted:?} -> \
                     {decoded:?}"
                ));
            }
            restored = Some((decoded.height, decoded.round));
            self.cov.restores += 1;
            // A prepared certificate carries a block: hundreds of bytes.
            if bytes.len() > 300 {
                self.cov.restores_with_certificate += 1;
            }
            core.restore(decoded);
        }
        n.core = Some(core);
        let head = n.head.clone();
        self.trace(|| {
            format!(
                "n{node} RESTART on head {} restoring {restored:?}",
                head.number
            )
        });
        self.feed(
            node,
            Input::NewHead {
                head,
                timings: self.sc.timings,
            },
        )
    }

    /// Hands one input to a node's core and carries out what it asks, in order (an import's
    /// new head is fed back). A crash armed for this node cuts the outputs at a random point.
    pub fn feed(&mut self, i: usize, input: Input) -> Result<(), String> {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let Some(core) = self.nodes[i].core.as_mut() else {
                return Ok(());
            };
            let outputs = core.handle(input);
            if let Some(r) = core.round() {
                if self.nodes[i].byz.is_none() {
                    self.max_round = self.max_round.max(r);
                }
            }
            let cut = if self.nodes[i].crash_armed {
                Some(self.rng.index(outputs.len() + 1))
            } else {
                None
            };
            for (k, out) in outputs.into_iter().enumerate() {
                if cut == Some(k) {
                    self.crash(i);
                    return Ok(());
                }
                self.carry_out(i, out, &mut inputs)?;
            }
            if cut.is_some() {
                self.crash(i);
                return Ok(());
            }
        }
        Ok(())
    }

    fn carry_out(
        &mut self,
        i: usize,
        out: Output,
        inputs: &mut VecDeque<Input>,
    ) -> Result<(), String> {
        let inc = self.nodes[i].incarnation;
        match out {
            Output::ArmBlockTimer { height, at_ms } => {
                // `at_ms` is on the node's clock.
                let at = self.global_time(i, at_ms).max(self.now);
                self.schedule(
                    at,
                    Ev::BlockTimer {
                        node: i,
                        inc,
                        height,
                    },
                );
            }
            Output::ArmRoundTimer {
                height,
                round,
                seq,
                after_ms,
            } => {
                let at = self.now.saturating_add(after_ms);
                self.schedule(
                    at,
                    Ev::RoundTimer {
                        node: i,
                        inc,
                        height,
                        round,
                        seq,
                    },
                );
            }
            Output::BuildBlock {
                height,
                round,
                parent,
            } => {
                let node = &self.nodes[i];
                if parent != node.head.hash || height != node.head.number + 1 {
                    return self.violation(
                        i,
                        format!(
                            "asked to build h{height} on {} but the head is {} ({})",
                            short(parent),
                            node.head.number,
                            short(node.head.hash)
                        ),
                    );
                }
                let flavour = Flavour {
                    tx_nonce: if self.rng.chance(500) {
                        self.rng.range(1, 1 << 40)
                    } else {
                        0
                    },
                    skew_secs: 0,
                    invalid: node.byz == Some(ByzKind::InvalidBlockProposer)
                        && self.rng.chance(900),
                };
                let block = build_block(
                    &node.head,
                    round,
                    node.addr,
                    self.local_now(i),
                    self.sc.timings.block_period_ms / 1000,
                    flavour,
                );
                if flavour.invalid {
                    self.cov.invalid_blocks += 1;
                }
                let at = self.now + self.rng.range(1, 80);
                self.schedule(
                    at,
                    Ev::Built {
                        node: i,
                        inc,
                        height,
                        round,
                        block: Box::new(block),
                    },
                );
            }
            Output::CheckProposal {
                height,
                round,
                digest,
                block,
            } => {
                let valid = !is_marked_invalid(&block);
                self.trace(|| format!("n{i} checks h{height} r{round} {}: {valid}", short(digest)));
                let at = self.now + self.rng.range(1, 60);
                self.schedule(
                    at,
                    Ev::Checked {
                        node: i,
                        inc,
                        height,
                        round,
                        digest,
                        valid,
                    },
                );
            }
            Output::Persist(p) => {
                self.nodes[i].persisted = Some((p.encode(), *p));
            }
            Output::Broadcast(msg) => {
                if self.nodes[i].honest() {
                    self.record_honest(i, &msg)?;
                    self.wire_check(i, &msg)?;
                    for j in 0..self.nodes.len() {
                        if j != i {
                            self.send(i, j, Payload::Qbft(msg.clone()));
                        }
                    }
                } else {
                    self.byz_broadcast(i, *msg)?;
                }
            }
            Output::Import(block) => {
                let node = &self.nodes[i];
                if let Err(e) = check_sealed(&block, &node.head, &self.validators, &mut self.seals)
                {
                    if node.honest() {
                        return self.violation(
                            i,
                            format!("the core decided a block that fails import: {e}"),
                        );
                    }
                    return Ok(());
                }
                if node.honest()
                    && consort_primitives::QbftExtraData::decode(&block.header.extra_data)
                        .is_ok_and(|e| e.round > 0)
                {
                    self.cov.decided_in_later_round += 1;
                }
                self.trace(|| {
                    format!(
                        "n{i} DECIDED h{} {}",
                        block.header.number,
                        short(onchain_hash(&block))
                    )
                });
                let head = self.append(i, *block.clone())?;
                inputs.push_back(Input::NewHead {
                    head,
                    timings: self.sc.timings,
                });
                for j in 0..self.nodes.len() {
                    if j != i {
                        self.send(i, j, Payload::Blocks(vec![(*block).clone()]));
                    }
                }
            }
        }
        Ok(())
    }

    /// Appends a checked block to a node's chain, checking agreement for honest nodes.
    fn append(&mut self, i: usize, block: Block) -> Result<Head, String> {
        let head = head_of(&block, &self.validators);
        let node = &mut self.nodes[i];
        if block.header.parent_hash != node.head.hash || head.number != node.head.number + 1 {
            return Err(format!(
                "n{i}: import of {} is not a child of its head",
                head.number
            ));
        }
        if node.honest() {
            self.check_seals(&block)?;
        }
        let node = &mut self.nodes[i];
        node.chain.push(block);
        node.head = head.clone();
        if node.honest() {
            match self.finalized.get(&head.number) {
                Some((hash, first)) if *hash != head.hash => {
                    let first = *first;
                    let hash = *hash;
                    return Err(format!(
                        "agreement: n{i} finalized {} at height {} but n{first} finalized {}",
                        short(head.hash),
                        head.number,
                        short(hash)
                    ));
                }
                Some(_) => {}
                None => {
                    self.finalized.insert(head.number, (head.hash, i));
                }
            }
            if self.gst {
                self.check_done();
            }
        }
        Ok(head)
    }

    /// Every seal of an honest validator in a finalized block is over a digest that validator
    /// prepared or committed at that height and round (its seal is made when it accepts the
    /// proposal, together with its Prepare).
    fn check_seals(&mut self, block: &Block) -> Result<(), String> {
        let extra = consort_primitives::QbftExtraData::decode(&block.header.extra_data)
            .map_err(|e| e.to_string())?;
        let digest = commit_seal_digest(&block.header).map_err(|e| e.to_string())?;
        let height = block.header.number;
        for seal in &extra.seals {
            let Some(signer) = self.seals.signer(digest, seal) else {
                continue;
            };
            let Some(k) = self.nodes.iter().position(|n| n.addr == signer) else {
                continue;
            };
            if !self.nodes[k].honest() {
                continue;
            }
            let key = (signer, height, extra.round);
            let voted = |m: &BTreeMap<(Address, u64, u32), B256>| m.get(&key) == Some(&digest);
            if !voted(&self.signed.prepares) && !voted(&self.signed.commits) {
                return Err(format!(
                    "a finalized block at h{height} r{} carries a seal of honest n{k} over {}, \
                     which it never prepared nor committed",
                    extra.round,
                    short(digest)
                ));
            }
        }
        Ok(())
    }

    fn receive_blocks(&mut self, to: usize, from: usize, blocks: Vec<Block>) -> Result<(), String> {
        for block in blocks {
            let node = &self.nodes[to];
            if block.header.number <= node.head.number {
                continue;
            }
            if check_sealed(&block, &node.head, &self.validators, &mut self.seals).is_err() {
                break;
            }
            self.trace(|| format!("n{to} imports h{} from n{from}", block.header.number));
            self.cov.sync_imports += 1;
            let head = self.append(to, block)?;
            if self.nodes[to].core.is_some() {
                self.feed(
                    to,
                    Input::NewHead {
                        head,
                        timings: self.sc.timings,
                    },
                )?;
            }
            if !self.nodes[to].up {
                break;
            }
        }
        Ok(())
    }

    pub fn violation<T>(&self, i: usize, what: String) -> Result<T, String> {
        Err(format!("n{i}: {what}"))
    }

    /// Invariants on what an honest validator signs: never two different Prepares, Commits or
    /// Proposals for one (height, round), and never a vote or proposal for a round below one
    /// it already asked to change to at that height (its round change promised to leave it).
    fn record_honest(&mut self, i: usize, msg: &QbftMessage) -> Result<(), String> {
        let me = self.nodes[i].addr;
        let (height, round) = msg.height_and_round();
        let (map, what, digest) = match msg {
            QbftMessage::Prepare(p) => (&mut self.signed.prepares, "Prepares", p.payload.digest),
            QbftMessage::Commit(c) => (&mut self.signed.commits, "Commits", c.payload.digest),
            QbftMessage::Proposal {
                proposal, prepares, ..
            } => (
                {
                    if !prepares.is_empty() {
                        self.cov.reproposals += 1;
                    }
                    &mut self.signed.proposals
                },
                "Proposals",
                commit_seal_digest(&proposal.payload.block.header).map_err(|e| e.to_string())?,
            ),
            QbftMessage::RoundChange { round_change, .. } => {
                let top = self.signed.round_changes.entry((me, height)).or_insert(0);
                *top = (*top).max(round_change.payload.round);
                return Ok(());
            }
        };
        if msg.author() != me {
            return self.violation(i, format!("broadcast a message signed by {}", msg.author()));
        }
        if let Some(previous) = map.insert((me, height, round), digest) {
            if previous != digest {
                return self.violation(
                    i,
                    format!(
                        "signed two different {what} at h{height} r{round}: {} and {}",
                        short(previous),
                        short(digest)
                    ),
                );
            }
        }
        if let Some(top) = self.signed.round_changes.get(&(me, height)) {
            if round < *top {
                return self.violation(
                    i,
                    format!("sent one of its {what} at h{height} r{round} after a round change to r{top}"),
                );
            }
        }
        Ok(())
    }

    /// Now and then, a broadcast goes through the wire encoding and must come back unchanged.
    fn wire_check(&mut self, i: usize, msg: &QbftMessage) -> Result<(), String> {
        if !self.rng.chance(16) {
            return Ok(());
        }
        let decoded = QbftMessage::decode(msg.code(), &msg.encode())
            .map_err(|e| format!("n{i}: own message does not decode: {e}"))?;
        if &decoded != msg {
            return self.violation(i, "message changed through encode/decode".into());
        }
        Ok(())
    }

    /// Sends through the faulty network: partitions and loss before GST, random delays (so
    /// reordering), duplicates.
    pub fn send(&mut self, from: usize, to: usize, payload: Payload) {
        if from == to {
            return;
        }
        if let Payload::Qbft(m) = &payload {
            self.observe_sent(m);
        }
        if !self.gst {
            let t = self.now - self.start_ms;
            let n = self.sc.n;
            let cut = self
                .sc
                .partitions
                .iter()
                .any(|p| p.from_ms <= t && t < p.until_ms && p.blocked[from * n + to]);
            if cut || self.rng.chance(self.sc.loss_per_mille) {
                return;
            }
            if matches!(&payload, Payload::Qbft(m) if matches!(**m, QbftMessage::Commit(_)))
                && self.rng.chance(self.sc.commit_loss_per_mille)
            {
                return;
            }
        }
        let copies = if self.rng.chance(self.sc.dup_per_mille) {
            2
        } else {
            1
        };
        let mut payload = Some(payload);
        for copy in 0..copies {
            let delay = if self.gst {
                self.rng.range(1, self.sc.delay_max_post_gst_ms)
            } else if self.rng.chance(self.sc.long_delay_per_mille) {
                self.rng.range(self.sc.delay_max_ms, 6_000)
            } else {
                self.rng.range(1, self.sc.delay_max_ms)
            };
            let payload = if copy + 1 == copies {
                payload.take()
            } else {
                payload.clone()
            };
            let Some(payload) = payload else { return };
            self.schedule(self.now + delay, Ev::Net { to, from, payload });
        }
    }

    /// Safety over everything sent: at most one block per height gathers a quorum of valid
    /// commit seals (in any round).
    fn observe_sent(&mut self, msg: &QbftMessage) {
        match msg {
            QbftMessage::Proposal { proposal, .. } => {
                let block = &proposal.payload.block;
                if let Ok(digest) = commit_seal_digest(&block.header) {
                    self.sent
                        .proposed
                        .entry(digest)
                        .or_insert_with(|| onchain_hash(block));
                }
            }
            QbftMessage::Commit(c) => {
                let p = &c.payload;
                if self.seals.signer(p.digest, &p.seal) != Some(c.author) {
                    return;
                }
                let signers = self.sent.commits.entry((p.height, p.digest)).or_default();
                if !signers.insert(c.author) || signers.len() != quorum(self.sc.n) {
                    return;
                }
                let Some(hash) = self.sent.proposed.get(&p.digest).copied() else {
                    return;
                };
                match self.sent.committed.get(&p.height) {
                    Some((other, round)) if *other != hash => {
                        self.sent.violation = Some(format!(
                            "agreement: two blocks gathered a quorum of commit seals at h{}: {} in \
                             r{round} and {} in r{}",
                            p.height,
                            short(*other),
                            short(hash),
                            p.round
                        ));
                    }
                    Some(_) => {}
                    None => {
                        self.sent.committed.insert(p.height, (hash, p.round));
                    }
                }
            }
            _ => {}
        }
    }

    /// Each honest chain links up: every block is its predecessor's child.
    fn check_chains(&self) -> Result<(), String> {
        for (i, n) in self.nodes.iter().enumerate().filter(|(_, n)| n.honest()) {
            for pair in n.chain.windows(2) {
                if pair[1].header.parent_hash != onchain_hash(&pair[0])
                    || pair[1].header.number != pair[0].header.number + 1
                {
                    return Err(format!("n{i}: chain broken at {}", pair[1].header.number));
                }
            }
            for b in &n.chain[1..] {
                match self.finalized.get(&b.header.number) {
                    Some((hash, _)) if *hash == onchain_hash(b) => {}
                    _ => return Err(format!("n{i}: block {} not agreed", b.header.number)),
                }
            }
        }
        Ok(())
    }
}

/// A message in a trace line.
pub fn describe(msg: &QbftMessage) -> String {
    let (h, r) = msg.height_and_round();
    match msg {
        QbftMessage::Proposal {
            proposal,
            round_changes,
            prepares,
        } => format!(
            "Proposal h{h} r{r} {} rcs={} prepares={}",
            commit_seal_digest(&proposal.payload.block.header)
                .map(short)
                .unwrap_or_default(),
            round_changes.len(),
            prepares.len()
        ),
        QbftMessage::Prepare(p) => format!("Prepare h{h} r{r} {}", short(p.payload.digest)),
        QbftMessage::Commit(c) => format!("Commit h{h} r{r} {}", short(c.payload.digest)),
        QbftMessage::RoundChange { round_change, .. } => format!(
            "RoundChange h{h} r{r} prepared={:?}",
            round_change
                .payload
                .prepared
                .map(|p| (p.round, short(p.digest)))
        ),
    }
}
