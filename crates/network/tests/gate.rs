//! The connection gate on real swarms over loopback: a peer the gate refuses never connects in
//! either direction and nothing it gossips arrives; a re-check drops a peer no longer permitted.

use consort_network::{
    start, ConnectionGate, Enode, GateContext, NetworkConfig, NetworkEvent, NetworkHandle,
    NetworkMetrics, Topic,
};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Permits the node IDs in its set.
#[derive(Debug, Default)]
struct Members {
    ids: Mutex<BTreeSet<Vec<u8>>>,
    local: OnceLock<Enode>,
}

impl Members {
    fn admit(&self, enode: &Enode) {
        self.ids.lock().unwrap().insert(enode.id.to_vec());
    }
    fn expel(&self, enode: &Enode) {
        self.ids.lock().unwrap().remove(enode.id.as_slice());
    }
}

impl ConnectionGate for Members {
    fn local_enode(&self, enode: &Enode) {
        let _ = self.local.set(enode.clone());
    }
    fn permits(&self, remote: &Enode, _: &GateContext) -> bool {
        self.ids.lock().unwrap().contains(remote.id.as_slice())
    }
}

async fn node(
    seed: u8,
    gate: Option<Arc<Members>>,
    bootnodes: Vec<Enode>,
) -> (NetworkHandle, mpsc::Receiver<NetworkEvent>) {
    start(
        NetworkConfig {
            key: secp256k1::SecretKey::from_slice(&[seed; 32]).unwrap(),
            listen: "127.0.0.1:0".parse().unwrap(),
            bootnodes,
            static_nodes: vec![],
            max_peers: 8,
            discovery: false,
            network_id: "gate-test".into(),
            client_version: "test".into(),
            redial_interval: Duration::from_millis(200),
            advertised_host: None,
            gate: gate.map(|g| g as Arc<dyn ConnectionGate>),
        },
        NetworkMetrics::new(&consort_metrics::Registry::default()).unwrap(),
    )
    .await
    .unwrap()
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn connected(handle: &NetworkHandle, other: &NetworkHandle) -> bool {
    let id = other.enode().peer_id();
    handle.peers().iter().any(|p| p.peer == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_peer_never_connects_and_a_recheck_drops_an_expelled_one() {
    let gate = Arc::new(Members::default());
    let (a, mut a_events) = node(1, Some(gate.clone()), vec![]).await;
    let a_enode = a.enode().clone();
    // B is a member and dials A; C is not and dials A too.
    let (b, _b_events) = node(2, None, vec![a_enode.clone()]).await;
    gate.admit(b.enode());
    let (c, _c_events) = node(3, None, vec![a_enode.clone()]).await;
    until("A and B connect", || connected(&a, &b) && connected(&b, &a)).await;
    // A asked to dial C refuses to as well.
    a.add_peer(c.enode().clone());
    // C keeps dialling every 200 ms and publishing; nothing of it reaches A.
    let watch_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < watch_until {
        c.publish(Topic::Transactions, b"from a stranger".to_vec());
        assert!(!connected(&a, &c), "A connected to the refused peer");
        assert!(!connected(&c, &a), "the refused peer connected to A");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while let Ok(event) = a_events.try_recv() {
        match event {
            NetworkEvent::Gossip { data, .. } => {
                assert_ne!(
                    data,
                    b"from a stranger".to_vec(),
                    "gossip from a refused peer arrived"
                )
            }
            NetworkEvent::Connected(peer) => {
                assert_ne!(
                    peer,
                    c.enode().peer_id(),
                    "the refused peer was reported connected"
                )
            }
            _ => {}
        }
    }

    // B is expelled: a re-check drops it, and its redials are refused.
    gate.expel(b.enode());
    a.recheck_peers();
    until("A drops B", || !connected(&a, &b) && !connected(&b, &a)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!connected(&a, &b), "the expelled peer came back");
    // Admitted again, it reconnects (B dials A as its bootnode).
    gate.admit(b.enode());
    until("B is back", || connected(&a, &b)).await;
}
