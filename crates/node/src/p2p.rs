//! What arrives from peers: consensus messages for the driver, transactions for the pool,
//! blocks for import, sync requests to serve. Every gossip message gets a verdict that feeds
//! the sender's score. Also the [`PeerNetwork`] view RPC has of the network.

use crate::chain::Chain;
use crate::driver::{DriverEvent, DriverSender};
use crate::metrics::QbftMetrics;
use crate::sync::{self, SyncHint, SyncStatus};
use crate::txgossip::{self, TxBatch, TX_BATCH_INTERVAL};
use alloy_primitives::{Address, B256};
use alloy_rlp::Decodable;
use consort_network::{Enode, NetworkEvent, NetworkHandle, PeerId, Topic, Validation};
use consort_qbft::{Block, Input, MessageError, QbftMessage};
use consort_rpc::{PeerNetwork, PeerSummary, RpcContext};
use consort_txpool::{submit_transaction, PoolError, SubmitError, TxSource};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a validator sends its latest round change again (gossip is not reliable, and
/// peers that were away need it to find the round). Longer than gossip's duplicate cache, so
/// the same bytes travel again.
const REBROADCAST_INTERVAL: Duration = Duration::from_secs(5);
const _: () =
    assert!(REBROADCAST_INTERVAL.as_millis() > consort_network::DUPLICATE_CACHE_TIME.as_millis());

/// The network as JSON-RPC sees it, with our advertised enode and the batch that local
/// transactions wait in (sent by [`Inbound`] at its interval, or here when full).
#[derive(Debug)]
pub struct RpcNetwork(pub NetworkHandle, pub Enode, pub Arc<TxBatch>);

impl PeerNetwork for RpcNetwork {
    fn enode(&self) -> String {
        self.1.to_string()
    }

    fn listen_port(&self) -> u16 {
        self.1.addr.port()
    }

    fn peers(&self) -> Vec<PeerSummary> {
        self.0
            .peers()
            .into_iter()
            .map(|p| PeerSummary {
                id: consort_network::node_id(&p.peer)
                    .map(hex::encode)
                    .unwrap_or_default(),
                enode: p.enode.map(|e| e.to_string()),
                name: p.client,
                local_address: p.local.map(|a| a.to_string()),
                remote_address: p.remote.map(|a| a.to_string()),
                inbound: p.inbound,
            })
            .collect()
    }

    fn peer_count(&self) -> usize {
        self.0.peer_count()
    }

    fn add_peer(&self, enode: &str) -> Result<bool, String> {
        let enode: Enode = enode.parse().map_err(|e| format!("{e}"))?;
        Ok(self.0.add_peer(enode))
    }

    fn remove_peer(&self, enode: &str) -> Result<bool, String> {
        let enode: Enode = enode.parse().map_err(|e| format!("{e}"))?;
        Ok(self.0.remove_peer(enode))
    }

    fn broadcast_transaction(&self, raw: Vec<u8>) {
        if let Some(full) = self.2.push(&raw) {
            self.0.publish(Topic::Transactions, full);
        }
    }
}

/// The verdict on one gossip message and what follows from it.
#[derive(Debug)]
pub(crate) struct Judged {
    /// What gossipsub is told (it feeds the relaying peer's score).
    pub verdict: Validation,
    /// What the driver should get.
    pub event: Option<DriverEvent>,
    /// A height the message suggests we are behind at (for the syncer).
    pub hint: Option<u64>,
}

impl Judged {
    fn just(verdict: Validation) -> Self {
        Judged {
            verdict,
            event: None,
            hint: None,
        }
    }
}

/// Judges gossip: the checks every consensus message, block and transaction from a peer
/// passes before anything acts on it. The node and the simulator run the same judge.
#[derive(Debug)]
pub(crate) struct GossipJudge {
    pub rpc: Arc<RpcContext>,
    pub chain: Chain,
    pub metrics: QbftMetrics,
    /// Sync progress: a sealed block from gossip raises the highest block seen.
    pub sync: Arc<SyncStatus>,
    /// Validators for the block after the head, cached by head hash.
    pub validators: (B256, Vec<Address>),
}

impl GossipJudge {
    pub(crate) fn new(
        rpc: Arc<RpcContext>,
        chain: Chain,
        metrics: QbftMetrics,
        sync: Arc<SyncStatus>,
    ) -> Self {
        GossipJudge {
            rpc,
            chain,
            metrics,
            sync,
            validators: Default::default(),
        }
    }

    pub(crate) fn judge(&mut self, topic: Topic, from: PeerId, data: &[u8]) -> Judged {
        match topic {
            Topic::Consensus => self.consensus(from, data),
            Topic::Transactions => Judged::just(self.transactions(data)),
            Topic::Blocks => self.block(from, data),
        }
    }

    /// The head number and the validators of the height after it.
    fn head(&mut self) -> Option<(u64, &[Address])> {
        let (number, hash) = self.chain.store.head().ok()??;
        if self.validators.0 != hash {
            let header = self.chain.store.head_header().ok()?;
            self.validators = (hash, self.chain.validators_after(&header));
        }
        Some((number, &self.validators.1))
    }

    /// A consensus message, cheapest check first: its author must be a current validator
    /// (one signature recovery) before anything it carries is decoded or recovered. Invalid
    /// messages and messages from non-validators are rejected, which costs the relaying peer
    /// its gossip score.
    fn consensus(&mut self, from: PeerId, data: &[u8]) -> Judged {
        let code = data.first().copied().unwrap_or(0);
        let Some((head, validators)) = self.head() else {
            return Judged::just(Validation::Ignore);
        };
        let msg = match QbftMessage::decode_wire_from(data, validators) {
            Ok(m) => m,
            Err(e) => {
                match e {
                    MessageError::NotValidator(_) => {
                        tracing::trace!("consensus message from {from}: {e}")
                    }
                    _ => tracing::debug!("undecodable consensus message from {from}: {e}"),
                }
                self.metrics.message(code, "rejected");
                return Judged::just(Validation::Reject);
            }
        };
        let (height, _) = msg.height_and_round();
        // Old heights are dropped quietly: an honest validator's resend may arrive late.
        if height <= head {
            self.metrics.message(code, "ignored");
            return Judged::just(Validation::Ignore);
        }
        self.metrics.message(code, "accepted");
        Judged {
            verdict: Validation::Accept,
            event: Some(DriverEvent::Input(Input::Message(Box::new(msg)))),
            // Its author is ahead of us: we may be missing blocks.
            hint: (height > head.saturating_add(1)).then(|| height.saturating_sub(1)),
        }
    }

    /// A batch of transactions ([`txgossip`]): rejected if it or any transaction in it does
    /// not decode; forwarded if the pool took any of them; otherwise (all known, stale, or
    /// refused by the pool's rules) dropped quietly. The pool judges each transaction as it
    /// judges one sent over JSON-RPC.
    fn transactions(&self, data: &[u8]) -> Validation {
        let Ok(txs) = txgossip::decode(data) else {
            return Validation::Reject;
        };
        let ctx = &self.rpc;
        let mut verdict = Validation::Ignore;
        for raw in txs {
            match submit_transaction(
                &ctx.pool,
                &ctx.pool_metrics,
                &ctx.store,
                raw,
                TxSource::Remote,
            ) {
                Ok(tx) => {
                    let _ = ctx.pending_txs.send(tx.hash);
                    verdict = Validation::Accept;
                }
                Err(SubmitError::Pool(PoolError::Decode(_))) => return Validation::Reject,
                Err(_) => {}
            }
        }
        verdict
    }

    fn block(&mut self, from: PeerId, data: &[u8]) -> Judged {
        let mut buf = data;
        let Ok(block) = Block::decode(&mut buf) else {
            return Judged::just(Validation::Reject);
        };
        let Some((head, _)) = self.head() else {
            return Judged::just(Validation::Ignore);
        };
        let number = block.header.number;
        if number <= head {
            return Judged::just(Validation::Ignore);
        }
        if number > head.saturating_add(1) {
            // A claim only: the syncer checks it against headers before anything trusts it.
            return Judged {
                verdict: Validation::Ignore,
                event: None,
                hint: Some(number),
            };
        }
        // The next block: its seals must be a quorum of the current validators.
        if let Err(e) = self.chain.check_seals(&block) {
            tracing::debug!("block {number} from {from} has bad seals: {e}");
            return Judged::just(Validation::Reject);
        }
        self.chain.metrics.saw_block(number);
        self.sync.saw(number);
        Judged {
            verdict: Validation::Accept,
            event: Some(DriverEvent::ImportBlock(Box::new(block), None)),
            hint: None,
        }
    }
}

/// Handles network events until the network stops.
pub(crate) struct Inbound {
    pub network: NetworkHandle,
    pub judge: GossipJudge,
    pub driver: DriverSender,
    pub hints: mpsc::Sender<SyncHint>,
    /// The handler as an executor: what the network queued, what was handled.
    pub executor: consort_metrics::Executor,
    /// Local transactions waiting to be gossiped, sent every [`TX_BATCH_INTERVAL`].
    pub txs: Arc<TxBatch>,
}

impl Inbound {
    pub(crate) async fn run(mut self, mut events: mpsc::Receiver<NetworkEvent>) {
        let mut rebroadcast = tokio::time::interval(REBROADCAST_INTERVAL);
        let mut send_txs = tokio::time::interval(TX_BATCH_INTERVAL);
        send_txs.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.executor.started(1);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => {
                        self.executor.took();
                        self.event(event);
                        self.executor.done();
                    }
                    None => break,
                },
                _ = rebroadcast.tick() => {
                    self.to_driver(Input::Rebroadcast);
                }
                _ = send_txs.tick() => {
                    if let Some(batch) = self.txs.take() {
                        self.network.publish(Topic::Transactions, batch);
                    }
                }
            }
        }
    }

    fn to_driver(&self, input: Input) -> bool {
        self.driver.offer(DriverEvent::Input(input))
    }

    fn event(&mut self, event: NetworkEvent) {
        match event {
            NetworkEvent::Gossip {
                topic,
                from,
                id,
                data,
            } => {
                let judged = self.judge.judge(topic, from, &data);
                let mut verdict = judged.verdict;
                if let Some(h) = judged.hint {
                    let _ = self.hints.try_send(SyncHint::Height(h));
                }
                if let Some(event) = judged.event {
                    if !self.driver.offer(event) {
                        // The driver is overloaded: not the peer's fault, and not forwarded.
                        if topic == Topic::Consensus {
                            let code = data.first().copied().unwrap_or(0);
                            self.judge.metrics.message(code, "dropped");
                        }
                        verdict = Validation::Ignore;
                    }
                }
                self.network.validate(id, from, verdict);
            }
            NetworkEvent::Request {
                peer,
                data,
                channel,
            } => {
                // Reading many headers or bodies must not hold up consensus messages.
                let (store, network) = (self.judge.chain.store.clone(), self.network.clone());
                tokio::task::spawn_blocking(move || {
                    let answer = sync::serve(&store, &data);
                    if let Err(e) = &answer {
                        tracing::debug!("bad sync request from {peer}: {e}");
                    }
                    network.respond(channel, answer.unwrap_or_default());
                });
            }
            NetworkEvent::Subscribed { topic, .. } => {
                if topic == Topic::Consensus {
                    self.to_driver(Input::Rebroadcast);
                }
            }
            NetworkEvent::Connected(_) => {
                let _ = self.hints.try_send(SyncHint::Peer);
            }
            NetworkEvent::Disconnected(_) => {}
        }
    }
}
