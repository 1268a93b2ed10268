//! Rogue libp2p peers against one validator, one attack after another on the same node: a
//! peer that claims a head it cannot back, peers that replay a consensus message, and more
//! peers than `--max-peers` allows. The validator keeps producing blocks throughout.

mod support;

use alloy::consensus::TxEip1559;
use alloy::primitives::{Address, TxKind, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use consort_network::Topic;
use consort_qbft::{CommitPayload, PreparePayload, Qbft, QbftMessage};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::rogue::lie_about_the_head;
use support::{metric_sum, poll, rpc, sign_eip1559, start, DEV_KEYS};

const DEADLINE: Duration = Duration::from_secs(30);

fn send_transfer(url: &str, nonce: u64) -> serde_json::Value {
    let signer: PrivateKeySigner = DEV_KEYS[1].parse().unwrap();
    let raw = sign_eip1559(
        &signer,
        TxEip1559 {
            chain_id: 1337,
            nonce,
            gas_limit: 21_000,
            max_fee_per_gas: 20_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to: TxKind::Call(Address::repeat_byte(0x55)),
            value: U256::from(1),
            ..Default::default()
        },
    );
    rpc(url, "eth_sendRawTransaction", json!([raw]))["result"].clone()
}

fn mined(url: &str, hash: &serde_json::Value) -> bool {
    poll(DEADLINE, || {
        let r = rpc(url, "eth_getTransactionReceipt", json!([hash]));
        (!r["result"].is_null()).then_some(())
    })
    .is_some()
}

fn peer_count(url: &str) -> u64 {
    let v = rpc(url, "net_peerCount", json!([]));
    u64::from_str_radix(v["result"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// A consensus message at height 0 (old news: the node ignores it without penalty).
fn old_message(code: u8, round: u32) -> Vec<u8> {
    let key = secp256k1::SecretKey::from_slice(
        &alloy::hex::decode(consort_node::DEV_VALIDATOR_KEY.trim()).unwrap(),
    )
    .unwrap();
    let author = Qbft::new(key).address();
    let digest = B256::repeat_byte(0x11);
    match code {
        0x13 => QbftMessage::prepare(
            PreparePayload {
                height: 0,
                round,
                digest,
            },
            &key,
            author,
        ),
        _ => QbftMessage::commit(
            CommitPayload {
                height: 0,
                round,
                digest,
                seal: consort_primitives::sign_commit_seal(digest, &key),
            },
            &key,
            author,
        ),
    }
    .encode_wire()
}

fn ignored(metrics: &str, kind: &str) -> f64 {
    metric_sum(
        metrics,
        "consort_qbft_messages_total",
        &[&format!("type=\"{kind}\""), "outcome=\"ignored\""],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rogue_peers_are_refused_and_blocks_continue() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &["--max-peers=2"]);
    let url = node.http.clone();
    let metrics = node.metrics.clone().unwrap();
    let enode = node.enode.clone().unwrap();
    let genesis: B256 = rpc(&url, "eth_getBlockByNumber", json!(["0x0", false]))["result"]["hash"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let network_id = format!("1337-{}", alloy::hex::encode(&genesis[..4]));

    // 1. A peer from another incarnation of the network claims block 1,000,000 and sends
    //    headers that do not link. The validator must not sit out consensus on its word.
    let header_requests = Arc::new(AtomicU64::new(0));
    let (liar, events) =
        support::rogue::peer(0x51, std::slice::from_ref(&enode), &network_id).await;
    lie_about_the_head(liar, events, genesis, header_requests.clone());
    assert!(
        poll(DEADLINE, || (header_requests.load(Ordering::SeqCst) >= 1)
            .then_some(()))
        .is_some(),
        "the node never asked the liar for headers"
    );
    let hash = send_transfer(&url, 0);
    assert!(
        mined(&url, &hash),
        "no block while a peer lies about its head"
    );
    assert_eq!(rpc(&url, "eth_syncing", json!([]))["result"], json!(false));
    // Penalised on every failed batch, then banned: disconnected and refused on redial.
    assert!(
        poll(DEADLINE, || {
            (metric_sum(
                &metrics,
                "besu_peers_disconnected_total",
                &["disconnectReason=\"USELESS_PEER_BY_REPUTATION\""],
            ) >= 1.0)
                .then_some(())
        })
        .is_some(),
        "the liar was not banned"
    );
    assert!(metric_sum(&metrics, "consort_network_peer_penalties_total", &[]) >= 3.0);
    let requests_at_ban = header_requests.load(Ordering::SeqCst);
    assert!(poll(DEADLINE, || (peer_count(&url) == 0).then_some(())).is_some());
    let hash = send_transfer(&url, 1);
    assert!(mined(&url, &hash));
    assert_eq!(peer_count(&url), 0, "the banned liar came back");
    assert_eq!(header_requests.load(Ordering::SeqCst), requests_at_ban);

    // 2. Two peers publish the same consensus message (each under its own sequence number):
    //    it is one message, judged once.
    let (a, _a_events) =
        support::rogue::peer(0x52, std::slice::from_ref(&enode), &network_id).await;
    let (b, _b_events) =
        support::rogue::peer(0x53, std::slice::from_ref(&enode), &network_id).await;
    assert!(poll(DEADLINE, || (peer_count(&url) == 2).then_some(())).is_some());
    // Gossip needs the subscriptions exchanged: probe with distinct messages until one lands.
    let mut probe = 0;
    let landed = poll(DEADLINE, || {
        probe += 1;
        a.publish(Topic::Consensus, old_message(0x14, 100 + probe));
        b.publish(Topic::Consensus, old_message(0x14, 500 + probe));
        std::thread::sleep(Duration::from_millis(100));
        (ignored(&metrics, "commit") >= 2.0).then_some(())
    });
    assert!(landed.is_some(), "gossip from the rogues never arrived");
    let replayed = old_message(0x13, 7);
    a.publish(Topic::Consensus, replayed.clone());
    b.publish(Topic::Consensus, replayed);
    // Markers after the replays, one per peer: once both are judged, so are the replays.
    let before = ignored(&metrics, "commit");
    a.publish(Topic::Consensus, old_message(0x14, 900));
    b.publish(Topic::Consensus, old_message(0x14, 901));
    assert!(
        poll(DEADLINE, || (ignored(&metrics, "commit") >= before + 2.0)
            .then_some(()))
        .is_some(),
        "the markers never arrived"
    );
    assert_eq!(
        ignored(&metrics, "prepare"),
        1.0,
        "a replayed message was judged more than once"
    );

    // 3. A third peer finds the node full (--max-peers=2) and is refused.
    let (_c, _c_events) =
        support::rogue::peer(0x54, std::slice::from_ref(&enode), &network_id).await;
    assert!(
        poll(DEADLINE, || {
            (metric_sum(
                &metrics,
                "besu_peers_disconnected_total",
                &["disconnectReason=\"TOO_MANY_PEERS\""],
            ) >= 1.0)
                .then_some(())
        })
        .is_some(),
        "a third peer was never refused"
    );
    assert_eq!(peer_count(&url), 2);
    let hash = send_transfer(&url, 2);
    assert!(mined(&url, &hash), "no block after the rogues");
}
