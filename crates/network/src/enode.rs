//! Enode URLs and the identities they name. The node key (secp256k1) is also the libp2p
//! identity, so `enode://<public key>@<ip>:<port>` names exactly one libp2p peer.

use alloy_primitives::{keccak256, Address};
use libp2p::identity::{self, Keypair, PublicKey};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// Why an enode URL was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnodeError {
    /// Not of the form `enode://<128 hex digits>@<ip>:<port>`.
    #[error("invalid enode URL {0:?}: expected enode://<128 hex digits>@<ip>:<port>")]
    Format(String),
    /// The node ID is not a point on secp256k1.
    #[error("invalid enode URL {0:?}: the node ID is not a secp256k1 public key")]
    Key(String),
    /// The host is a name, not an IP address.
    #[error("invalid enode URL {0:?}: the host must be an IP address, not a DNS name")]
    Host(String),
}

/// A parsed enode URL: a node's public key and its TCP listening address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Enode {
    /// The 64-byte uncompressed public key (without the 0x04 prefix).
    pub id: [u8; 64],
    /// IP address and TCP port.
    pub addr: SocketAddr,
}

impl Enode {
    /// The libp2p peer this enode names.
    pub fn peer_id(&self) -> PeerId {
        // The id was checked to be a curve point when parsed or built.
        public_key_of(&self.id).map_or_else(PeerId::random, |k| k.to_peer_id())
    }

    /// `/ip4/<ip>/tcp/<port>` (or `/ip6/...`).
    pub fn multiaddr(&self) -> Multiaddr {
        socket_multiaddr(self.addr)
    }

    /// The account address of the node key (its validator address).
    pub fn address(&self) -> Address {
        Address::from_slice(keccak256(self.id).get(12..).unwrap_or_default())
    }
}

impl fmt::Display for Enode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match self.addr.ip() {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        write!(
            f,
            "enode://{}@{}:{}",
            hex::encode(self.id),
            host,
            self.addr.port()
        )
    }
}

impl FromStr for Enode {
    type Err = EnodeError;

    fn from_str(url: &str) -> Result<Self, EnodeError> {
        let format = || EnodeError::Format(url.to_string());
        let rest = url.trim().strip_prefix("enode://").ok_or_else(format)?;
        let (id_hex, host_port) = rest.split_once('@').ok_or_else(format)?;
        // `?discport=` (and any other query) does not matter for a TCP connection.
        let host_port = host_port.split('?').next().unwrap_or_default();
        let bytes = hex::decode(id_hex).map_err(|_| format())?;
        let id: [u8; 64] = bytes.try_into().map_err(|_| format())?;
        let (host, port) = host_port.rsplit_once(':').ok_or_else(format)?;
        let port: u16 = port.parse().map_err(|_| format())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = host.parse().map_err(|_| {
            if host.is_empty() {
                format()
            } else {
                EnodeError::Host(url.to_string())
            }
        })?;
        if public_key_of(&id).is_none() {
            return Err(EnodeError::Key(url.to_string()));
        }
        Ok(Enode {
            id,
            addr: SocketAddr::new(ip, port),
        })
    }
}

fn public_key_of(id: &[u8; 64]) -> Option<PublicKey> {
    let mut sec1 = Vec::with_capacity(65);
    sec1.push(4);
    sec1.extend_from_slice(id);
    let key = identity::secp256k1::PublicKey::try_from_bytes(&sec1).ok()?;
    Some(PublicKey::from(key))
}

/// The 64-byte node ID of a peer whose identity is a secp256k1 key.
pub fn node_id(peer: &PeerId) -> Option<[u8; 64]> {
    let key = PublicKey::try_decode_protobuf(peer.as_ref().digest()).ok()?;
    let key = key.try_into_secp256k1().ok()?;
    let bytes = key.to_bytes_uncompressed();
    bytes.get(1..)?.try_into().ok()
}

/// The account address of a peer's node key: the validator address it signs with.
pub fn peer_address(peer: &PeerId) -> Option<Address> {
    let id = node_id(peer)?;
    Some(Address::from_slice(keccak256(id).get(12..)?))
}

/// The enode URL of `peer` reachable at `addr`.
pub fn enode_of(peer: &PeerId, addr: SocketAddr) -> Option<Enode> {
    Some(Enode {
        id: node_id(peer)?,
        addr,
    })
}

/// The libp2p identity of a node key.
pub fn keypair(key: &secp256k1::SecretKey) -> Option<Keypair> {
    let secret = identity::secp256k1::SecretKey::try_from_bytes(key.secret_bytes()).ok()?;
    Some(Keypair::from(identity::secp256k1::Keypair::from(secret)))
}

/// The multiaddr of a TCP socket address.
pub fn socket_multiaddr(addr: SocketAddr) -> Multiaddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) => Protocol::Ip4(ip),
        IpAddr::V6(ip) => Protocol::Ip6(ip),
    };
    Multiaddr::empty().with(ip).with(Protocol::Tcp(addr.port()))
}

/// The TCP socket address in a multiaddr, if it has one.
pub fn multiaddr_socket(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut ip = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(v4) => ip = Some(IpAddr::V4(v4)),
            Protocol::Ip6(v6) => ip = Some(IpAddr::V6(v6)),
            Protocol::Tcp(port) => return ip.map(|ip| SocketAddr::new(ip, port)),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use secp256k1::SECP256K1;

    #[test]
    fn enode_urls_parse_print_and_name_the_key_holder() {
        let key = secp256k1::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let public = key.public_key(SECP256K1).serialize_uncompressed();
        let url = format!(
            "enode://{}@127.0.0.2:30303?discport=0",
            hex::encode(&public[1..])
        );
        let enode: Enode = url.parse().unwrap();
        assert_eq!(enode.addr, "127.0.0.2:30303".parse().unwrap());
        assert_eq!(
            enode.to_string(),
            format!("enode://{}@127.0.0.2:30303", hex::encode(&public[1..]))
        );
        let kp = keypair(&key).unwrap();
        assert_eq!(enode.peer_id(), kp.public().to_peer_id());
        assert_eq!(node_id(&enode.peer_id()), Some(enode.id));
        assert_eq!(peer_address(&enode.peer_id()), Some(enode.address()));
        assert_eq!(
            enode.multiaddr().to_string(),
            "/ip4/127.0.0.2/tcp/30303".to_string()
        );
        assert_eq!(multiaddr_socket(&enode.multiaddr()), Some(enode.addr));
    }

    #[test]
    fn malformed_enode_urls_are_rejected_with_the_reason() {
        let id = "a".repeat(128);
        for bad in [
            "enode://abc@127.0.0.1:30303".to_string(),
            format!("enode://{id}127.0.0.1:30303"),
            format!("enode://{id}@127.0.0.1"),
            format!("enode://{id}@127.0.0.1:99999"),
            format!("http://{id}@127.0.0.1:30303"),
        ] {
            assert!(
                matches!(bad.parse::<Enode>(), Err(EnodeError::Format(_))),
                "{bad}"
            );
        }
        let key = secp256k1::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let public = key.public_key(SECP256K1).serialize_uncompressed();
        let dns = format!("enode://{}@node1.example:30303", hex::encode(&public[1..]));
        assert!(matches!(dns.parse::<Enode>(), Err(EnodeError::Host(_))));
        let off_curve = format!("enode://{}@127.0.0.1:30303", "00".repeat(64));
        assert!(matches!(
            off_curve.parse::<Enode>(),
            Err(EnodeError::Key(_))
        ));
    }
}
