//! The connection gate: a behaviour that asks a [`ConnectionGate`] about every connection once
//! its peer is authenticated and before any protocol runs on it, so a peer that is not permitted
//! exchanges no application message in either direction.

use crate::enode::{multiaddr_socket, Enode};
use crate::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint, Multiaddr};
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Who decides which peers may stay connected (implemented by the permissioning rules).
pub trait ConnectionGate: Send + Sync + std::fmt::Debug + 'static {
    /// Tells the gate this node's own enode (advertised host, bound port) before any connection.
    fn local_enode(&self, enode: &Enode);
    /// Whether a connection to or from `remote` may exist now.
    fn permits(&self, remote: &Enode, context: &GateContext) -> bool;
    /// The listening address the rules know for a peer that dialled in from `seen` (its node
    /// ID and the connection's source address), when the source is not that address: on one
    /// host every loopback alias dials from 127.0.0.1.
    fn listening_address(&self, seen: &Enode) -> Option<SocketAddr> {
        let _ = seen;
        None
    }
}

/// What the network knows when it asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateContext {
    /// Whether `remote` dialled us.
    pub inbound: bool,
    /// Connected peers other than bootnodes (Besu's insufficient-peers rule allows only
    /// bootnodes while this is zero).
    pub non_bootnode_peers: usize,
}

/// Why a connection was refused.
#[derive(Debug, thiserror::Error)]
#[error("peer {0} is not permitted to connect")]
pub struct NotPermitted(pub String);

/// The behaviour: no protocol of its own, only a verdict on each connection.
#[derive(Debug)]
pub(crate) struct Gate {
    rules: Option<Arc<dyn ConnectionGate>>,
    /// Addresses we know peers by (bootnodes, static nodes, added peers): an inbound peer is
    /// judged by the address it is known by, since the source address of a connection need
    /// not be its listening address (on one host, every loopback alias dials from 127.0.0.1).
    known: BTreeMap<PeerId, SocketAddr>,
    bootnodes: BTreeSet<PeerId>,
    /// Connected peers and the enode each was judged as.
    connected: BTreeMap<PeerId, (Enode, bool)>,
}

impl Gate {
    pub(crate) fn new(rules: Option<Arc<dyn ConnectionGate>>, bootnodes: &[Enode]) -> Self {
        Gate {
            rules,
            known: BTreeMap::new(),
            bootnodes: bootnodes.iter().map(Enode::peer_id).collect(),
            connected: BTreeMap::new(),
        }
    }

    /// Records the address `peer` is known by.
    pub(crate) fn know(&mut self, peer: PeerId, addr: SocketAddr) {
        self.known.insert(peer, addr);
    }

    pub(crate) fn is_bootnode(&self, peer: &PeerId) -> bool {
        self.bootnodes.contains(peer)
    }

    /// Connected peers that are not bootnodes.
    pub(crate) fn non_bootnode_peers(&self) -> usize {
        self.connected
            .keys()
            .filter(|p| !self.bootnodes.contains(p))
            .count()
    }

    fn context(&self, inbound: bool, peer: &PeerId) -> GateContext {
        let non_bootnode_peers = self
            .connected
            .keys()
            .filter(|p| *p != peer && !self.bootnodes.contains(p))
            .count();
        GateContext {
            inbound,
            non_bootnode_peers,
        }
    }

    /// Whether a connection to `remote` would be permitted now (with no rules, always).
    pub(crate) fn permits(&self, remote: &Enode, inbound: bool) -> bool {
        let peer = remote.peer_id();
        self.rules
            .as_ref()
            .is_none_or(|r| r.permits(remote, &self.context(inbound, &peer)))
    }

    /// The connected peers that are no longer permitted.
    pub(crate) fn no_longer_permitted(&self) -> Vec<PeerId> {
        if self.rules.is_none() {
            return Vec::new();
        }
        self.connected
            .iter()
            .filter(|(_, (enode, inbound))| !self.permits(enode, *inbound))
            .map(|(peer, _)| *peer)
            .collect()
    }

    fn judge(&self, peer: PeerId, addr: &Multiaddr, inbound: bool) -> Result<(), ConnectionDenied> {
        if self.rules.is_none() {
            return Ok(());
        }
        let addr = if inbound {
            self.inbound_address(&peer, addr)
        } else {
            multiaddr_socket(addr).or_else(|| self.known.get(&peer).copied())
        };
        let enode = addr.and_then(|a| crate::enode_of(&peer, a));
        match enode {
            Some(enode) if self.permits(&enode, inbound) => Ok(()),
            _ => {
                tracing::debug!(%peer, inbound, "connection refused: not permitted");
                Err(ConnectionDenied::new(NotPermitted(peer.to_string())))
            }
        }
    }

    /// The address an inbound peer is judged by: the one we know it by, else the one the rules
    /// know for it, else the connection's source.
    fn inbound_address(&self, peer: &PeerId, source: &Multiaddr) -> Option<SocketAddr> {
        if let Some(known) = self.known.get(peer) {
            return Some(*known);
        }
        let source = multiaddr_socket(source)?;
        let seen = crate::enode_of(peer, source)?;
        let listening = self.rules.as_ref().and_then(|r| r.listening_address(&seen));
        Some(listening.unwrap_or(source))
    }

    fn enode_of_endpoint(&self, peer: &PeerId, endpoint: &ConnectedPoint) -> Option<(Enode, bool)> {
        let (addr, inbound) = match endpoint {
            ConnectedPoint::Dialer { address, .. } => (multiaddr_socket(address), false),
            ConnectedPoint::Listener { send_back_addr, .. } => {
                (self.inbound_address(peer, send_back_addr), true)
            }
        };
        Some((crate::enode_of(peer, addr?)?, inbound))
    }
}

impl NetworkBehaviour for Gate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = std::convert::Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.judge(peer, remote, true)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.judge(peer, addr, false)?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                if let Some(judged) = self.enode_of_endpoint(&e.peer_id, e.endpoint) {
                    self.connected.entry(e.peer_id).or_insert(judged);
                }
            }
            FromSwarm::ConnectionClosed(e) if e.remaining_established == 0 => {
                self.connected.remove(&e.peer_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}
