//! `consort-bench` against a dev node: it funds its senders, sends every transaction it
//! signed (closed and open loop, ETH, ERC-20 and `open`, over HTTP and WebSocket), sees each
//! one included (polling, or through `newHeads`) and reports the node's process. Figures are printed by `make bench`, never asserted here.

mod support;

use serde_json::Value;
use std::process::Command;

fn bench(node: &support::Node, args: &[&str]) -> Value {
    bench_over(node, &node.http, args)
}

fn bench_over(node: &support::Node, url: &str, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_consort-bench"))
        .arg(format!("--rpc={url}"))
        .arg(format!("--metrics={}", node.metrics.as_ref().unwrap()))
        .arg("--json")
        .args(args)
        .output()
        .expect("run consort-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "consort-bench failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn the_load_generator_sees_every_transaction_it_sends_included() {
    let dir = tempfile::tempdir().unwrap();
    let node = support::start(&dir.path().join("node"), &[]);
    for (args, n) in [
        (
            vec!["--kind=eth", "--txs=300", "--senders=10", "--concurrency=8"],
            300,
        ),
        (
            vec![
                "--kind=erc20",
                "--txs=100",
                "--senders=5",
                "--concurrency=4",
            ],
            100,
        ),
        (
            vec!["--kind=open", "--txs=100", "--senders=5", "--concurrency=4"],
            100,
        ),
        (
            vec!["--kind=eth", "--txs=100", "--senders=4", "--rate=200"],
            100,
        ),
    ] {
        let report = bench(&node, &args);
        assert_eq!(report["submitted"], n, "{report}");
        assert_eq!(report["included"], n, "{report}");
        assert_eq!(report["errors"], serde_json::json!({}), "{report}");
        assert!(report["tx_per_second"].as_f64().unwrap() > 0.0, "{report}");
        assert!(
            report["latency_ms"]["p99"].as_f64().unwrap() > 0.0,
            "{report}"
        );
        assert!(
            report["node_processes"][0]["rss_bytes"].as_f64().unwrap() > 1e6,
            "{report}"
        );
        if report["kind"] == "open" {
            // Each `open` stores a fresh slot: more than 20,000 gas above the 21,000 base.
            let gas = report["mgas_per_second"].as_f64().unwrap()
                * report["seconds"].as_f64().unwrap()
                * 1e6;
            assert!(gas / 100.0 > 41_000.0, "{report}");
        }
    }
    // Over a WebSocket: sent there, inclusion followed through newHeads.
    let ws = format!("{},{}", node.ws, node.ws);
    let report = bench_over(
        &node,
        &ws,
        &["--kind=eth", "--txs=200", "--senders=8", "--concurrency=4"],
    );
    assert_eq!(report["follow"], "newHeads", "{report}");
    assert_eq!(report["nodes"], 2, "{report}");
    assert_eq!(report["included"], 200, "{report}");
    assert_eq!(report["errors"], serde_json::json!({}), "{report}");
    let polled = bench(&node, &["--txs=20", "--senders=2"]);
    assert_eq!(polled["follow"], "poll", "{polled}");
    // Read-only calls for a while, from several connections.
    let reads = bench(
        &node,
        &["--read=eth_getBalance", "--seconds=1", "--concurrency=4"],
    );
    assert!(reads["requests"].as_u64().unwrap() > 0, "{reads}");
    assert_eq!(reads["errors"], serde_json::json!({}), "{reads}");
    // eth_call of a token it deploys, and eth_getLogs finding the transfers it made first.
    let call = bench(
        &node,
        &["--read=eth_call", "--seconds=1", "--concurrency=2"],
    );
    assert!(call["requests"].as_u64().unwrap() > 0, "{call}");
    assert_eq!(call["errors"], serde_json::json!({}), "{call}");
    let logs = bench(
        &node,
        &[
            "--read=eth_getLogs",
            "--logs=7",
            "--seconds=1",
            "--concurrency=2",
        ],
    );
    // The seven transfers and the mint of the deployment.
    assert_eq!(logs["answer_items"], 8, "{logs}");
    assert_eq!(logs["errors"], serde_json::json!({}), "{logs}");
    // A node that is not there is a clear error, not a hang.
    let out = Command::new(env!("CARGO_BIN_EXE_consort-bench"))
        .args(["--rpc=http://127.0.0.1:1", "--txs=1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("consort-bench:"));
}
