//! Deterministic simulation of the node host: four validators and a follower, each a real [`Driver`] over a
//! real [`Chain`] on its own in-memory RocksDB store, so blocks are really built, executed,
//! checked and committed. Gossip goes through the node's own [`GossipJudge`], catching up
//! through the node's own [`Syncer`], persisted consensus state through the store. Only time
//! and the network are the simulator's: a seeded clock and a seeded network with delay, loss,
//! duplication and partitions until the global stabilisation time (GST), crashes (also
//! part-way through a step) with restarts from the store, and one Byzantine validator per run
//! that stays silent and lies to syncing peers about its head, replays what it hears, or
//! swaps the body of the block carried in its round changes. Most runs also change the
//! validator set while the faults go on: a fifth node, a follower at first, is voted in through
//! the `qbft_proposeValidatorVote` code the RPC runs, and some runs vote a genesis validator
//! out, the Byzantine one when there is one.
//!
//! Checked: no two honest nodes commit different blocks at a height; after GST every honest
//! node adds heights within a bound and the planned set changes are made; the same seed twice
//! gives the same trace.
//! `CONSORT_HOST_SIM_SEEDS=N` runs more seeds; a failing seed prints
//! `CONSORT_HOST_SIM_SEED=<n> cargo test -p consort-node host_sim::one_seed -- --nocapture`.

use crate::chain::Chain;
use crate::driver::{restore_consensus_state, Driver, DriverEvent, Host};
use crate::metrics::{ChainMetrics, QbftMetrics};
use crate::p2p::GossipJudge;
use crate::sync::{self, BlockImport, SyncNetwork, SyncStatus, Syncer};
use crate::validators::NodeVoting;
use alloy_primitives::{Address, B256};
use consort_chainspec::Genesis;
use consort_network::{PeerId, RequestError, Topic};
use consort_qbft::{Block, Qbft, QbftConfig, QbftMessage};
use consort_rpc::RpcContext;
use consort_rpc::ValidatorVoting as _;
use consort_storage::{Store, StoreOptions};
use consort_txpool::{PoolConfig, TxPool};
use secp256k1::SecretKey;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const VALIDATORS: usize = 4;
/// Nodes in all: the genesis validators and one that may be voted in.
const NODES: usize = VALIDATORS + 1;
/// The node that starts as a follower.
const JOINER: usize = VALIDATORS;
/// How long an operator waits to ask a stopped node to vote again.
const VOTE_RETRY_MS: u64 = 1_000;
/// Virtual time at the start (Unix ms): a realistic wall clock for block timestamps.
const EPOCH_MS: u64 = 1_800_000_000_000;
/// Heights every honest validator must add after GST.
const HEIGHTS_AFTER_GST: u64 = 2;
/// How long after GST (and after the last restart) they may take.
const LIVENESS_MS: u64 = 60_000;
const SYNC_POLL_MS: u64 = 2_000;
/// Events one seed may take; more means something loops without progress.
const MAX_EVENTS: u64 = 100_000;
const RESEND_MS: u64 = 5_000;

/// A seeded xorshift generator.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
    /// True with probability `per_mille`/1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Byzantine {
    /// Sends nothing of its own and answers sync requests as a stale node from an earlier
    /// incarnation of the network: a head far ahead, headers that do not link.
    StaleLiar,
    /// Sends everything it hears again, later.
    Replayer,
    /// Swaps the body of the prepared block its round changes carry.
    BodySwapper,
}

/// What the drivers hand the world: timers and gossip, collected during a step.
#[derive(Default)]
struct Outbox {
    now: Cell<u64>,
    timers: RefCell<Vec<(usize, u64, u64, DriverEvent)>>,
    gossip: RefCell<Vec<(usize, Topic, Vec<u8>)>>,
    /// A node to crash part-way through its step: after this many more outputs.
    cut: Cell<Option<(usize, u32)>>,
    crashed_mid_step: Cell<Option<usize>>,
}

struct SimHost {
    node: usize,
    incarnation: u64,
    outbox: Rc<Outbox>,
}

impl Host for SimHost {
    fn now_ms(&self) -> u64 {
        self.outbox.now.get()
    }

    fn schedule(&self, delay: Duration, event: DriverEvent) {
        let at = self.now_ms().saturating_add(delay.as_millis() as u64);
        self.outbox
            .timers
            .borrow_mut()
            .push((self.node, self.incarnation, at, event));
    }

    fn publish(&self, topic: Topic, data: Vec<u8>) {
        self.outbox
            .gossip
            .borrow_mut()
            .push((self.node, topic, data));
    }

    fn alive(&self) -> bool {
        match self.outbox.cut.get() {
            Some((node, 0)) if node == self.node => {
                self.outbox.cut.set(None);
                self.outbox.crashed_mid_step.set(Some(node));
                false
            }
            Some((node, n)) if node == self.node => {
                self.outbox.cut.set(Some((node, n - 1)));
                true
            }
            _ => self.outbox.crashed_mid_step.get() != Some(self.node),
        }
    }
}

struct Running {
    driver: Driver<SimHost>,
    /// The `qbft_*` vote methods' view, as the node's RPC has it.
    voting: NodeVoting,
    judge: GossipJudge,
    sync: Arc<SyncStatus>,
    metrics: QbftMetrics,
    one_behind: Option<u64>,
}

struct SimNode {
    key: SecretKey,
    peer: PeerId,
    store: Arc<Store>,
    running: Option<Running>,
    incarnation: u64,
    byzantine: Option<Byzantine>,
    /// Heights already checked for agreement.
    checked: u64,
}

enum Ev {
    Fire(usize, u64, DriverEvent),
    Deliver {
        to: usize,
        from: usize,
        topic: Topic,
        data: Vec<u8>,
    },
    Sync(usize, u64),
    Crash(usize),
    Restart(usize),
    Transaction(usize),
    Resend(usize, u64),
    /// An operator asks node `.0` to vote node `.1` in (`true`) or out.
    Vote(usize, usize, bool),
}

/// The validator-set changes a run asks for.
#[derive(Debug, Default, Clone, Copy)]
struct Membership {
    /// The joiner is voted in.
    add: bool,
    /// This genesis validator is voted out.
    drop: Option<usize>,
}

struct World {
    rng: Rng,
    genesis: Arc<Genesis>,
    nodes: Vec<SimNode>,
    outbox: Rc<Outbox>,
    queue: BTreeMap<(u64, u64), Ev>,
    seq: u64,
    gst: u64,
    /// Nodes cut off (both ways) until GST, and one-way cuts `(from, to)`.
    isolated: Option<usize>,
    one_way: Option<(usize, usize)>,
    /// The first block committed at each height, by whom.
    committed: HashMap<u64, (B256, usize)>,
    last_restart: u64,
    trace: Vec<String>,
    nonces: u64,
    membership: Membership,
}

fn key(i: usize) -> SecretKey {
    let mut bytes = [0x11u8; 32];
    bytes[31] = i as u8 + 1;
    SecretKey::from_slice(&bytes).unwrap_or_else(|_| unreachable!())
}

fn address(k: &SecretKey) -> Address {
    consort_primitives::public_key_address(&k.public_key(secp256k1::SECP256K1))
}

/// The dev genesis with four validators, a one-second block period and a two-second round.
fn genesis(keys: &[SecretKey]) -> Genesis {
    let mut json: serde_json::Value =
        serde_json::from_str(crate::DEV_GENESIS).unwrap_or_else(|_| unreachable!());
    let mut validators: Vec<Address> = keys.iter().map(address).collect();
    validators.sort();
    let extra = consort_primitives::QbftExtraData::genesis(validators).encode();
    json["extraData"] = format!("0x{}", hex::encode(&extra)).into();
    json["config"]["qbft"] = serde_json::json!({
        "blockperiodseconds": 1,
        "emptyblockperiodseconds": 0,
        "requesttimeoutseconds": 2,
    });
    json["timestamp"] = format!("{:#x}", EPOCH_MS / 1000).into();
    Genesis::from_json(&json.to_string()).unwrap_or_else(|e| panic!("sim genesis: {e}"))
}

impl World {
    fn new(seed: u64) -> World {
        let mut rng = Rng::new(seed);
        let keys: Vec<SecretKey> = (0..NODES).map(key).collect();
        let genesis = Arc::new(genesis(&keys[..VALIDATORS]));
        let byzantine_node = rng.range(0, VALIDATORS as u64) as usize;
        let byzantine = match rng.range(0, 4) {
            0 => Some(Byzantine::StaleLiar),
            1 => Some(Byzantine::Replayer),
            2 => Some(Byzantine::BodySwapper),
            _ => None,
        };
        let nodes = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let store = Arc::new(
                    Store::in_memory(StoreOptions::default()).unwrap_or_else(|e| panic!("{e}")),
                );
                consort_evm::init_genesis(&store, &genesis).unwrap_or_else(|e| panic!("{e}"));
                let peer = consort_network::keypair(k)
                    .map(|kp| kp.public().to_peer_id())
                    .unwrap_or_else(|| unreachable!());
                SimNode {
                    key: *k,
                    peer,
                    store,
                    running: None,
                    incarnation: 0,
                    byzantine: (i == byzantine_node).then_some(byzantine).flatten(),
                    checked: 0,
                }
            })
            .collect();
        let gst = rng.range(4_000, 12_000);
        let isolated = rng
            .chance(400)
            .then(|| rng.range(0, VALIDATORS as u64) as usize);
        let one_way = rng.chance(400).then(|| {
            let a = rng.range(0, VALIDATORS as u64) as usize;
            (a, (a + 1 + rng.range(0, 3) as usize) % VALIDATORS)
        });
        let mut world = World {
            rng,
            genesis,
            nodes,
            outbox: Rc::new(Outbox::default()),
            queue: BTreeMap::new(),
            seq: 0,
            gst: EPOCH_MS + gst,
            isolated,
            one_way,
            committed: HashMap::new(),
            last_restart: 0,
            trace: Vec::new(),
            nonces: 0,
            membership: Membership::default(),
        };
        world.outbox.now.set(EPOCH_MS);
        // One honest crash before GST, sometimes part-way through a step.
        if world.rng.chance(600) {
            let victim = world.rng.range(0, NODES as u64) as usize;
            let at = EPOCH_MS + world.rng.range(500, gst);
            world.push(at, Ev::Crash(victim));
            let back = at + world.rng.range(500, 6_000);
            world.push(back, Ev::Restart(victim));
        }
        for i in 0..NODES {
            world.push(EPOCH_MS, Ev::Restart(i));
        }
        world.plan_membership(gst);
        for _ in 0..4 {
            let at = EPOCH_MS + world.rng.range(0, gst + 5_000);
            let to = world.rng.range(0, NODES as u64) as usize;
            world.push(at, Ev::Transaction(to));
        }
        world
    }

    /// Most seeds change the validator set while the faults go on: the joiner is voted in
    /// by the honest genesis validators, and some seeds also vote a genesis validator out (the
    /// Byzantine one if there is one, so that no set ever holds more faults than it can bear).
    fn plan_membership(&mut self, gst: u64) {
        if !self.rng.chance(600) {
            return;
        }
        let byzantine = (0..VALIDATORS).find(|i| !self.honest(*i));
        let drop = if self.rng.chance(500) {
            Some(match byzantine {
                Some(b) => b,
                None => self.rng.range(0, VALIDATORS as u64) as usize,
            })
        } else {
            None
        };
        self.membership = Membership { add: true, drop };
        for i in 0..VALIDATORS {
            if self.honest(i) {
                let at = EPOCH_MS + self.rng.range(0, gst);
                self.push(at, Ev::Vote(i, JOINER, true));
            }
        }
        if let Some(d) = drop {
            let voters: Vec<usize> = (0..NODES).filter(|i| *i != d && self.honest(*i)).collect();
            for i in voters {
                let at = EPOCH_MS + self.rng.range(0, gst);
                self.push(at, Ev::Vote(i, d, false));
            }
        }
    }

    /// Whether every running honest node's chain has made the planned set changes.
    fn membership_done(&self) -> bool {
        let plan = self.membership;
        let joiner = address(&self.nodes[JOINER].key);
        let dropped = plan.drop.map(|d| address(&self.nodes[d].key));
        self.nodes
            .iter()
            .filter(|n| n.byzantine.is_none())
            .filter_map(|n| n.running.as_ref())
            .all(|r| {
                let chain = r.driver.chain();
                let Ok(head) = chain.store.head_header() else {
                    return false;
                };
                let set = chain.validators_after(&head);
                (!plan.add || set.contains(&joiner)) && dropped.is_none_or(|d| !set.contains(&d))
            })
    }

    fn now(&self) -> u64 {
        self.outbox.now.get()
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    fn note(&mut self, line: String) {
        let t = self.now() - EPOCH_MS;
        self.trace.push(format!("{t:>6} {line}"));
    }

    fn running(&self, i: usize, incarnation: u64) -> bool {
        self.nodes
            .get(i)
            .is_some_and(|n| n.incarnation == incarnation && n.running.is_some())
    }

    fn honest(&self, i: usize) -> bool {
        self.nodes.get(i).is_some_and(|n| n.byzantine.is_none())
    }

    fn start(&mut self, i: usize) {
        let registry = consort_metrics::Registry::default();
        let Some(node) = self.nodes.get_mut(i) else {
            return;
        };
        node.incarnation += 1;
        let chain = Chain::new(
            node.store.clone(),
            self.genesis.clone(),
            ChainMetrics::new(&registry).unwrap_or_else(|e| panic!("{e}")),
            None,
        );
        let voting = NodeVoting::open(node.store.clone(), chain.validators.clone())
            .unwrap_or_else(|e| panic!("n{i}: saved votes unreadable: {e}"));
        let chain = Chain {
            votes: voting.votes.clone(),
            ..chain
        };
        let mut core = Qbft::with_config(
            node.key,
            QbftConfig {
                early_round_change: true,
                round_timeout_max_ms: 30_000,
            },
        );
        restore_consensus_state(&mut core, &node.store)
            .unwrap_or_else(|e| panic!("n{i}: persisted state unreadable: {e}"));
        let head = node.store.head_header().unwrap_or_else(|e| panic!("{e}"));
        let sync = Arc::new(SyncStatus::default());
        let pool = TxPool::new(
            PoolConfig::default(),
            crate::driver::head_context(&self.genesis, &head),
        );
        let (pending_txs, _) = tokio::sync::broadcast::channel(64);
        let (new_blocks, _) = tokio::sync::broadcast::channel(64);
        let rpc = Arc::new(RpcContext {
            store: node.store.clone(),
            chain: self.genesis.clone(),
            pool: Arc::new(Mutex::new(pool)),
            pending_txs,
            new_blocks,
            info: consort_rpc::NodeInfo {
                client_version: "sim".into(),
                coinbase: address(&node.key),
                mining: true,
                enode_id: String::new(),
                min_gas_price: 0,
                snapshots_dir: None,
            },
            limits: Default::default(),
            filters: Mutex::new(Default::default()),
            metrics: consort_rpc::RpcMetrics::new(&registry).unwrap_or_else(|e| panic!("{e}")),
            pool_metrics: consort_txpool::PoolMetrics::new(&registry)
                .unwrap_or_else(|e| panic!("{e}")),
            network: None,
            sync: sync.clone(),
            permissions: None,
            on_nodes_changed: None,
            validators: Some(Arc::new(voting.clone())),
        });
        let metrics = QbftMetrics::new(&registry).unwrap_or_else(|e| panic!("{e}"));
        let host = SimHost {
            node: i,
            incarnation: node.incarnation,
            outbox: self.outbox.clone(),
        };
        let judge = GossipJudge::new(rpc.clone(), chain.clone(), metrics.clone(), sync.clone());
        let driver = Driver::new(core, chain, rpc, host, sync.clone(), metrics.clone());
        node.running = Some(Running {
            driver,
            voting,
            judge,
            sync,
            metrics,
            one_behind: None,
        });
        self.with_driver(i, |d| d.start());
    }

    /// Runs `f` on node `i`'s driver, then carries out what it scheduled and published.
    fn with_driver(&mut self, i: usize, f: impl FnOnce(&mut Driver<SimHost>)) {
        if let Some(running) = self.nodes.get_mut(i).and_then(|n| n.running.as_mut()) {
            f(&mut running.driver);
        }
        self.settle();
    }

    /// Carries out what a step scheduled and published, crashes the node that crashed
    /// part-way through it, and checks agreement.
    fn settle(&mut self) {
        self.flush();
        if let Some(n) = self.outbox.crashed_mid_step.take() {
            self.note(format!("n{n} crashed part-way through a step"));
            self.crash(n);
        }
        self.check_agreement();
    }

    fn flush(&mut self) {
        let timers = std::mem::take(&mut *self.outbox.timers.borrow_mut());
        for (node, inc, at, event) in timers {
            self.push(at, Ev::Fire(node, inc, event));
        }
        let gossip = std::mem::take(&mut *self.outbox.gossip.borrow_mut());
        for (from, topic, data) in gossip {
            let data = self.tamper(from, data);
            let Some(data) = data else { continue };
            for to in 0..NODES {
                if to != from {
                    self.send(from, to, topic, data.clone());
                }
            }
        }
    }

    /// What a Byzantine node makes of its own messages: nothing, or a swapped body.
    fn tamper(&mut self, from: usize, data: Vec<u8>) -> Option<Vec<u8>> {
        match self.nodes.get(from).and_then(|n| n.byzantine) {
            None | Some(Byzantine::Replayer) => Some(data),
            Some(Byzantine::StaleLiar) => None,
            Some(Byzantine::BodySwapper) => {
                let Ok(QbftMessage::RoundChange {
                    round_change,
                    prepared_block: Some(block),
                    prepares,
                }) = QbftMessage::decode_wire(&data)
                else {
                    return Some(data);
                };
                let mut swapped = block;
                swapped.body.transactions.clear();
                swapped.body.transactions.push(self.transfer(999));
                self.note(format!("n{from} swaps the body of its prepared block"));
                let msg = QbftMessage::RoundChange {
                    round_change,
                    prepared_block: Some(swapped),
                    prepares,
                };
                Some(msg.encode_wire())
            }
        }
    }

    fn send(&mut self, from: usize, to: usize, topic: Topic, data: Vec<u8>) {
        let before_gst = self.now() < self.gst;
        if before_gst {
            let cut = self.isolated.is_some_and(|n| n == from || n == to)
                || self.one_way == Some((from, to));
            if cut || self.rng.chance(50) {
                return;
            }
        }
        let delay = if before_gst {
            self.rng.range(1, 300)
        } else {
            self.rng.range(1, 60)
        };
        let copies = if before_gst && self.rng.chance(20) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = self.now() + delay + self.rng.range(0, 20);
            self.push(
                at,
                Ev::Deliver {
                    to,
                    from,
                    topic,
                    data: data.clone(),
                },
            );
        }
    }

    fn crash(&mut self, i: usize) {
        if let Some(node) = self.nodes.get_mut(i) {
            // Only the store survives, as on disk: every block and every persisted
            // consensus state is a committed write.
            node.running = None;
        }
    }

    /// A signed transfer from one of the dev chain's funded accounts.
    fn transfer(&mut self, nonce: u64) -> consort_primitives::TxEnvelope {
        crate::testing::transfer(crate::testing::DEV_KEY_0, self.genesis.chain_id, nonce)
    }

    fn step(&mut self, ev: Ev) -> Result<(), String> {
        match ev {
            Ev::Fire(i, inc, event) => {
                if self.nodes.get(i).is_some_and(|n| n.incarnation == inc) {
                    self.with_driver(i, |d| {
                        d.handle(event);
                    });
                }
            }
            Ev::Deliver {
                to,
                from,
                topic,
                data,
            } => self.deliver(to, from, topic, data),
            // The syncer and the resend tick run while their incarnation does.
            Ev::Sync(i, inc) => {
                if self.running(i, inc) {
                    self.sync_round(i);
                    self.push(self.now() + SYNC_POLL_MS, Ev::Sync(i, inc));
                }
            }
            Ev::Resend(i, inc) => {
                if self.running(i, inc) {
                    self.with_driver(i, |d| {
                        d.handle(DriverEvent::Input(consort_qbft::Input::Rebroadcast));
                    });
                    self.push(self.now() + RESEND_MS, Ev::Resend(i, inc));
                }
            }
            Ev::Crash(i) => {
                // Half the crashes happen part-way through the node's next step.
                if self.rng.chance(500) {
                    let after = self.rng.range(0, 4) as u32;
                    self.note(format!("n{i} will crash after {after} more outputs"));
                    self.outbox.cut.set(Some((i, after)));
                } else {
                    self.note(format!("n{i} crashes"));
                    self.crash(i);
                }
            }
            Ev::Restart(i) => {
                if self.outbox.cut.get().is_some_and(|(n, _)| n == i) {
                    self.outbox.cut.set(None);
                }
                self.crash(i);
                self.note(format!("n{i} starts"));
                self.last_restart = self.now();
                self.start(i);
                let inc = self.nodes.get(i).map_or(0, |n| n.incarnation);
                self.push(self.now() + SYNC_POLL_MS, Ev::Sync(i, inc));
                self.push(self.now() + RESEND_MS, Ev::Resend(i, inc));
            }
            Ev::Vote(i, subject, add) => {
                let who = self.nodes.get(subject).map(|n| address(&n.key));
                let voting = self
                    .nodes
                    .get(i)
                    .and_then(|n| n.running.as_ref())
                    .map(|r| r.voting.clone());
                match (who, voting) {
                    (Some(who), Some(voting)) => {
                        let verb = if add { "in" } else { "out" };
                        self.note(format!("n{i} is asked to vote n{subject} {verb}"));
                        voting.propose(who, add)?;
                    }
                    // Stopped: the operator asks again when it is back.
                    _ => self.push(self.now() + VOTE_RETRY_MS, Ev::Vote(i, subject, add)),
                }
            }
            Ev::Transaction(i) => {
                let nonce = self.nonces;
                self.nonces += 1;
                let raw = alloy_eips::eip2718::Encodable2718::encoded_2718(&self.transfer(nonce));
                self.note(format!("transaction nonce {nonce} to n{i}"));
                let batch = crate::txgossip::encode([raw.as_slice()]);
                self.deliver(i, i, Topic::Transactions, batch.clone());
                for to in 0..NODES {
                    if to != i {
                        self.send(i, to, Topic::Transactions, batch.clone());
                    }
                }
            }
        }
        Ok(())
    }

    fn deliver(&mut self, to: usize, from: usize, topic: Topic, data: Vec<u8>) {
        let Some(peer) = self.nodes.get(from).map(|n| n.peer) else {
            return;
        };
        let Some(running) = self.nodes.get_mut(to).and_then(|n| n.running.as_mut()) else {
            return;
        };
        let judged = running.judge.judge(topic, peer, &data);
        if self.nodes.get(to).and_then(|n| n.byzantine) == Some(Byzantine::Replayer)
            && topic == Topic::Consensus
        {
            let at = self.now() + self.rng.range(100, 8_000);
            for k in 0..NODES {
                if k != to {
                    self.push(
                        at,
                        Ev::Deliver {
                            to: k,
                            from: to,
                            topic,
                            data: data.clone(),
                        },
                    );
                }
            }
        }
        if let Some(event) = judged.event {
            self.with_driver(to, |d| {
                d.handle(event);
            });
        }
    }

    /// One round of the node's own syncer against the other nodes' stores.
    fn sync_round(&mut self, i: usize) {
        let peers: Vec<SimPeer> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(k, n)| *k != i && n.running.is_some())
            .map(|(_, n)| SimPeer {
                peer: n.peer,
                store: n.store.clone(),
                liar: n.byzantine == Some(Byzantine::StaleLiar),
            })
            .collect();
        let Some(running) = self.nodes.get_mut(i).and_then(|n| n.running.as_mut()) else {
            return;
        };
        let before = running.driver.chain().store.head().ok().flatten();
        let mut syncer = Syncer {
            network: SimNet {
                peers,
                penalties: RefCell::new(Vec::new()),
            },
            chain: running.driver.chain().clone(),
            driver: SimImport(RefCell::new(&mut running.driver)),
            status: running.sync.clone(),
            metrics: running.metrics.clone(),
            one_behind: running.one_behind,
            sync_started: None,
        };
        ready(syncer.round());
        running.one_behind = syncer.one_behind;
        let penalties = syncer.network.penalties.take();
        let after = running.driver.chain().store.head().ok().flatten();
        let syncing = running.sync.is_syncing();
        for (peer, reason) in penalties {
            self.note(format!("n{i} penalises {peer}: {reason}"));
        }
        if before != after {
            let n = after.map_or(0, |(n, _)| n);
            self.note(format!("n{i} synced to {n}"));
        }
        if syncing {
            self.note(format!("n{i} is left syncing"));
        }
        self.settle();
    }

    fn check_agreement(&mut self) {
        for i in 0..NODES {
            if !self.honest(i) {
                continue;
            }
            let Some(node) = self.nodes.get(i) else {
                continue;
            };
            let head = node.store.head().ok().flatten().map_or(0, |(n, _)| n);
            let mut checked = node.checked;
            while checked < head {
                checked += 1;
                let Ok(Some(hash)) = self.nodes[i].store.canonical_hash(checked) else {
                    panic!("n{i} has no block {checked} below its head {head}");
                };
                match self.committed.get(&checked) {
                    Some((first, by)) if *first != hash => panic!(
                        "agreement: n{i} committed {hash} at height {checked}, n{by} {first}"
                    ),
                    Some(_) => {}
                    None => {
                        self.committed.insert(checked, (hash, i));
                        self.note(format!("h{checked} committed first by n{i}"));
                    }
                }
            }
            if let Some(node) = self.nodes.get_mut(i) {
                node.checked = checked;
            }
        }
    }

    fn honest_heads(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|n| n.byzantine.is_none())
            .map(|n| n.store.head().ok().flatten().map_or(0, |(h, _)| h))
            .collect()
    }

    fn run(&mut self) -> Result<(), String> {
        let mut target = None;
        let mut events = 0u64;
        while let Some(((at, _), ev)) = self.queue.pop_first() {
            events += 1;
            if events > MAX_EVENTS {
                return Err(format!(
                    "more than {MAX_EVENTS} events by {} ms: a loop without progress",
                    self.now() - EPOCH_MS
                ));
            }
            self.outbox.now.set(at.max(self.now()));
            self.step(ev)?;
            let heads = self.honest_heads();
            let all_up = self
                .nodes
                .iter()
                .all(|n| n.byzantine.is_some() || n.running.is_some());
            if self.now() >= self.gst && all_up && target.is_none() {
                let best = heads.iter().copied().max().unwrap_or(0);
                target = Some((best + HEIGHTS_AFTER_GST, self.now().max(self.last_restart)));
            }
            if let Some((height, since)) = target {
                let done = heads.iter().all(|h| *h >= height);
                if done && self.membership_done() {
                    return Ok(());
                }
                if self.now() > since + LIVENESS_MS {
                    return Err(if done {
                        format!(
                            "liveness: the set changes {:?} were not made within {LIVENESS_MS} \
                             ms after GST",
                            self.membership
                        )
                    } else {
                        format!(
                            "liveness: honest heads {heads:?} did not reach {height} within \
                             {LIVENESS_MS} ms after GST"
                        )
                    });
                }
            }
        }
        Err("the event queue ran dry".into())
    }
}

/// Another node as the syncer sees it.
struct SimPeer {
    peer: PeerId,
    store: Arc<Store>,
    liar: bool,
}

struct SimNet {
    peers: Vec<SimPeer>,
    penalties: RefCell<Vec<(PeerId, &'static str)>>,
}

impl SyncNetwork for SimNet {
    fn peers(&self) -> Vec<PeerId> {
        self.peers.iter().map(|p| p.peer).collect()
    }

    async fn request(&self, peer: PeerId, data: Vec<u8>) -> Result<Vec<u8>, RequestError> {
        let p = self
            .peers
            .iter()
            .find(|p| p.peer == peer)
            .ok_or_else(|| RequestError::Disconnected(peer, "not connected".into()))?;
        if p.liar {
            return Ok(lie(&p.store, &data));
        }
        sync::serve(&p.store, &data).map_err(|e| RequestError::Failed(peer, e))
    }

    fn penalise(&self, peer: PeerId, reason: &'static str) {
        self.penalties.borrow_mut().push((peer, reason));
    }
}

/// A stale node's answers: a head far ahead of everyone, and headers that link to nothing.
fn lie(store: &Store, request: &[u8]) -> Vec<u8> {
    use alloy_rlp::Decodable;
    let fields = Vec::<u64>::decode(&mut &*request).unwrap_or_default();
    let genesis = store.canonical_hash(0).ok().flatten().unwrap_or_default();
    match fields.as_slice() {
        [sync::STATUS, ..] => alloy_rlp::encode(sync::Status {
            number: 1_000_000,
            hash: B256::repeat_byte(0xee),
            genesis,
        }),
        [sync::HEADERS, start, ..] => alloy_rlp::encode(vec![consort_primitives::Header {
            number: *start,
            parent_hash: B256::repeat_byte(0x99),
            ..Default::default()
        }]),
        _ => alloy_rlp::encode(Vec::<Vec<u8>>::new()),
    }
}

struct SimImport<'a>(RefCell<&'a mut Driver<SimHost>>);

impl BlockImport for SimImport<'_> {
    async fn import(&self, block: Block) -> Option<Result<bool, String>> {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        self.0
            .borrow_mut()
            .handle(DriverEvent::ImportBlock(Box::new(block), Some(tx)));
        rx.try_recv().ok()
    }
}

/// Runs a future that never waits (every simulated request is answered at once).
fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("a simulated request waited"),
    }
}

/// Runs one seed; the trace on failure.
fn run_seed(seed: u64) -> Result<Vec<String>, (String, Vec<String>)> {
    let mut world = World::new(seed);
    let byz: Vec<String> = world
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| n.byzantine.map(|b| format!("n{i} {b:?}")))
        .collect();
    let gst = world.gst - EPOCH_MS;
    world.note(format!(
        "seed {seed}: GST {gst} ms, isolated {:?}, one-way {:?}, byzantine {byz:?}, \
         set changes {:?}",
        world.isolated, world.one_way, world.membership
    ));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| world.run()));
    let outcome = match result {
        Ok(r) => r,
        Err(p) => Err(p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into())),
    };
    match outcome {
        Ok(()) => Ok(std::mem::take(&mut world.trace)),
        Err(e) => Err((e, std::mem::take(&mut world.trace))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_u64(name: &str) -> Option<u64> {
        std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
    }

    fn run_range(part: u64, parts: u64) {
        let total = env_u64("CONSORT_HOST_SIM_SEEDS").unwrap_or(1_000);
        let mut failures = Vec::new();
        for seed in (part..total).step_by(parts as usize) {
            if let Err((e, trace)) = run_seed(seed) {
                let tail: Vec<&String> = trace.iter().rev().take(40).collect();
                eprintln!("seed {seed} failed: {e}\nlast events:");
                for line in tail.into_iter().rev() {
                    eprintln!("  {line}");
                }
                eprintln!(
                    "replay: CONSORT_HOST_SIM_SEED={seed} cargo test --workspace --lib \
                     sim::tests::one_seed -- --nocapture"
                );
                failures.push(seed);
            }
        }
        assert!(failures.is_empty(), "failing seeds: {failures:?}");
    }

    #[test]
    fn seeds_part_1_of_4() {
        run_range(0, 4);
    }

    #[test]
    fn seeds_part_2_of_4() {
        run_range(1, 4);
    }

    #[test]
    fn seeds_part_3_of_4() {
        run_range(2, 4);
    }

    #[test]
    fn seeds_part_4_of_4() {
        run_range(3, 4);
    }

    #[test]
    fn the_same_seed_gives_the_same_trace() {
        for seed in [7, 8, 9] {
            let a = run_seed(seed).map_err(|(e, _)| e).unwrap();
            let b = run_seed(seed).map_err(|(e, _)| e).unwrap();
            assert_eq!(a, b, "seed {seed}");
            assert!(a.len() > 10, "seed {seed} did nothing: {a:?}");
        }
    }

    /// extraData is read canonically wherever a hash covers it: a committed block whose
    /// extraData list gains an item after the seals still decodes to the same fields, hashes
    /// and seals, and is refused, so a stored block's bytes are the bytes that were sealed.
    #[test]
    fn a_block_with_an_extra_item_in_its_extra_data_is_refused() {
        let mut world = World::new(7);
        world.run().unwrap_or_else(|e| panic!("seed 7: {e}"));
        let chain = world
            .nodes
            .iter()
            .find_map(|n| n.running.as_ref())
            .map(|r| r.driver.chain().clone())
            .unwrap_or_else(|| panic!("no node running"));
        let head = chain.store.head_header().unwrap_or_else(|e| panic!("{e}"));
        let parent = chain
            .store
            .header_by_number(head.number - 1)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no parent"));
        chain
            .check_header_seals(&parent, &head)
            .unwrap_or_else(|e| panic!("the committed block: {e}"));
        let mut malleated = head.clone();
        let mut rest = &head.extra_data[..];
        let list = alloy_rlp::Header::decode(&mut rest).unwrap_or_else(|e| panic!("{e}"));
        let mut extra = Vec::new();
        alloy_rlp::Header {
            list: true,
            payload_length: list.payload_length + 1,
        }
        .encode(&mut extra);
        extra.extend_from_slice(rest);
        extra.push(alloy_rlp::EMPTY_STRING_CODE);
        malleated.extra_data = extra.into();
        assert_eq!(
            consort_primitives::bft_onchain_hash(&malleated).ok(),
            consort_primitives::bft_onchain_hash(&head).ok(),
            "the extra item changes no hash"
        );
        let err = chain
            .check_header_seals(&parent, &malleated)
            .expect_err("a malleated extraData was accepted");
        assert!(err.to_string().contains("extraData"), "{err}");
    }

    /// A gossiped batch reaches the pool through the node's judge: every transaction in it
    /// is pooled and the batch forwarded; a batch of known transactions is dropped quietly;
    /// a batch with an item that is not a transaction, or that is not a batch, costs the
    /// relaying peer.
    #[test]
    fn gossiped_transaction_batches_are_judged_transaction_by_transaction() {
        use alloy_eips::eip2718::Encodable2718;
        use consort_network::Validation;
        let mut world = World::new(7);
        world.start(0);
        let chain_id = world.genesis.chain_id;
        let key = crate::testing::DEV_KEY_0;
        let txs: Vec<Vec<u8>> = (0..3)
            .map(|n| crate::testing::typed_transfer(key, chain_id, n).encoded_2718())
            .chain([crate::testing::transfer(key, chain_id, 3).encoded_2718()])
            .collect();
        let peer = world.nodes[1].peer;
        let Some(running) = world.nodes[0].running.as_mut() else {
            panic!("n0 did not start");
        };
        let mut judge = |data: &[u8]| running.judge.judge(Topic::Transactions, peer, data).verdict;
        let batch = crate::txgossip::encode(txs.iter().map(Vec::as_slice));
        assert_eq!(judge(&batch), Validation::Accept);
        assert_eq!(running.judge.rpc.pool.lock().map(|p| p.len()).ok(), Some(4));
        let mut judge = |data: &[u8]| running.judge.judge(Topic::Transactions, peer, data).verdict;
        assert_eq!(judge(&batch), Validation::Ignore, "all known");
        let junk_item = crate::txgossip::encode([txs[0].as_slice(), &[0x02, 0x01, 0x02]]);
        assert_eq!(judge(&junk_item), Validation::Reject);
        assert_eq!(judge(&txs[0]), Validation::Reject, "a bare transaction");
    }

    #[test]
    fn one_seed() {
        let Some(seed) = env_u64("CONSORT_HOST_SIM_SEED") else {
            return;
        };
        match run_seed(seed) {
            Ok(trace) | Err((_, trace)) => {
                for line in &trace {
                    println!("{line}");
                }
            }
        }
        if let Err((e, _)) = run_seed(seed) {
            panic!("seed {seed}: {e}");
        }
    }
}
