//! A hostile peer floods a validator over libp2p: garbage bytes, round changes for huge rounds
//! and far-future heights (signed by the validator's own, public, dev key), and messages from
//! non-validators. The node stays within its memory bounds and keeps producing blocks.

mod support;

use alloy::consensus::TxEip1559;
use alloy::primitives::{TxKind, U256};
use alloy::signers::local::PrivateKeySigner;
use consort_network::Topic;
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

/// The value `count` settles at: polled until it has not changed for a second (20 s at most).
fn settled(count: &impl Fn() -> f64) -> f64 {
    let mut last = (count(), std::time::Instant::now());
    poll(Duration::from_secs(20), || {
        let now = count();
        if now != last.0 {
            last = (now, std::time::Instant::now());
        }
        (last.1.elapsed() >= Duration::from_secs(1)).then_some(())
    });
    last.0
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

    let (rogue, _events) =
        support::rogue::peer(0x42, &[node.enode.clone().unwrap()], &network_id).await;
    let connected = poll(Duration::from_secs(20), || {
        (rpc(&url, "net_peerCount", json!([]))["result"] == json!("0x1")).then_some(())
    });
    assert!(connected.is_some(), "the rogue peer did not connect");
    let metrics = node.metrics.clone().unwrap();
    let judged = || {
        metric_sum(
            &metrics,
            "consort_qbft_messages_total",
            &["type=\"round_change\""],
        )
    };
    let validator_key = secp256k1::SecretKey::from_slice(
        &alloy::hex::decode(consort_node::DEV_VALIDATOR_KEY.trim()).unwrap(),
    )
    .unwrap();
    // Gossip flows once the subscriptions are exchanged: probe until a message lands.
    let mut probe = 0;
    let subscribed = poll(Duration::from_secs(20), || {
        probe += 1;
        rogue.publish(Topic::Consensus, round_change(&validator_key, 0, probe));
        std::thread::sleep(Duration::from_millis(100));
        (judged() > 0.0).then_some(())
    });
    assert!(subscribed.is_some(), "gossip from the rogue never arrived");
    let before = resident_bytes(&metrics);
    let judged_before = judged();
    let stranger = secp256k1::SecretKey::from_slice(&[0x43; 32]).unwrap();
    let base = head(&url);
    // First what costs the rogue no gossip score: round changes for old heights (ignored)
    // and, signed by the validator's own (public, dev) key, for far-future heights at the
    // highest round (buffered within bounds, or dropped).
    // Gossip drops copies, so count the distinct messages sent.
    const ROUNDS: u64 = 4_000;
    let mut distinct = std::collections::HashSet::new();
    for i in 0..ROUNDS {
        for message in [
            round_change(&validator_key, 0, (i % MAX_ROUND as u64) as u32),
            round_change(
                &validator_key,
                base + 2 + i % 50,
                MAX_ROUND - (i / 50) as u32,
            ),
        ] {
            distinct.insert(alloy::primitives::keccak256(&message));
            rogue.publish(Topic::Consensus, message);
        }
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let sent = distinct.len();
    let arrived = settled(&judged) - judged_before;
    eprintln!(
        "{arrived} of {sent} distinct round changes ({} published) arrived and were judged",
        2 * ROUNDS
    );
    assert!(
        arrived >= sent as f64 / 2.0,
        "only {arrived} of {sent} round changes arrived: the flood did not reach the node"
    );
    // Then what is rejected, which soon has gossip scoring stop listening to the rogue: a
    // non-validator's messages and bytes that decode to nothing.
    for i in 0..ROUNDS {
        rogue.publish(
            Topic::Consensus,
            round_change(&stranger, base + 1, (i % MAX_ROUND as u64) as u32),
        );
        rogue.publish(Topic::Consensus, vec![0x15; 2_000]);
        rogue.publish(Topic::Blocks, vec![0xf9, 0xff, 0xff, 0x00]);
        rogue.publish(Topic::Transactions, vec![0x02, 0x01]);
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let before_rejects = judged_before + arrived;
    let rejected_arrived = settled(&judged) - before_rejects;
    eprintln!(
        "{rejected_arrived} of {} rejected messages arrived before the rogue was graylisted",
        2 * ROUNDS
    );

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
    // What arrived was judged: garbage and strangers rejected, old news ignored.
    let outcome = |o: &str| {
        metric_sum(
            &metrics,
            "consort_qbft_messages_total",
            &[&format!("outcome=\"{o}\"")],
        )
    };
    let (rejected, ignored) = (outcome("rejected"), outcome("ignored"));
    assert!(
        rejected > 0.0 && ignored > 0.0,
        "rejected {rejected}, ignored {ignored}"
    );
    let after = resident_bytes(&metrics);
    assert!(
        after < before + 96.0 * 1024.0 * 1024.0,
        "memory grew from {before} to {after} bytes"
    );
}
