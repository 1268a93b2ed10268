//! Peer-to-peer networking: libp2p over TCP with Noise and Yamux, identify and ping,
//! gossipsub topics scoped to the chain (consensus messages, transactions, blocks) with peer
//! scoring, Kademlia discovery, and a request/response protocol the sync layer speaks over.
//! The node key is the libp2p identity, so enode URLs name peers.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod codec;
mod enode;
mod gate;
mod metrics;
mod service;

pub use codec::{MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES};
pub use enode::{enode_of, keypair, node_id, peer_address, Enode, EnodeError};
pub use gate::{ConnectionGate, GateContext};
pub use libp2p::gossipsub::MessageId;
pub use libp2p::request_response::ResponseChannel;
pub use libp2p::PeerId;
pub use metrics::NetworkMetrics;
pub use service::{
    start, NetworkConfig, NetworkEvent, NetworkHandle, PeerInfo, RequestError, Topic, Validation,
    BAN_DURATION, DUPLICATE_CACHE_TIME, MAX_GOSSIP_BYTES, PENALTIES_TO_BAN, REQUEST_TIMEOUT,
};

use std::net::SocketAddr;

/// Why the network could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The node key is not a valid secp256k1 key for libp2p.
    #[error("the node key cannot be used as a libp2p identity")]
    Key,
    /// Building the transport or a protocol failed.
    #[error("network setup failed: {0}")]
    Setup(String),
    /// The P2P address could not be listened on.
    #[error("cannot listen for P2P connections on {0}: {1}")]
    Listen(SocketAddr, String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, NetworkError>;
