//! Peer and gossip metrics under Besu's names (`ethereum_peer_count`, `besu_peers_*`,
//! `besu_network_p2p_*`).

use crate::Topic;

consort_metrics::metrics! {
    /// What the network records.
    pub struct NetworkMetrics {
        /// The current number of peers connected
        pub(crate) peers: IntGauge = "ethereum_peer_count",
        /// The maximum number of peers allowed
        pub(crate) peer_limit: IntGauge = "ethereum_peer_limit",
        /// Total number of peers connected
        pub(crate) connected: IntCounter = "besu_peers_connected_total",
        /// Total number of peers disconnected
        disconnected: IntCounterVec =
            "besu_peers_disconnected_total" ["initiator", "disconnectReason"],
        /// The number of clients connected by client type
        by_client: IntGaugeVec = "besu_peers_peer_count_by_client" ["client"],
        /// Count of each P2P message received inbound
        messages_in: IntCounterVec =
            "besu_network_p2p_messages_inbound_total" ["protocol", "name", "code"],
        /// Count of each P2P message sent outbound
        messages_out: IntCounterVec =
            "besu_network_p2p_messages_outbound_total" ["protocol", "name", "code"],
        /// Bytes of each P2P message received inbound
        bytes_in: IntCounterVec =
            "besu_network_p2p_bytes_inbound_total" ["protocol", "name", "code"],
        /// Bytes of each P2P message sent outbound
        bytes_out: IntCounterVec =
            "besu_network_p2p_bytes_outbound_total" ["protocol", "name", "code"],
        /// Penalties given to peers for answers they could not back, by reason
        penalties: IntCounterVec = "consort_network_peer_penalties_total" ["reason"],
        /// Gossip messages judged, by verdict (accept, reject, ignore)
        pub(crate) validations: IntCounterVec = "consort_network_gossip_validations_total" ["verdict"],
        /// Gossip messages not published, by reason (no_peers, duplicate, error)
        pub(crate) unpublished: IntCounterVec = "consort_network_gossip_unpublished_total" ["reason"],
        /// Sync requests, by direction (sent, served)
        pub(crate) requests: IntCounterVec = "consort_network_requests_total" ["direction"],
        /// The network task and its queue of commands from the node
        pub(crate) commands: Executor = "besu_executors_ethscheduler_network",
        /// The node's handler of network events (gossip, peers, requests) and its queue
        pub events: Executor = "besu_executors_ethscheduler_inbound",
    }
}

/// Client names `besu_peers_peer_count_by_client` always reports, as Besu does.
const CLIENTS: [&str; 8] = [
    "Besu",
    "Consort",
    "Erigon",
    "Geth",
    "Nethermind",
    "Nimbus",
    "Reth",
    "Unknown",
];

impl NetworkMetrics {
    /// Sets the per-client counts from the agent strings of the connected peers.
    pub(crate) fn count_clients<'a>(&self, agents: impl Iterator<Item = Option<&'a str>>) {
        let mut counts = [0i64; CLIENTS.len()];
        for agent in agents {
            let name = agent
                .unwrap_or_default()
                .split('/')
                .next()
                .unwrap_or_default();
            let i = CLIENTS
                .iter()
                .position(|c| c.eq_ignore_ascii_case(name))
                .unwrap_or(CLIENTS.len() - 1);
            if let Some(n) = counts.get_mut(i) {
                *n += 1;
            }
        }
        for (client, n) in CLIENTS.iter().zip(counts) {
            self.by_client.with_label_values(&[client]).set(n);
        }
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
