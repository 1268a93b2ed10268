//! What arrives from peers: consensus messages for the driver, transactions for the pool,
//! blocks for import, sync requests to serve. Every gossip message gets a verdict that feeds
//! the sender's score. Also the [`PeerNetwork`] view RPC has of the network.

use crate::chain::{validators_of, Chain};
use crate::driver::DriverEvent;
use crate::metrics::QbftMetrics;
use crate::sync::{self, SyncHint};
use alloy_primitives::{Address, B256};
use alloy_rlp::Decodable;
use consort_network::{Enode, NetworkEvent, NetworkHandle, PeerId, Topic, Validation};
use consort_qbft::{Block, Input, QbftMessage};
use consort_rpc::{PeerNetwork, PeerSummary, RpcContext, RpcError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a validator sends its latest round change again (gossip is not reliable, and
/// peers that were away need it to find the round).
const REBROADCAST_INTERVAL: Duration = Duration::from_secs(5);

/// The network as JSON-RPC sees it, with our advertised enode.
#[derive(Debug)]
pub struct RpcNetwork(pub NetworkHandle, pub Enode);

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
        self.0.publish(Topic::Transactions, raw);
    }
}

/// Handles network events until the network stops.
pub(crate) struct Inbound {
    pub network: NetworkHandle,
    pub rpc: Arc<RpcContext>,
    pub chain: Chain,
    pub driver: mpsc::UnboundedSender<DriverEvent>,
    pub hints: mpsc::Sender<SyncHint>,
    pub metrics: QbftMetrics,
    /// Validators for the block after the head, cached by head hash.
    pub validators: (B256, Vec<Address>),
}

impl Inbound {
    pub(crate) async fn run(mut self, mut events: mpsc::Receiver<NetworkEvent>) {
        let mut rebroadcast = tokio::time::interval(REBROADCAST_INTERVAL);
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => self.event(event),
                    None => break,
                },
                _ = rebroadcast.tick() => self.to_driver(Input::Rebroadcast),
            }
        }
    }

    fn to_driver(&self, input: Input) {
        let _ = self.driver.send(DriverEvent::Input(input));
    }

    fn event(&mut self, event: NetworkEvent) {
        match event {
            NetworkEvent::Gossip {
                topic,
                from,
                id,
                data,
            } => {
                let verdict = match topic {
                    Topic::Consensus => self.consensus(from, &data),
                    Topic::Transactions => self.transaction(&data),
                    Topic::Blocks => self.block(from, &data),
                };
                self.network.validate(id, from, verdict);
            }
            NetworkEvent::Request {
                peer,
                data,
                channel,
            } => {
                // Reading many headers or bodies must not hold up consensus messages.
                let (store, network) = (self.chain.store.clone(), self.network.clone());
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

    /// The head number and the validators of the height after it.
    fn head(&mut self) -> Option<(u64, &[Address])> {
        let (number, hash) = self.chain.store.head().ok()??;
        if self.validators.0 != hash {
            let header = self.chain.store.head_header().ok()?;
            self.validators = (hash, validators_of(&header));
        }
        Some((number, &self.validators.1))
    }

    fn consensus(&mut self, from: PeerId, data: &[u8]) -> Validation {
        let code = data.first().copied().unwrap_or(0);
        let msg = match QbftMessage::decode_wire(data) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("undecodable consensus message from {from}: {e}");
                self.metrics.message(code, "rejected");
                return Validation::Reject;
            }
        };
        let (height, _) = msg.height_and_round();
        let author = msg.author();
        let Some((head, validators)) = self.head() else {
            return Validation::Ignore;
        };
        // Old heights, and authors that are not validators now (they may be later; not ours
        // to punish), are dropped quietly.
        if height <= head || !validators.contains(&author) {
            self.metrics.message(code, "ignored");
            return Validation::Ignore;
        }
        if height > head.saturating_add(1) {
            // Its author is ahead of us: we may be missing blocks.
            let _ = self
                .hints
                .try_send(SyncHint::Height(height.saturating_sub(1)));
        }
        self.metrics.message(code, "accepted");
        self.to_driver(Input::Message(Box::new(msg)));
        Validation::Accept
    }

    fn transaction(&self, data: &[u8]) -> Validation {
        match consort_rpc::submit_transaction(&self.rpc, data, false) {
            Ok(_) => Validation::Accept,
            Err(RpcError::Pool(consort_txpool::PoolError::Decode(_))) => Validation::Reject,
            Err(_) => Validation::Ignore,
        }
    }

    fn block(&mut self, from: PeerId, data: &[u8]) -> Validation {
        let mut buf = data;
        let Ok(block) = Block::decode(&mut buf) else {
            return Validation::Reject;
        };
        let Some((head, _)) = self.head() else {
            return Validation::Ignore;
        };
        let number = block.header.number;
        self.chain.metrics.saw_block(number);
        self.rpc.sync.saw(number);
        if number <= head {
            return Validation::Ignore;
        }
        if number > head.saturating_add(1) {
            let _ = self.hints.try_send(SyncHint::Height(number));
            return Validation::Ignore;
        }
        // The next block: its seals must be a quorum of the current validators.
        if let Err(e) = self.chain.check_seals(&block) {
            tracing::debug!("block {number} from {from} has bad seals: {e}");
            return Validation::Reject;
        }
        let _ = self
            .driver
            .send(DriverEvent::ImportBlock(Box::new(block), None));
        Validation::Accept
    }
}
