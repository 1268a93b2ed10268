//! The libp2p swarm and the task that drives it. The rest of the node talks to it through a
//! [`NetworkHandle`] (commands) and a stream of [`NetworkEvent`]s.

use crate::codec::{BytesCodec, MAX_RESPONSE_BYTES};
use crate::enode::{enode_of, keypair, multiaddr_socket, socket_multiaddr, Enode};
use crate::gate::{ConnectionGate, Gate};
use crate::metrics::NetworkMetrics;
use crate::{NetworkError, Result};
use alloy_primitives::keccak256;
use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, TopicHash};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    allow_block_list, connection_limits, identify, kad, noise, ping, tcp, yamux, Multiaddr, PeerId,
    StreamProtocol, Swarm,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Commands waiting for the swarm task; beyond this, publishing drops messages.
const COMMAND_QUEUE: usize = 4096;
/// Events waiting for the node; beyond this, gossip is dropped (and ignored for scoring).
const EVENT_QUEUE: usize = 4096;
/// Largest gossip message (a proposal carries a whole block).
pub const MAX_GOSSIP_BYTES: usize = MAX_RESPONSE_BYTES;
/// How long a sync request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Penalties ([`NetworkHandle::penalise`]) that get a peer banned.
pub const PENALTIES_TO_BAN: u32 = 3;
/// How long a banned peer is refused (in both directions).
pub const BAN_DURATION: Duration = Duration::from_secs(600);
/// How long gossip remembers a message ID, dropping copies. Shorter than the interval at which
/// a validator sends its latest round change again, so that resend is not a duplicate.
pub const DUPLICATE_CACHE_TIME: Duration = Duration::from_secs(4);
/// Gossipsub application score per penalty (graylisted at -80 by default).
const PENALTY_SCORE: f64 = -30.0;

/// How the network is set up.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// The node key; its public key is the peer ID.
    pub key: secp256k1::SecretKey,
    /// Address to listen on (`--p2p-host`, `--p2p-port`).
    pub listen: SocketAddr,
    /// Bootnodes (`--bootnodes`): dialled at start and whenever disconnected.
    pub bootnodes: Vec<Enode>,
    /// Static nodes (`--static-nodes-file`): always kept connected.
    pub static_nodes: Vec<Enode>,
    /// Most connected peers (`--max-peers`).
    pub max_peers: u32,
    /// Learn peers beyond the bootnodes (`--discovery-enabled`).
    pub discovery: bool,
    /// Scopes topics and protocols so different chains never mix (chain ID and genesis hash).
    pub network_id: String,
    /// Sent to peers in identify.
    pub client_version: String,
    /// How often missing peers are dialled again.
    pub redial_interval: Duration,
    /// The host other nodes know this one by (`--p2p-host`); the listening IP when `None`.
    pub advertised_host: Option<IpAddr>,
    /// Decides which peers may connect (node permissioning); every peer may when `None`.
    pub gate: Option<Arc<dyn ConnectionGate>>,
}

/// The gossip topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Topic {
    /// QBFT messages: one code byte, then the message RLP.
    Consensus,
    /// Raw signed transactions.
    Transactions,
    /// Sealed blocks, RLP.
    Blocks,
}

impl Topic {
    const ALL: [Topic; 3] = [Topic::Consensus, Topic::Transactions, Topic::Blocks];

    fn name(self) -> &'static str {
        match self {
            Topic::Consensus => "qbft",
            Topic::Transactions => "transactions",
            Topic::Blocks => "blocks",
        }
    }
}

/// The verdict on a gossip message, which also feeds the sender's score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// Valid: forward it.
    Accept,
    /// Malformed or forged: drop it and penalise the peer that sent it.
    Reject,
    /// Not useful now (old, duplicate, not ours to judge): drop it quietly.
    Ignore,
}

/// What the network tells the node.
#[derive(Debug)]
pub enum NetworkEvent {
    /// A gossip message; answer with [`NetworkHandle::validate`].
    Gossip {
        /// Its topic.
        topic: Topic,
        /// The peer that forwarded it.
        from: PeerId,
        /// Its gossip ID.
        id: MessageId,
        /// The payload.
        data: Vec<u8>,
    },
    /// A sync request; answer with [`NetworkHandle::respond`].
    Request {
        /// Who asks.
        peer: PeerId,
        /// The request bytes.
        data: Vec<u8>,
        /// Where the answer goes.
        channel: ResponseChannel<Vec<u8>>,
    },
    /// A peer joined a topic (a moment to resend what it may have missed).
    Subscribed {
        /// The peer.
        peer: PeerId,
        /// The topic.
        topic: Topic,
    },
    /// A peer connected.
    Connected(PeerId),
    /// A peer's last connection closed.
    Disconnected(PeerId),
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The network task is gone.
    #[error("network stopped")]
    Stopped,
    /// The peer did not answer in time or broke the protocol.
    #[error("request to {0} failed: {1}")]
    Failed(PeerId, String),
    /// The connection closed or could not be made before an answer came: no fault of the
    /// peer's by itself (a restart, `admin_removePeer`, a cut link).
    #[error("request to {0} lost its connection: {1}")]
    Disconnected(PeerId, String),
}

/// A connected peer, as `admin_peers` shows it.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// Its peer ID.
    pub peer: PeerId,
    /// Its enode (node ID at the remote address, or its advertised listening address).
    pub enode: Option<Enode>,
    /// The remote end of the connection.
    pub remote: Option<SocketAddr>,
    /// Our end of the connection.
    pub local: Option<SocketAddr>,
    /// Whether it dialled us.
    pub inbound: bool,
    /// Its client version (from identify).
    pub client: Option<String>,
    /// Its listening address (from identify).
    pub listen: Option<SocketAddr>,
}

enum Command {
    Publish(Topic, Vec<u8>),
    Validate(MessageId, PeerId, Validation),
    Request(
        PeerId,
        Vec<u8>,
        oneshot::Sender<std::result::Result<Vec<u8>, RequestError>>,
    ),
    Respond(ResponseChannel<Vec<u8>>, Vec<u8>),
    AddPeer(Enode),
    RemovePeer(Enode),
    Penalise(PeerId, &'static str),
    Recheck,
    Stop,
}

#[derive(Debug)]
struct Shared {
    enode: Enode,
    peers: Mutex<BTreeMap<PeerId, PeerInfo>>,
}

/// Talks to the swarm task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NetworkHandle {
    commands: mpsc::Sender<Command>,
    executor: consort_metrics::Executor,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Publish(..) => "Publish",
            Command::Validate(..) => "Validate",
            Command::Request(..) => "Request",
            Command::Respond(..) => "Respond",
            Command::AddPeer(_) => "AddPeer",
            Command::RemovePeer(_) => "RemovePeer",
            Command::Penalise(..) => "Penalise",
            Command::Recheck => "Recheck",
            Command::Stop => "Stop",
        })
    }
}

impl NetworkHandle {
    /// Our enode URL.
    pub fn enode(&self) -> &Enode {
        &self.shared.enode
    }

    fn peers_lock(&self) -> MutexGuard<'_, BTreeMap<PeerId, PeerInfo>> {
        self.shared
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The connected peers.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.peers_lock().values().cloned().collect()
    }

    /// How many peers are connected.
    pub fn peer_count(&self) -> usize {
        self.peers_lock().len()
    }

    fn send(&self, cmd: Command) -> bool {
        self.executor.queuing();
        let sent = self.commands.try_send(cmd);
        self.executor.queued(sent.is_ok());
        match sent {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!("network command dropped: {e}");
                false
            }
        }
    }

    /// Gossips `data` on `topic`.
    pub fn publish(&self, topic: Topic, data: Vec<u8>) {
        self.send(Command::Publish(topic, data));
    }

    /// Reports the verdict on a gossip message.
    pub fn validate(&self, id: MessageId, from: PeerId, verdict: Validation) {
        self.send(Command::Validate(id, from, verdict));
    }

    /// Sends a sync request and waits for the answer.
    pub async fn request(
        &self,
        peer: PeerId,
        data: Vec<u8>,
    ) -> std::result::Result<Vec<u8>, RequestError> {
        let (tx, rx) = oneshot::channel();
        if !self.send(Command::Request(peer, data, tx)) {
            return Err(RequestError::Stopped);
        }
        rx.await.unwrap_or(Err(RequestError::Stopped))
    }

    /// Answers a sync request.
    pub fn respond(&self, channel: ResponseChannel<Vec<u8>>, data: Vec<u8>) {
        self.send(Command::Respond(channel, data));
    }

    /// Keeps a peer connected from now on (`admin_addPeer`); lifts a removal.
    pub fn add_peer(&self, enode: Enode) -> bool {
        self.send(Command::AddPeer(enode))
    }

    /// Disconnects a peer and refuses it until it is added again (`admin_removePeer`).
    pub fn remove_peer(&self, enode: Enode) -> bool {
        self.send(Command::RemovePeer(enode))
    }

    /// Records that `peer` misbehaved outside gossip (a sync answer it cannot back, say):
    /// its gossip score drops, and after [`PENALTIES_TO_BAN`] penalties it is disconnected and
    /// refused for [`BAN_DURATION`]. `reason` labels the metric.
    pub fn penalise(&self, peer: PeerId, reason: &'static str) {
        self.send(Command::Penalise(peer, reason));
    }

    /// Asks the gate again about every connected peer and disconnects those it no longer
    /// permits (the rules changed).
    pub fn recheck_peers(&self) {
        self.send(Command::Recheck);
    }

    /// Stops the swarm task.
    pub fn stop(&self) {
        self.send(Command::Stop);
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    // First: a connection it refuses never reaches the other behaviours.
    gate: Gate,
    blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<BytesCodec>,
    kad: kad::Behaviour<kad::store::MemoryStore>,
}

/// Starts the network: listens, dials the bootnodes and static nodes, and returns once the
/// listening address is known.
pub async fn start(
    config: NetworkConfig,
    metrics: NetworkMetrics,
) -> Result<(NetworkHandle, mpsc::Receiver<NetworkEvent>)> {
    let key = keypair(&config.key).ok_or(NetworkError::Key)?;
    let local = key.public().to_peer_id();
    let topics: BTreeMap<Topic, IdentTopic> = Topic::ALL
        .into_iter()
        .map(|t| {
            let name = format!("/consort/{}/{}", config.network_id, t.name());
            (t, IdentTopic::new(name))
        })
        .collect();
    let gossip = gossip_behaviour(&key, &topics)?;
    let sync_protocol =
        StreamProtocol::try_from_owned(format!("/consort/{}/sync/1", config.network_id))
            .map_err(|e| NetworkError::Setup(e.to_string()))?;
    let kad_protocol =
        StreamProtocol::try_from_owned(format!("/consort/{}/kad/1", config.network_id))
            .map_err(|e| NetworkError::Setup(e.to_string()))?;
    let max_peers = config.max_peers;
    let client_version = config.client_version.clone();
    let network_id = config.network_id.clone();
    let gate = config.gate.clone();
    let bootnodes = config.bootnodes.clone();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NetworkError::Setup(e.to_string()))?
        .with_behaviour(|key| {
            let mut kad_config = kad::Config::new(kad_protocol);
            kad_config.set_periodic_bootstrap_interval(Some(Duration::from_secs(30)));
            let mut kad =
                kad::Behaviour::with_config(local, kad::store::MemoryStore::new(local), kad_config);
            kad.set_mode(Some(kad::Mode::Server));
            Behaviour {
                gate: Gate::new(gate, &bootnodes),
                blocked: Default::default(),
                limits: connection_limits::Behaviour::new(
                    connection_limits::ConnectionLimits::default()
                        // Two per peer: simultaneous dials in both directions must not both die.
                        .with_max_established_per_peer(Some(2))
                        .with_max_established(Some(max_peers.saturating_mul(2)))
                        .with_max_pending_incoming(Some(max_peers.max(8))),
                ),
                identify: identify::Behaviour::new(
                    identify::Config::new(format!("/consort/{network_id}/1"), key.public())
                        .with_agent_version(client_version),
                ),
                ping: ping::Behaviour::new(ping::Config::new()),
                gossipsub: gossip,
                sync: request_response::Behaviour::with_codec(
                    BytesCodec,
                    [(sync_protocol, ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(REQUEST_TIMEOUT)
                        .with_max_concurrent_streams(64),
                ),
                kad,
            }
        })
        .map_err(|e| NetworkError::Setup(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    for topic in topics.values() {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(topic)
            .map_err(|e| NetworkError::Setup(e.to_string()))?;
    }
    swarm
        .listen_on(socket_multiaddr(config.listen))
        .map_err(|e| NetworkError::Listen(config.listen, e.to_string()))?;
    // Wait for the actual address (the port may have been 0).
    let listen = loop {
        match tokio::time::timeout(Duration::from_secs(10), swarm.select_next_some()).await {
            Ok(SwarmEvent::NewListenAddr { address, .. }) => {
                if let Some(addr) = multiaddr_socket(&address) {
                    break addr;
                }
            }
            Ok(SwarmEvent::ListenerError { error, .. }) => {
                return Err(NetworkError::Listen(config.listen, error.to_string()))
            }
            Ok(SwarmEvent::ListenerClosed { reason, .. }) => {
                let reason = reason.err().map_or("closed".into(), |e| e.to_string());
                return Err(NetworkError::Listen(config.listen, reason));
            }
            Ok(_) => {}
            Err(_) => {
                return Err(NetworkError::Listen(
                    config.listen,
                    "no listening address".into(),
                ))
            }
        }
    };
    let enode = enode_of(&local, listen).ok_or(NetworkError::Key)?;
    if let Some(gate) = &config.gate {
        let host = config.advertised_host.unwrap_or(listen.ip());
        let advertised = Enode {
            id: enode.id,
            addr: SocketAddr::new(host, listen.port()),
        };
        gate.local_enode(&advertised);
    }
    let shared = Arc::new(Shared {
        enode,
        peers: Mutex::new(BTreeMap::new()),
    });
    let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let (events, event_rx) = mpsc::channel(EVENT_QUEUE);
    let mut wanted: BTreeMap<PeerId, Multiaddr> = BTreeMap::new();
    for enode in config.bootnodes.iter().chain(&config.static_nodes) {
        let peer = enode.peer_id();
        if peer != local {
            wanted.insert(peer, enode.multiaddr());
            let behaviour = swarm.behaviour_mut();
            behaviour.kad.add_address(&peer, enode.multiaddr());
            behaviour.gate.know(peer, enode.addr);
        }
    }
    metrics.peer_limit.set(i64::from(max_peers));
    metrics.commands.started(1);
    let executor = metrics.commands.clone();
    let task = Task {
        swarm,
        topics,
        config,
        shared: shared.clone(),
        events,
        wanted,
        pending: HashMap::new(),
        metrics,
        penalties: HashMap::new(),
        bans: HashMap::new(),
        closing: HashMap::new(),
    };
    tokio::spawn(task.run(command_rx));
    Ok((
        NetworkHandle {
            commands,
            executor,
            shared,
        },
        event_rx,
    ))
}

fn gossip_behaviour(
    key: &libp2p::identity::Keypair,
    topics: &BTreeMap<Topic, IdentTopic>,
) -> Result<gossipsub::Behaviour> {
    let setup = |e: &dyn std::fmt::Display| NetworkError::Setup(format!("gossipsub: {e}"));
    let config = gossipsub::ConfigBuilder::default()
        .heartbeat_interval(Duration::from_millis(700))
        .validation_mode(gossipsub::ValidationMode::Permissive)
        .validate_messages()
        .max_transmit_size(MAX_GOSSIP_BYTES)
        .mesh_n(8)
        .mesh_n_low(4)
        .mesh_n_high(12)
        .mesh_outbound_min(2)
        // Every message is known by its content: a copy republished under another sequence
        // number or by another peer is a duplicate, and no message can take another's ID.
        // The duplicate cache is shorter than the round-change resend interval, so a
        // validator's resend of its latest round change travels again.
        .message_id_fn(|m: &gossipsub::Message| {
            let mut topic_and_data = m.topic.as_str().as_bytes().to_vec();
            topic_and_data.extend_from_slice(&m.data);
            MessageId::from(keccak256(&topic_and_data).to_vec())
        })
        .duplicate_cache_time(DUPLICATE_CACHE_TIME)
        .build()
        .map_err(|e| setup(&e))?;
    let mut gossip = gossipsub::Behaviour::new(
        gossipsub::MessageAuthenticity::Author(key.public().to_peer_id()),
        config,
    )
    .map_err(|e| setup(&e))?;
    let params = gossipsub::PeerScoreParams {
        // Consortium nodes often share one address (containers, one host).
        ip_colocation_factor_weight: 0.0,
        topics: topics.values().map(|t| (t.hash(), topic_score())).collect(),
        ..Default::default()
    };
    gossip
        .with_peer_score(params, gossipsub::PeerScoreThresholds::default())
        .map_err(|e| setup(&e))?;
    Ok(gossip)
}

/// Scores only what a small, quiet network can judge fairly: invalid messages cost a lot,
/// first deliveries earn a little; mesh delivery rates are not scored (traffic is low).
fn topic_score() -> gossipsub::TopicScoreParams {
    gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.0,
        first_message_deliveries_weight: 0.1,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -20.0,
        invalid_message_deliveries_decay: 0.5,
        ..Default::default()
    }
}

struct Task {
    swarm: Swarm<Behaviour>,
    topics: BTreeMap<Topic, IdentTopic>,
    config: NetworkConfig,
    shared: Arc<Shared>,
    events: mpsc::Sender<NetworkEvent>,
    /// Peers kept connected: bootnodes, static nodes, added peers.
    wanted: BTreeMap<PeerId, Multiaddr>,
    pending:
        HashMap<OutboundRequestId, oneshot::Sender<std::result::Result<Vec<u8>, RequestError>>>,
    metrics: NetworkMetrics,
    /// Penalties per peer since it was last banned.
    penalties: HashMap<PeerId, u32>,
    /// Banned peers and when their ban ends.
    bans: HashMap<PeerId, std::time::Instant>,
    /// Why we are closing a peer's connection, for the disconnect metric.
    closing: HashMap<PeerId, &'static str>,
}

impl Task {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut maintenance = tokio::time::interval(self.config.redial_interval);
        let mut discovery = tokio::time::interval(Duration::from_secs(10));
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Stop) | None => break,
                    Some(cmd) => {
                        self.metrics.commands.took();
                        self.command(cmd);
                        self.metrics.commands.done();
                    }
                },
                event = self.swarm.select_next_some() => self.swarm_event(event),
                _ = maintenance.tick() => {
                    self.lift_bans();
                    self.dial_missing();
                }
                _ = discovery.tick() => {
                    if self.config.discovery {
                        self.swarm.behaviour_mut().kad.get_closest_peers(PeerId::random());
                    }
                }
            }
        }
        tracing::debug!("network stopped");
    }

    fn topic_of(&self, hash: &TopicHash) -> Option<Topic> {
        self.topics
            .iter()
            .find(|(_, t)| t.hash() == *hash)
            .map(|(k, _)| *k)
    }

    fn command(&mut self, cmd: Command) {
        let behaviour = self.swarm.behaviour_mut();
        match cmd {
            Command::Publish(topic, data) => {
                let Some(t) = self.topics.get(&topic) else {
                    return;
                };
                let len = data.len();
                match behaviour.gossipsub.publish(t.clone(), data) {
                    Ok(_) => self.metrics.outbound(topic, len),
                    // Alone, or a copy of something already seen: nothing to do.
                    Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                        self.metrics
                            .unpublished
                            .with_label_values(&["no_peers"])
                            .inc();
                    }
                    Err(gossipsub::PublishError::Duplicate) => {
                        self.metrics
                            .unpublished
                            .with_label_values(&["duplicate"])
                            .inc();
                    }
                    Err(e) => {
                        self.metrics.unpublished.with_label_values(&["error"]).inc();
                        tracing::debug!("publish on {topic:?} failed: {e}");
                    }
                }
            }
            Command::Validate(id, from, verdict) => {
                let (acceptance, label) = match verdict {
                    Validation::Accept => (MessageAcceptance::Accept, "accept"),
                    Validation::Reject => (MessageAcceptance::Reject, "reject"),
                    Validation::Ignore => (MessageAcceptance::Ignore, "ignore"),
                };
                self.metrics.validations.with_label_values(&[label]).inc();
                behaviour
                    .gossipsub
                    .report_message_validation_result(&id, &from, acceptance);
            }
            Command::Request(peer, data, reply) => {
                self.metrics.requests.with_label_values(&["sent"]).inc();
                let id = behaviour.sync.send_request(&peer, data);
                self.pending.insert(id, reply);
            }
            Command::Respond(channel, data) => {
                self.metrics.requests.with_label_values(&["served"]).inc();
                // The peer may have gone; nothing to do then.
                let _ = behaviour.sync.send_response(channel, data);
            }
            Command::AddPeer(enode) => {
                let peer = enode.peer_id();
                behaviour.blocked.unblock_peer(peer);
                behaviour.kad.add_address(&peer, enode.multiaddr());
                behaviour.gate.know(peer, enode.addr);
                self.wanted.insert(peer, enode.multiaddr());
                self.dial(peer);
            }
            Command::RemovePeer(enode) => {
                let peer = enode.peer_id();
                self.wanted.remove(&peer);
                behaviour.blocked.block_peer(peer);
                behaviour.kad.remove_peer(&peer);
            }
            Command::Penalise(peer, reason) => self.penalise(peer, reason),
            Command::Recheck => self.recheck(),
            Command::Stop => {}
        }
    }

    fn penalise(&mut self, peer: PeerId, reason: &'static str) {
        self.metrics.penalised(reason);
        let count = self.penalties.entry(peer).or_insert(0);
        *count = count.saturating_add(1);
        let count = *count;
        let behaviour = self.swarm.behaviour_mut();
        behaviour
            .gossipsub
            .set_application_score(&peer, PENALTY_SCORE * f64::from(count));
        if count < PENALTIES_TO_BAN || self.bans.contains_key(&peer) {
            tracing::debug!("peer {peer} penalised ({reason}, {count} of {PENALTIES_TO_BAN})");
            return;
        }
        tracing::warn!("banning peer {peer} for {BAN_DURATION:?}: {reason}");
        self.penalties.remove(&peer);
        self.bans
            .insert(peer, std::time::Instant::now() + BAN_DURATION);
        self.closing.insert(peer, "USELESS_PEER_BY_REPUTATION");
        // Blocking closes its connections and refuses new ones in both directions.
        behaviour.blocked.block_peer(peer);
    }

    /// Disconnects the peers the gate no longer permits (Besu's `REQUESTED` disconnect).
    fn recheck(&mut self) {
        for peer in self.swarm.behaviour().gate.no_longer_permitted() {
            tracing::info!(%peer, "disconnecting a peer that is no longer permitted");
            self.closing.insert(peer, "REQUESTED");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    /// Besu's insufficient-peers rule lets only bootnodes in while no other peer is connected:
    /// when the first other peer connects or the last one leaves, every peer is judged again.
    fn bootstrap_changed(&mut self, peer: PeerId) {
        let gate = &self.swarm.behaviour().gate;
        if !gate.is_bootnode(&peer) && gate.non_bootnode_peers() <= 1 {
            self.recheck();
        }
    }

    /// Lets peers whose ban has ended connect again (a removed peer stays blocked).
    fn lift_bans(&mut self) {
        let now = std::time::Instant::now();
        let ended: Vec<PeerId> = self
            .bans
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in ended {
            self.bans.remove(&peer);
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        }
    }

    /// Whether a newly connected peer would take us past `--max-peers`. A wanted peer (bootnode,
    /// static node, added peer) takes the place of one that is not wanted, if there is one.
    fn over_limit(&mut self, newcomer: PeerId) -> bool {
        let limit = usize::try_from(self.config.max_peers).unwrap_or(usize::MAX);
        let connected: Vec<PeerId> = self
            .shared
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .copied()
            .collect();
        if connected.len() < limit {
            return false;
        }
        if self.wanted.contains_key(&newcomer) {
            if let Some(unwanted) = connected.iter().find(|p| !self.wanted.contains_key(p)) {
                self.closing.insert(*unwanted, "TOO_MANY_PEERS");
                let _ = self.swarm.disconnect_peer_id(*unwanted);
                return false;
            }
        }
        true
    }

    fn dial(&mut self, peer: PeerId) {
        let Some(addr) = self.wanted.get(&peer).cloned() else {
            return;
        };
        if self.swarm.is_connected(&peer) || peer == *self.swarm.local_peer_id() {
            return;
        }
        // Not dialled while not permitted: the gate would refuse the connection anyway.
        let permitted = multiaddr_socket(&addr)
            .and_then(|a| enode_of(&peer, a))
            .is_some_and(|e| self.swarm.behaviour().gate.permits(&e, false));
        if !permitted {
            return;
        }
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![addr])
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            tracing::trace!("dial {peer}: {e}");
        }
    }

    /// Dials wanted peers that are not connected, then (with discovery) peers learnt from
    /// others, while below the peer limit.
    fn dial_missing(&mut self) {
        let connected = self.shared_peers_len();
        let limit = usize::try_from(self.config.max_peers).unwrap_or(usize::MAX);
        let wanted: Vec<PeerId> = self.wanted.keys().copied().collect();
        for peer in wanted {
            self.dial(peer);
        }
        if !self.config.discovery || connected >= limit {
            return;
        }
        let mut learnt: Vec<(PeerId, Multiaddr)> = Vec::new();
        for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
            for entry in bucket.iter() {
                let peer = *entry.node.key.preimage();
                if let Some(addr) = entry.node.value.iter().next() {
                    learnt.push((peer, addr.clone()));
                }
            }
        }
        let blocked: BTreeSet<PeerId> = self
            .swarm
            .behaviour()
            .blocked
            .blocked_peers()
            .iter()
            .copied()
            .collect();
        for (peer, addr) in learnt.into_iter().take(limit.saturating_sub(connected)) {
            if self.swarm.is_connected(&peer) || blocked.contains(&peer) {
                continue;
            }
            let opts = DialOpts::peer_id(peer)
                .addresses(vec![addr])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            let _ = self.swarm.dial(opts);
        }
    }

    fn shared_peers_len(&self) -> usize {
        self.shared
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    fn update_peer(&self, peer: PeerId, update: impl FnOnce(&mut PeerInfo)) {
        let mut peers = self
            .shared
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(info) = peers.get_mut(&peer) {
            update(info);
        }
        let len = peers.len();
        self.metrics
            .count_clients(peers.values().map(|p| p.client.as_deref()));
        drop(peers);
        self.metrics
            .peers
            .set(i64::try_from(len).unwrap_or(i64::MAX));
    }

    fn emit(&self, event: NetworkEvent) -> bool {
        self.metrics.events.queuing();
        let sent = self.events.try_send(event).is_ok();
        self.metrics.events.queued(sent);
        sent
    }

    fn swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } => {
                if num_established.get() > 1 {
                    return;
                }
                if self.over_limit(peer_id) {
                    tracing::debug!("peer {peer_id} refused: --max-peers reached");
                    self.metrics.disconnected("local", "TOO_MANY_PEERS");
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                let (inbound, remote, local) = match &endpoint {
                    ConnectedPoint::Dialer { address, .. } => {
                        (false, multiaddr_socket(address), None)
                    }
                    ConnectedPoint::Listener {
                        send_back_addr,
                        local_addr,
                        ..
                    } => (
                        true,
                        multiaddr_socket(send_back_addr),
                        multiaddr_socket(local_addr),
                    ),
                };
                let listen = self
                    .wanted
                    .get(&peer_id)
                    .and_then(multiaddr_socket)
                    .or(if inbound { None } else { remote });
                let info = PeerInfo {
                    peer: peer_id,
                    enode: listen.or(remote).and_then(|a| enode_of(&peer_id, a)),
                    remote,
                    local,
                    inbound,
                    client: None,
                    listen,
                };
                self.shared
                    .peers
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(peer_id, info);
                self.update_peer(peer_id, |_| {});
                self.metrics.connected.inc();
                tracing::debug!("peer connected: {peer_id}");
                self.emit(NetworkEvent::Connected(peer_id));
                self.bootstrap_changed(peer_id);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                cause,
                ..
            } => {
                if num_established > 0 {
                    return;
                }
                let known = self
                    .shared
                    .peers
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&peer_id)
                    .is_some();
                let ours = self.closing.remove(&peer_id);
                if !known {
                    // Refused at the peer limit: counted when it was refused.
                    return;
                }
                self.update_peer(peer_id, |_| {});
                let (initiator, reason) = match (ours, &cause) {
                    (Some(reason), _) => ("local", reason),
                    (None, None) => ("local", "REQUESTED"),
                    (None, Some(_)) => ("remote", "TCP_SUBSYSTEM_ERROR"),
                };
                self.metrics.disconnected(initiator, reason);
                tracing::debug!("peer disconnected: {peer_id}");
                self.emit(NetworkEvent::Disconnected(peer_id));
                self.bootstrap_changed(peer_id);
            }
            SwarmEvent::Behaviour(event) => self.behaviour_event(event),
            _ => {}
        }
    }

    fn behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => {
                let Some(topic) = self.topic_of(&message.topic) else {
                    return;
                };
                self.metrics.inbound(topic, message.data.len());
                let event = NetworkEvent::Gossip {
                    topic,
                    from: propagation_source,
                    id: message_id.clone(),
                    data: message.data,
                };
                if !self.emit(event) {
                    // The node is overloaded: drop it without blaming the peer.
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            MessageAcceptance::Ignore,
                        );
                }
            }
            BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, topic }) => {
                if let Some(topic) = self.topic_of(&topic) {
                    self.emit(NetworkEvent::Subscribed {
                        peer: peer_id,
                        topic,
                    });
                }
            }
            BehaviourEvent::Sync(request_response::Event::Message { peer, message, .. }) => {
                match message {
                    request_response::Message::Request {
                        request, channel, ..
                    } => {
                        self.emit(NetworkEvent::Request {
                            peer,
                            data: request,
                            channel,
                        });
                    }
                    request_response::Message::Response {
                        request_id,
                        response,
                    } => {
                        if let Some(reply) = self.pending.remove(&request_id) {
                            let _ = reply.send(Ok(response));
                        }
                    }
                }
            }
            BehaviourEvent::Sync(request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            }) => {
                if let Some(reply) = self.pending.remove(&request_id) {
                    let reason = error.to_string();
                    let error = match error {
                        request_response::OutboundFailure::ConnectionClosed
                        | request_response::OutboundFailure::DialFailure => {
                            RequestError::Disconnected(peer, reason)
                        }
                        _ => RequestError::Failed(peer, reason),
                    };
                    let _ = reply.send(Err(error));
                }
            }
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                let listen = info
                    .listen_addrs
                    .iter()
                    .filter_map(multiaddr_socket)
                    .find(|a| !a.ip().is_unspecified());
                if self.config.discovery {
                    for addr in &info.listen_addrs {
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .add_address(&peer_id, addr.clone());
                    }
                }
                self.update_peer(peer_id, |p| {
                    p.client = Some(info.agent_version.clone());
                    if let Some(listen) = listen {
                        p.listen = Some(listen);
                        p.enode = enode_of(&peer_id, listen);
                    }
                });
            }
            _ => {}
        }
    }
}
