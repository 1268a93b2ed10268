//! Four validators as real `consort` processes on 127.0.0.x: block production and agreement,
//! losing one and two validators, restarts, a late full node that syncs, `kill -9` under load,
//! and a 2|2 partition that heals. Uses `genesis/qbft-4` with a 250 ms block period.

mod support;

use alloy::consensus::TxEip1559;
use alloy::primitives::{address, TxKind, U256};
use alloy::signers::local::PrivateKeySigner;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{block_number, poll, rpc, sign_eip1559, start_with, Node, DEV_KEYS};

const CHAIN_ID: u64 = 1338;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `genesis/qbft-4/genesis.json` with a 250 ms block period and 1 s round timeout.
fn write_genesis(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("genesis/qbft-4/genesis.json")).unwrap();
    let mut genesis: Value = serde_json::from_str(&text).unwrap();
    genesis["config"]["qbft"] = json!({
        "blockperiodseconds": 1,
        "xblockperiodmilliseconds": 250,
        "emptyblockperiodseconds": 0,
        "epochlength": 30000,
        "requesttimeoutseconds": 1,
    });
    let path = dir.join("genesis.json");
    std::fs::write(&path, genesis.to_string()).unwrap();
    path
}

struct Member {
    name: String,
    data: PathBuf,
    key: PathBuf,
    ip: String,
    node: Option<Node>,
}

impl Member {
    fn start(&mut self, genesis: &Path, bootnodes: &[String]) {
        let mut args = vec![
            format!("--genesis-file={}", genesis.display()),
            format!("--node-private-key-file={}", self.key.display()),
            format!("--p2p-interface={}", self.ip),
            format!("--p2p-host={}", self.ip),
            "--qbft-round-timeout-max-seconds=4".to_string(),
        ];
        if !bootnodes.is_empty() {
            args.push(format!("--bootnodes={}", bootnodes.join(",")));
        }
        self.node = Some(start_with(&self.data, &args));
    }

    fn node(&self) -> &Node {
        self.node
            .as_ref()
            .unwrap_or_else(|| panic!("{} is stopped", self.name))
    }

    fn url(&self) -> String {
        self.node().http.clone()
    }

    fn enode(&self) -> String {
        self.node().enode.clone().expect("enode")
    }

    fn head(&self) -> u64 {
        block_number(&self.url())
    }

    /// SIGTERM and wait: a graceful stop.
    fn stop(&mut self) {
        if let Some(mut node) = self.node.take() {
            let pid = node.child.id().to_string();
            let _ = std::process::Command::new("kill").arg(&pid).status();
            let _ = node.child.wait();
        }
    }

    /// SIGKILL: no chance to clean up.
    fn kill(&mut self) {
        if let Some(mut node) = self.node.take() {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
    }
}

fn hash_at(url: &str, n: u64) -> Option<String> {
    let r = rpc(
        url,
        "eth_getBlockByNumber",
        json!([format!("{n:#x}"), false]),
    );
    r["result"]["hash"].as_str().map(str::to_string)
}

fn running(members: &[Member]) -> Vec<&Member> {
    members.iter().filter(|m| m.node.is_some()).collect()
}

fn enodes(members: &[Member]) -> Vec<String> {
    running(members).iter().map(|m| m.enode()).collect()
}

/// Every running member reaches `target`.
fn wait_all_at(members: &[Member], target: u64, timeout: Duration, what: &str) {
    for m in running(members) {
        let reached = poll(timeout, || (m.head() >= target).then_some(()));
        assert!(
            reached.is_some(),
            "{what}: {} stayed at {} below {target}",
            m.name,
            m.head()
        );
    }
}

/// No two running members hold different blocks at any height they share: the chains are
/// hash-linked, so comparing the block at the lowest head suffices.
fn assert_one_chain(members: &[Member]) {
    let nodes = running(members);
    let low = nodes.iter().map(|m| m.head()).min().unwrap();
    let hashes: Vec<(String, Option<String>)> = nodes
        .iter()
        .map(|m| (m.name.clone(), hash_at(&m.url(), low)))
        .collect();
    let first = hashes[0].1.clone();
    assert!(first.is_some());
    for (name, h) in &hashes {
        assert_eq!(*h, first, "fork at block {low}: {hashes:?} ({name})");
    }
}

fn max_head(members: &[Member]) -> u64 {
    running(members).iter().map(|m| m.head()).max().unwrap_or(0)
}

/// Sends ETH transfers to `url` until stopped.
fn load(url: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let signer: PrivateKeySigner = DEV_KEYS[1].parse().unwrap();
        let mut nonce = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let tx = TxEip1559 {
                chain_id: CHAIN_ID,
                nonce,
                gas_limit: 21_000,
                max_fee_per_gas: 20_000_000_000,
                max_priority_fee_per_gas: 1_000_000_000,
                to: TxKind::Call(address!("0x00000000000000000000000000000000000000aa")),
                value: U256::from(1),
                ..Default::default()
            };
            let raw = sign_eip1559(&signer, tx);
            let r = rpc(&url, "eth_sendRawTransaction", json!([raw]));
            if r.get("result").is_some() {
                nonce += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        nonce
    })
}

#[test]
fn four_validators_agree_survive_faults_and_heal() {
    let dir = tempfile::tempdir().unwrap();
    let genesis = write_genesis(dir.path());
    let mut members: Vec<Member> = (1..=4)
        .map(|i| Member {
            name: format!("validator{i}"),
            data: dir.path().join(format!("v{i}")),
            key: repo().join(format!("genesis/qbft-4/validator{i}/key")),
            ip: format!("127.0.0.{}", 10 + i),
            node: None,
        })
        .collect();

    // One bootnode; discovery makes the mesh.
    members[0].start(&genesis, &[]);
    let boot = vec![members[0].enode()];
    for m in members.iter_mut().skip(1) {
        m.start(&genesis, &boot);
    }
    wait_all_at(&members, 8, Duration::from_secs(60), "start");
    assert_one_chain(&members);
    for m in &members {
        let peers = poll(Duration::from_secs(30), || {
            let r = rpc(&m.url(), "net_peerCount", json!([]));
            (r["result"] == json!("0x3")).then_some(())
        });
        assert!(peers.is_some(), "{} did not reach 3 peers", m.name);
    }
    // Peer, gossip and consensus metrics under Besu's names and consort_qbft_*.
    let (_, text) =
        support::http_request(members[0].node().metrics.as_ref().unwrap(), "GET", "", None);
    for name in [
        "ethereum_peer_count 3",
        "besu_peers_connected_total ",
        "besu_network_p2p_messages_inbound_total{code=\"0\",name=\"Consensus\",protocol=\"istanbul/100\"}",
        "besu_network_p2p_bytes_outbound_total{code=\"0\",name=\"Consensus\",protocol=\"istanbul/100\"}",
        "besu_network_p2p_messages_inbound_total{code=\"7\",name=\"NewBlock\",protocol=\"eth/68\"}",
        "consort_qbft_messages_total{outcome=\"accepted\",type=\"prepare\"}",
        "consort_qbft_messages_total{outcome=\"sent\",type=\"commit\"}",
        "consort_qbft_time_to_finality_seconds_count ",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }

    // One validator stops: three of four still make a quorum.
    members[3].stop();
    let from = max_head(&members);
    wait_all_at(&members, from + 8, Duration::from_secs(60), "one stopped");
    assert_one_chain(&members);

    // Two stop: no quorum, no blocks, no fork.
    members[2].stop();
    std::thread::sleep(Duration::from_secs(2));
    let stalled = max_head(&members);
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        max_head(&members) <= stalled + 1,
        "blocks were produced without a quorum"
    );
    assert_one_chain(&members);

    // Both return after a while: blocks resume within seconds.
    let outage = Instant::now();
    for i in [2, 3] {
        let boot = enodes(&members);
        members[i].start(&genesis, &boot);
    }
    let before = max_head(&members);
    wait_all_at(
        &members,
        before + 8,
        Duration::from_secs(30),
        "after restart",
    );
    eprintln!("blocks resumed {:?} after the restarts", outage.elapsed());
    assert_one_chain(&members);

    // kill -9 of a validator under transaction load: nothing committed is lost.
    let stop_load = Arc::new(AtomicBool::new(false));
    let sender = load(members[0].url(), stop_load.clone());
    std::thread::sleep(Duration::from_secs(3));
    let committed = members[1].head();
    let committed_hash = hash_at(&members[1].url(), committed);
    members[1].kill();
    std::thread::sleep(Duration::from_secs(2));
    let boot = enodes(&members);
    members[1].start(&genesis, &boot);
    assert!(members[1].head() >= committed, "validator2 lost blocks");
    assert_eq!(hash_at(&members[1].url(), committed), committed_hash);
    let now = max_head(&members);
    wait_all_at(&members, now + 8, Duration::from_secs(60), "after kill -9");
    stop_load.store(true, Ordering::SeqCst);
    let sent = sender.join().unwrap();
    assert!(sent > 0, "no transaction was accepted");
    assert_one_chain(&members);

    // A 2|2 partition: neither side has a quorum; healing resumes one chain.
    let all: Vec<String> = enodes(&members);
    for (side, other) in [([0, 1], [2, 3]), ([2, 3], [0, 1])] {
        for i in side {
            for j in other {
                let r = rpc(&members[i].url(), "admin_removePeer", json!([all[j]]));
                assert_eq!(r["result"], json!(true), "{r}");
            }
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    let split = max_head(&members);
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        max_head(&members) <= split + 1,
        "a minority side made blocks"
    );
    assert_one_chain(&members);
    for (side, other) in [([0, 1], [2, 3]), ([2, 3], [0, 1])] {
        for i in side {
            for j in other {
                rpc(&members[i].url(), "admin_addPeer", json!([all[j]]));
            }
        }
    }
    let healed = max_head(&members);
    wait_all_at(&members, healed + 8, Duration::from_secs(30), "after heal");
    assert_one_chain(&members);

    // A full node that was not there for hundreds of blocks syncs, then follows.
    wait_all_at(&members, 200, Duration::from_secs(120), "history");
    let mut follower = Member {
        name: "follower".into(),
        data: dir.path().join("follower"),
        key: dir.path().join("follower.key"),
        ip: "127.0.0.15".into(),
        node: None,
    };
    follower.start(&genesis, &enodes(&members));
    let target = max_head(&members);
    let synced = poll(Duration::from_secs(90), || {
        (follower.head() >= target).then_some(())
    });
    assert!(synced.is_some(), "follower stuck at {}", follower.head());
    let later = max_head(&members) + 8;
    let followed = poll(Duration::from_secs(30), || {
        (follower.head() >= later).then_some(())
    });
    assert!(followed.is_some(), "follower does not follow");
    members.push(follower);
    assert_one_chain(&members);
    let syncing = rpc(&members[4].url(), "eth_syncing", json!([]));
    assert_eq!(syncing["result"], json!(false));
}
