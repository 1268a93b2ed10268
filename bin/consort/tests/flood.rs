//! A hostile peer floods a validator over libp2p: garbage bytes, round changes for huge rounds
//! and far-future heights (signed by the validator's own, public, dev key), and messages from
//! non-validators. The node stays within its memory bounds and keeps producing blocks.

mod support;

use alloy::consensus::TxEip1559;
use alloy::primitives::{TxKind, U256};
use alloy::signers::local::PrivateKeySigner;
use consort_network::{NetworkConfig, NetworkMetrics, Topic};
use consort_qbft::{Qbft, QbftMessage, RoundChangePayload, MAX_ROUND};
use serde_json::json;
use std::time::Duration;
use support::{block_number as head, metric_sum, poll, rpc, sign_eip1559, start, DEV_KEYS};

fn round_change(key: &secp256k1::SecretKey, height: u64, round: u32) -> Vec<u8> {
    let author = Qbft::new(*key).address();
    QbftMessage::round_change(
        RoundChangePayload {
            height,
            round,
            prepared: None,
        },
        None,
        vec![],
        key,
        author,
    )
    .encode_wire()
}

fn resident_bytes(metrics_url: &str) -> f64 {
    let (_, text) = support::http_request(metrics_url, "GET", "", None);
    text.lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .expect("process_resident_memory_bytes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_peer_cannot_grow_memory_or_stop_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &[]);
    let url = node.http.clone();
    let genesis = rpc(&url, "eth_getBlockByNumber", json!(["0x0", false]));
    let genesis = genesis["result"]["hash"].as_str().unwrap().to_string();
    let network_id = format!("1337-{}", &genesis[2..10]);

    let rogue_key = secp256k1::SecretKey::from_slice(&[0x42; 32]).unwrap();
    let (rogue, _events) = consort_network::start(
        NetworkConfig {
            key: rogue_key,
            listen: "127.0.0.1:0".parse().unwrap(),
            bootnodes: vec![node.enode.clone().unwrap().parse().unwrap()],
            static_nodes: vec![],
            max_peers: 4,
            discovery: false,
            network_id,
            client_version: "rogue".into(),
            redial_interval: Duration::from_secs(1),
        },
        NetworkMetrics::new(&consort_metrics::Registry::new()).unwrap(),
    )
    .await
    .unwrap();
    let connected = poll(Duration::from_secs(20), || {
        (rpc(&url, "net_peerCount", json!([]))["result"] == json!("0x1")).then_some(())
    });
    assert!(connected.is_some(), "the rogue peer did not connect");
    // Let the gossip subscriptions settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = resident_bytes(node.metrics.as_ref().unwrap());

    let validator_key = secp256k1::SecretKey::from_slice(
        &alloy::hex::decode(consort_node::DEV_VALIDATOR_KEY.trim()).unwrap(),
    )
    .unwrap();
    let stranger = secp256k1::SecretKey::from_slice(&[0x43; 32]).unwrap();
    let base = head(&url);
    for i in 0..4_000u64 {
        // Old heights (ignored), far-future heights (buffered within bounds or dropped),
        // huge rounds at the next height, a non-validator's messages (rejected, which soon
        // graylists the rogue), and bytes that decode to nothing.
        rogue.publish(
            Topic::Consensus,
            round_change(&validator_key, 0, (i % MAX_ROUND as u64) as u32),
        );
        rogue.publish(
            Topic::Consensus,
            round_change(&validator_key, base + 2 + i % 50, MAX_ROUND),
        );
        rogue.publish(
            Topic::Consensus,
            round_change(&stranger, base + 1, (i % MAX_ROUND as u64) as u32),
        );
        rogue.publish(Topic::Consensus, vec![0x15; 2_000]);
        rogue.publish(Topic::Blocks, vec![0xf9, 0xff, 0xff, 0x00]);
        rogue.publish(Topic::Transactions, vec![0x02, 0x01]);
        if i % 200 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // Blocks keep coming: a transaction sent after the flood is mined.
    let signer: PrivateKeySigner = DEV_KEYS[2].parse().unwrap();
    let raw = sign_eip1559(
        &signer,
        TxEip1559 {
            chain_id: 1337,
            nonce: 0,
            gas_limit: 21_000,
            max_fee_per_gas: 20_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to: TxKind::Call(alloy::primitives::Address::ZERO),
            value: U256::from(1),
            ..Default::default()
        },
    );
    let hash = rpc(&url, "eth_sendRawTransaction", json!([raw]))["result"].clone();
    let mined = poll(Duration::from_secs(30), || {
        let r = rpc(&url, "eth_getTransactionReceipt", json!([hash]));
        (!r["result"].is_null()).then_some(())
    });
    assert!(mined.is_some(), "no block after the flood");
    assert!(head(&url) > base);
    // The flood arrived and was judged: garbage and strangers rejected, old news ignored.
    let metrics = node.metrics.as_ref().unwrap();
    let rejected = metric_sum(
        metrics,
        "consort_qbft_messages_total",
        &["outcome=\"rejected\""],
    );
    let ignored = metric_sum(
        metrics,
        "consort_qbft_messages_total",
        &["outcome=\"ignored\""],
    );
    assert!(
        rejected > 0.0 && ignored > 0.0,
        "rejected {rejected}, ignored {ignored}"
    );
    let after = resident_bytes(node.metrics.as_ref().unwrap());
    assert!(
        after < before + 96.0 * 1024.0 * 1024.0,
        "memory grew from {before} to {after} bytes"
    );
}
