//! Hostile libp2p peers for the attack tests: they speak consort's own network stack, so
//! what they send is exactly what a real peer could.

use alloy::primitives::{keccak256, B256};
use alloy_rlp::Encodable;
use consort_network::{NetworkConfig, NetworkEvent, NetworkHandle, NetworkMetrics, Topic};
use consort_primitives::Header;
use consort_qbft::{
    Block, CommitPayload, PreparePayload, PreparedRound, Qbft, QbftMessage, RoundChangePayload,
    Signed,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// A peer with node key `[seed; 32]` that dials `bootnodes` on network `network_id`.
pub async fn peer(
    seed: u8,
    bootnodes: &[String],
    network_id: &str,
) -> (NetworkHandle, mpsc::Receiver<NetworkEvent>) {
    consort_network::start(
        NetworkConfig {
            key: secp256k1::SecretKey::from_slice(&[seed; 32]).unwrap(),
            listen: "127.0.0.1:0".parse().unwrap(),
            bootnodes: bootnodes.iter().map(|e| e.parse().unwrap()).collect(),
            static_nodes: vec![],
            max_peers: 8,
            discovery: false,
            network_id: network_id.to_string(),
            client_version: "rogue".into(),
            redial_interval: Duration::from_secs(1),
            advertised_host: None,
            gate: None,
        },
        NetworkMetrics::new(&consort_metrics::Registry::default()).unwrap(),
    )
    .await
    .unwrap()
}

/// RLP `[number, hash, genesis]`: the sync protocol's status answer (the head's hash is
/// made up unless the head is the genesis block).
pub fn status(number: u64, genesis: B256) -> Vec<u8> {
    let hash = if number == 0 {
        genesis
    } else {
        B256::repeat_byte(0xee)
    };
    let fields = [number.length(), B256::ZERO.length(), genesis.length()];
    let mut out = Vec::new();
    alloy_rlp::Header {
        list: true,
        payload_length: fields.iter().sum(),
    }
    .encode(&mut out);
    number.encode(&mut out);
    hash.encode(&mut out);
    genesis.encode(&mut out);
    out
}

/// Answers every sync request as a node from another incarnation of the chain would: a head
/// far ahead, and headers that do not link to anything we have. Counts the header requests.
/// Other events are passed to `rest`, if given.
pub fn lie_about_the_head(
    liar: NetworkHandle,
    mut events: mpsc::Receiver<NetworkEvent>,
    genesis: B256,
    header_requests: Arc<AtomicU64>,
) {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let NetworkEvent::Request { data, channel, .. } = event else {
                continue;
            };
            let fields: Vec<u64> = alloy_rlp::Decodable::decode(&mut data.as_slice()).unwrap();
            let answer = match fields.first() {
                Some(0) => status(1_000_000, genesis),
                Some(1) => {
                    header_requests.fetch_add(1, Ordering::SeqCst);
                    let header = Header {
                        number: fields[1],
                        parent_hash: B256::repeat_byte(0x99),
                        ..Header::default()
                    };
                    alloy_rlp::encode(vec![header])
                }
                _ => alloy_rlp::encode(Vec::<Vec<u8>>::new()),
            };
            liar.respond(channel, answer);
        }
    });
}

/// Answers a sync request as a newcomer that has only the genesis block, so the node neither
/// syncs from it nor penalises it for staying silent.
fn answer_as_newcomer(
    peer: &NetworkHandle,
    event: NetworkEvent,
    genesis: B256,
) -> Option<NetworkEvent> {
    let NetworkEvent::Request { data, channel, .. } = event else {
        return Some(event);
    };
    let fields: Vec<u64> = alloy_rlp::Decodable::decode(&mut data.as_slice()).unwrap_or_default();
    let answer = match fields.first() {
        Some(0) => status(0, genesis),
        _ => alloy_rlp::encode(Vec::<Vec<u8>>::new()),
    };
    peer.respond(channel, answer);
    None
}

/// A gossip message's topic and payload, told to gossip as not for forwarding.
fn gossip(peer: &NetworkHandle, event: NetworkEvent) -> Option<(Topic, Vec<u8>)> {
    let NetworkEvent::Gossip {
        topic,
        id,
        from,
        data,
    } = event
    else {
        return None;
    };
    peer.validate(id, from, consort_network::Validation::Ignore);
    Some((topic, data))
}

/// What a peer does with gossip it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// Nothing.
    Nothing,
    /// Publishes every consensus message again (gossip gives it a new sequence number).
    Replay,
    /// Publishes every block again with an empty item added to its extraData's RLP list
    /// after the seals, so the bytes differ but every field and hash decodes the same.
    Malleate,
}

/// Drains `events`, doing `echo` with the gossip that arrives (counted in `seen`) and
/// answering sync requests as a newcomer on the chain of `genesis`.
pub fn echo(
    peer: NetworkHandle,
    mut events: mpsc::Receiver<NetworkEvent>,
    echo: Echo,
    genesis: B256,
    seen: Arc<AtomicU64>,
) {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let Some(event) = answer_as_newcomer(&peer, event, genesis) else {
                continue;
            };
            let Some((topic, data)) = gossip(&peer, event) else {
                continue;
            };
            seen.fetch_add(1, Ordering::SeqCst);
            match (echo, topic) {
                (Echo::Replay, Topic::Consensus) => peer.publish(topic, data),
                (Echo::Malleate, Topic::Blocks) => {
                    let Ok(mut block) = alloy_rlp::Decodable::decode(&mut data.as_slice()) else {
                        continue;
                    };
                    let block: &mut Block = &mut block;
                    let mut rest = &block.header.extra_data[..];
                    let Ok(list) = alloy_rlp::Header::decode(&mut rest) else {
                        continue;
                    };
                    let mut extra = Vec::new();
                    alloy_rlp::Header {
                        list: true,
                        payload_length: list.payload_length + 1,
                    }
                    .encode(&mut extra);
                    extra.extend_from_slice(rest);
                    extra.push(alloy_rlp::EMPTY_STRING_CODE);
                    block.header.extra_data = extra.into();
                    peer.publish(topic, alloy_rlp::encode(&*block));
                }
                _ => {}
            }
        }
    });
}

/// What the twin saw of one (height, round): the proposed block and the Prepares for it,
/// and whether it has sent its swapped round change.
#[derive(Default)]
struct Seen {
    block: Option<Block>,
    prepares: Vec<Signed<PreparePayload>>,
    swapped: bool,
}

/// A Byzantine validator: a second peer holding a validator's signing key (its honest node
/// runs too). For every round it sees, it signs a Prepare and a Commit for a digest that was
/// never proposed (equivocation), and once it has seen a quorum of Prepares for a proposal, a
/// round change whose prepared certificate is real but whose block carries other transactions.
/// Counts what it sent.
pub struct Twin {
    /// Equivocating Prepare/Commit pairs sent.
    pub equivocations: Arc<AtomicU64>,
    /// Round changes with a swapped block sent.
    pub swapped: Arc<AtomicU64>,
}

impl Twin {
    /// Runs the twin of the validator with `key` on `peer` (answering sync requests as a
    /// newcomer on the chain of `genesis`); `filler` is a transaction to swap into blocks that
    /// have none.
    pub fn run(
        key: secp256k1::SecretKey,
        peer: NetworkHandle,
        mut events: mpsc::Receiver<NetworkEvent>,
        genesis: B256,
        filler: consort_primitives::TxEnvelope,
    ) -> Twin {
        let twin = Twin {
            equivocations: Arc::new(AtomicU64::new(0)),
            swapped: Arc::new(AtomicU64::new(0)),
        };
        let (equivocations, swapped) = (twin.equivocations.clone(), twin.swapped.clone());
        let author = Qbft::new(key).address();
        tokio::spawn(async move {
            let mut rounds: HashMap<(u64, u32), Seen> = HashMap::new();
            while let Some(event) = events.recv().await {
                let Some(event) = answer_as_newcomer(&peer, event, genesis) else {
                    continue;
                };
                let Some((Topic::Consensus, data)) = gossip(&peer, event) else {
                    continue;
                };
                let Ok(msg) = QbftMessage::decode_wire(&data) else {
                    continue;
                };
                let (height, round) = msg.height_and_round();
                let entry = rounds.entry((height, round)).or_default();
                match msg {
                    QbftMessage::Proposal { proposal, .. } => {
                        entry.block = Some(proposal.payload.block.clone());
                    }
                    QbftMessage::Prepare(p) if p.author != author => {
                        if entry.prepares.is_empty() {
                            let forged = keccak256(p.payload.digest);
                            let prepare = PreparePayload {
                                digest: forged,
                                ..p.payload
                            };
                            let commit = CommitPayload {
                                height,
                                round,
                                digest: forged,
                                seal: consort_primitives::sign_commit_seal(forged, &key),
                            };
                            peer.publish(
                                Topic::Consensus,
                                QbftMessage::prepare(prepare, &key, author).encode_wire(),
                            );
                            peer.publish(
                                Topic::Consensus,
                                QbftMessage::commit(commit, &key, author).encode_wire(),
                            );
                            equivocations.fetch_add(1, Ordering::SeqCst);
                        }
                        let digest = p.payload.digest;
                        entry.prepares.push(p);
                        // Two honest Prepares and ours make a quorum of four.
                        if entry.prepares.len() == 2 && !entry.swapped {
                            let Some(mut block) = entry.block.clone() else {
                                continue;
                            };
                            entry.swapped = true;
                            let ours = PreparePayload {
                                height,
                                round,
                                digest,
                            };
                            let mut prepares = entry.prepares.clone();
                            if let QbftMessage::Prepare(p) =
                                QbftMessage::prepare(ours, &key, author)
                            {
                                prepares.push(p);
                            }
                            if block.body.transactions.is_empty() {
                                block.body.transactions.push(filler.clone());
                            } else {
                                block.body.transactions.clear();
                            }
                            let payload = RoundChangePayload {
                                height,
                                round: round + 1,
                                prepared: Some(PreparedRound { round, digest }),
                            };
                            let msg = QbftMessage::round_change(
                                payload,
                                Some(block),
                                prepares,
                                &key,
                                author,
                            );
                            peer.publish(Topic::Consensus, msg.encode_wire());
                            swapped.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    _ => {}
                }
                // Forget rounds far behind.
                rounds.retain(|(h, _), _| *h + 8 > height);
            }
        });
        twin
    }
}
