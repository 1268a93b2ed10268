//! Peer and gossip metrics under Besu's names (`ethereum_peer_count`, `besu_peers_*`,
//! `besu_network_p2p_*`).

use crate::Topic;
use consort_metrics::{register, IntCounter, IntCounterVec, IntGauge, Opts, Registry, Result};

/// What the network records.
#[derive(Debug, Clone)]
pub struct NetworkMetrics {
    pub(crate) peers: IntGauge,
    pub(crate) peer_limit: IntGauge,
    pub(crate) connected: IntCounter,
    disconnected: IntCounterVec,
    messages_in: IntCounterVec,
    messages_out: IntCounterVec,
    bytes_in: IntCounterVec,
    bytes_out: IntCounterVec,
    penalties: IntCounterVec,
}

impl NetworkMetrics {
    /// Registers the metrics in `registry`.
    pub fn new(registry: &Registry) -> Result<Self> {
        let labels = ["protocol", "name", "code"];
        let vec = |name: &str, help: &str, labels: &[&str]| {
            register(registry, IntCounterVec::new(Opts::new(name, help), labels)?)
        };
        Ok(NetworkMetrics {
            peers: register(
                registry,
                IntGauge::new(
                    "ethereum_peer_count",
                    "The current number of peers connected",
                )?,
            )?,
            peer_limit: register(
                registry,
                IntGauge::new("ethereum_peer_limit", "The maximum number of peers allowed")?,
            )?,
            connected: register(
                registry,
                IntCounter::new(
                    "besu_peers_connected_total",
                    "Total number of peers connected",
                )?,
            )?,
            disconnected: vec(
                "besu_peers_disconnected_total",
                "Total number of peers disconnected",
                &["initiator", "disconnectReason"],
            )?,
            messages_in: vec(
                "besu_network_p2p_messages_inbound_total",
                "Count of each P2P message received inbound",
                &labels,
            )?,
            messages_out: vec(
                "besu_network_p2p_messages_outbound_total",
                "Count of each P2P message sent outbound",
                &labels,
            )?,
            bytes_in: vec(
                "besu_network_p2p_bytes_inbound_total",
                "Bytes of each P2P message received inbound",
                &labels,
            )?,
            bytes_out: vec(
                "besu_network_p2p_bytes_outbound_total",
                "Bytes of each P2P message sent outbound",
                &labels,
            )?,
            penalties: vec(
                "consort_network_peer_penalties_total",
                "Penalties given to peers for answers they could not back, by reason",
                &["reason"],
            )?,
        })
    }

    fn labels(topic: Topic) -> [&'static str; 3] {
        match topic {
            Topic::Consensus => ["istanbul/100", "Consensus", "0"],
            Topic::Transactions => ["eth/68", "Transactions", "2"],
            Topic::Blocks => ["eth/68", "NewBlock", "7"],
        }
    }

    pub(crate) fn inbound(&self, topic: Topic, bytes: usize) {
        let labels = Self::labels(topic);
        self.messages_in.with_label_values(&labels).inc();
        self.bytes_in
            .with_label_values(&labels)
            .inc_by(u64::try_from(bytes).unwrap_or(u64::MAX));
    }

    pub(crate) fn outbound(&self, topic: Topic, bytes: usize) {
        let labels = Self::labels(topic);
        self.messages_out.with_label_values(&labels).inc();
        self.bytes_out
            .with_label_values(&labels)
            .inc_by(u64::try_from(bytes).unwrap_or(u64::MAX));
    }

    pub(crate) fn penalised(&self, reason: &str) {
        self.penalties.with_label_values(&[reason]).inc();
    }

    pub(crate) fn disconnected(&self, initiator: &str, reason: &str) {
        self.disconnected
            .with_label_values(&[initiator, reason])
            .inc();
    }
}
