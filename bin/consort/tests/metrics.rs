//! Metrics of a four-validator network under a workload (ETH and token transfers, calls, log
//! queries, failing requests), scraped by the test and by a real Prometheus server: more than
//! 100 families, every one live, plausible values, the RocksDB categories when asked for, and
//! the panel queries of `metrics-dashboards/consort.json` and of Besu's "Besu Full" dashboard
//! answered with data; and an OTLP receiver getting metrics and spans over gRPC and HTTP.
//! Uses 127.0.0.121-128.

mod support;

use alloy::consensus::TxEip1559;
use alloy::primitives::{address, Address, Bytes, TxKind, U256};
use alloy::signers::local::PrivateKeySigner;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::{block_number, http_request, poll, rpc, sign_eip1559, start_with, Node, DEV_KEYS};

const CHAIN_ID: u64 = 1338;
/// Where the test's Prometheus listens (the Pushgateway stand-in is on .126, the OTLP
/// receiver on .127, the follower's P2P on .128).
const PROMETHEUS: &str = "127.0.0.125:9090";
/// Every category, the opt-in RocksDB ones included (given to the fourth validator).
const ALL_CATEGORIES: &str = "BLOCKCHAIN,ETHEREUM,EXECUTORS,NETWORK,PEERS,PERMISSIONING,PRUNER,\
RPC,SYNCHRONIZER,TRANSACTION_POOL,BLOCK_PROCESSING,BAL,BONSAI_CACHE,QBFT,JVM,PROCESS,\
KVSTORE_ROCKSDB,KVSTORE_ROCKSDB_STATS";

/// Families that may still read zero everywhere after the workload, each because the event it
/// counts did not happen (the test would otherwise call them dead).
const QUIET: &[(&str, &str)] = &[
    ("consort_qbft_round_changes_total", "no round failed"),
    ("consort_qbft_round_timeouts_total", "no round timed out"),
    ("consort_qbft_current_round", "every height decided in round 0"),
    ("consort_qbft_queue_dropped_total", "the consensus queue never filled"),
    ("_rejected_tasks_total", "an executor's queue never filled"),
    ("_queue_length_current", "an executor's queue was empty when scraped"),
    ("_active_threads_current", "an executor was idle when scraped"),
    ("besu_permissioning_", "no permissioning is configured"),
    ("besu_synchronizer_in_sync", "validators in sync read 1; a zero would fail below"),
    ("consort_sync_imported_blocks_total", "no validator fell behind"),
    ("besu_peers_timeout_total", "no request to a peer timed out"),
    ("besu_peers_invalid_response_total", "no peer answered badly"),
    ("besu_peers_inflight_request_gauge", "no request was in flight when scraped"),
    ("consort_network_peer_penalties_total", "no peer misbehaved"),
    ("besu_transaction_pool_number_of_transactions", "the pool was empty when scraped"),
    ("besu_transaction_pool_space_used", "the pool was empty when scraped"),
    ("besu_transaction_pool_unique_senders", "the pool was empty when scraped"),
    ("besu_transaction_pool_transactions", "the pool was empty when scraped"),
    ("consort_transaction_pool_transactions", "the pool was empty when scraped"),
    ("besu_transaction_pool_removed_total", "nothing was replaced or evicted"),
    ("besu_transaction_pool_transactions_removed_total", "nothing was replaced or evicted"),
    ("besu_transaction_pool_rejected_total", "nothing was rejected"),
    ("consort_block_refused_total", "no block was refused"),
    ("consort_block_transactions_total", "the failed status never happened"),
    ("besu_rpc_active_http_connection_count", "only the scrape's own connection"),
    ("besu_rpc_active_ws_connection_count", "no WebSocket client"),
    ("besu_synchronizer_", "sync phases that did not run"),
    ("consort_qbft_is_validator", "non-validators read 0; validators are checked below"),
    ("rocksdb_", "RocksDB's statistics of what a short run never does (flushes, compactions, block cache); those it does are checked below"),
    ("besu_rocksdb_rocks_db_", "no table file yet: everything is still in memtables"),
];

/// Besu Full queries that select label values consort never has, and why.
const NOT_FOR_QBFT: &[(&str, &str)] = &[
    ("engine_", "no Engine API: QBFT needs no consensus client"),
    (
        "operation=\"dropped\"",
        "the pool never filled up in the test",
    ),
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The four validators of `genesis/qbft-4` (250 ms blocks) on 127.0.0.121-124; the fourth
/// exports every category.
fn start_validators(dir: &Path) -> Vec<Node> {
    let genesis = dir.join("genesis.json");
    std::fs::write(&genesis, support::fast_qbft4_genesis().to_string()).unwrap();
    let args = |i: usize, boot: Option<&str>| {
        let ip = format!("127.0.0.{}", 120 + i);
        let mut args = vec![
            format!("--genesis-file={}", genesis.display()),
            format!(
                "--node-private-key-file={}",
                repo()
                    .join(format!("genesis/qbft-4/validator{i}/key"))
                    .display()
            ),
            format!("--p2p-interface={ip}"),
            format!("--p2p-host={ip}"),
        ];
        if let Some(boot) = boot {
            args.push(format!("--bootnodes={boot}"));
        }
        if i == 4 {
            args.push(format!("--metrics-category={ALL_CATEGORIES}"));
        }
        args
    };
    let first = start_with(&dir.join("v1"), &args(1, None));
    let boot = first.enode.clone().expect("enode");
    let mut nodes = vec![first];
    for i in 2..=4 {
        nodes.push(start_with(
            &dir.join(format!("v{i}")),
            &args(i, Some(&boot)),
        ));
    }
    for node in &nodes {
        let ready = poll(Duration::from_secs(60), || {
            let peers = rpc(&node.http, "net_peerCount", json!([]));
            (peers["result"] == json!("0x3") && block_number(&node.http) >= 5).then_some(())
        });
        assert!(ready.is_some(), "a validator did not join the network");
    }
    nodes
}

/// Sends `tx` signed by `signer` and returns its hash.
fn send(url: &str, signer: &PrivateKeySigner, tx: TxEip1559) -> String {
    let r = rpc(
        url,
        "eth_sendRawTransaction",
        json!([sign_eip1559(signer, tx)]),
    );
    r["result"]
        .as_str()
        .unwrap_or_else(|| panic!("refused: {r}"))
        .to_string()
}

fn receipt(url: &str, hash: &str) -> Value {
    poll(Duration::from_secs(30), || {
        let r = rpc(url, "eth_getTransactionReceipt", json!([hash]));
        (!r["result"].is_null()).then(|| r["result"].clone())
    })
    .unwrap_or_else(|| panic!("{hash} was not included"))
}

fn eip1559(nonce: u64, to: TxKind, input: Bytes, gas_limit: u64) -> TxEip1559 {
    TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to,
        input,
        ..Default::default()
    }
}

/// The test token's creation code with its constructor's arguments: ("Consort", "CNS",
/// 1,000,000), ABI-encoded.
fn token_deployment() -> Vec<u8> {
    let word = |n: u64| U256::from(n).to_be_bytes::<32>();
    let text = |s: &str| {
        let mut padded = s.as_bytes().to_vec();
        padded.resize(32, 0);
        padded
    };
    let mut code = support::token_bytecode();
    for part in [
        word(0x60).to_vec(),
        word(0xa0).to_vec(),
        word(1_000_000).to_vec(),
        word(7).to_vec(),
        text("Consort"),
        word(3).to_vec(),
        text("CNS"),
    ] {
        code.extend(part);
    }
    code
}

/// `transfer(to, 1)` of the test token.
fn token_transfer(to: Address) -> Bytes {
    let mut data = vec![0xa9, 0x05, 0x9c, 0xbb];
    data.extend_from_slice(&[0u8; 12]);
    data.extend_from_slice(to.as_slice());
    data.extend_from_slice(&U256::from(1).to_be_bytes::<32>());
    data.into()
}

/// The workload: a token deployed and transferred (logs), ETH transfers to every node, calls,
/// balance and log queries, and requests that fail. Runs until `stop`.
fn workload(urls: Vec<String>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let token_owner: PrivateKeySigner = DEV_KEYS[2].parse().unwrap();
        let hash = send(
            &urls[0],
            &token_owner,
            eip1559(0, TxKind::Create, token_deployment().into(), 3_000_000),
        );
        let deployed = receipt(&urls[0], &hash);
        assert_eq!(deployed["status"], json!("0x1"), "{deployed}");
        let token: Address = deployed["contractAddress"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let payer: PrivateKeySigner = DEV_KEYS[1].parse().unwrap();
        let to = address!("0x00000000000000000000000000000000000000aa");
        let (mut eth_nonce, mut token_nonce, mut round) = (0u64, 1u64, 0usize);
        while !stop.load(Ordering::SeqCst) {
            let url = &urls[round % urls.len()];
            let mut transfer = eip1559(eth_nonce, TxKind::Call(to), Bytes::new(), 21_000);
            transfer.value = U256::from(1);
            let raw = sign_eip1559(&payer, transfer);
            let sent = rpc(url, "eth_sendRawTransaction", json!([raw]));
            assert!(sent.get("result").is_some(), "refused: {sent}");
            // The same transaction to a second node (which also hears it by gossip) and again
            // to the first: already seen, and rejected as known.
            rpc(
                &urls[(round + 1) % urls.len()],
                "eth_sendRawTransaction",
                json!([raw]),
            );
            rpc(url, "eth_sendRawTransaction", json!([raw]));
            eth_nonce += 1;
            let tx = eip1559(
                token_nonce,
                TxKind::Call(token),
                token_transfer(to),
                100_000,
            );
            send(url, &token_owner, tx);
            token_nonce += 1;
            let balance_of = format!("0x70a08231{:0>64}", alloy::hex::encode(to));
            let call = rpc(
                url,
                "eth_call",
                json!([{"to": token, "data": balance_of}, "latest"]),
            );
            assert!(call.get("result").is_some(), "{call}");
            rpc(url, "eth_getBalance", json!([to, "latest"]));
            let logs = rpc(
                url,
                "eth_getLogs",
                json!([{"fromBlock": "0x0", "address": token}]),
            );
            assert!(logs["result"].is_array(), "{logs}");
            // Failures: an unknown method and bad parameters.
            rpc(url, "eth_noSuchMethod", json!([]));
            rpc(url, "eth_getBalance", json!(["not an address"]));
            round += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        eth_nonce
    })
}

fn subscribe_and_unsubscribe(ws: &str) {
    use alloy::providers::{Provider, ProviderBuilder, WsConnect};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let provider = ProviderBuilder::new()
            .connect_ws(WsConnect::new(ws.to_string()))
            .await
            .unwrap();
        let mut heads = provider.subscribe_blocks().await.unwrap();
        heads.recv().await.unwrap();
        provider.unsubscribe(*heads.local_id()).await.unwrap();
    });
}

/// One scrape, parsed: family name → (type, samples as (series line without value, value)).
type Scrape = BTreeMap<String, (String, Vec<(String, f64)>)>;

fn scrape(node: &Node) -> Scrape {
    let (status, text) = http_request(node.metrics.as_ref().unwrap(), "GET", "", None);
    assert_eq!(status, 200, "{text}");
    let mut families = Scrape::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            current = name.to_string();
            families.insert(current.clone(), (kind.to_string(), Vec::new()));
        } else if !line.starts_with('#') && !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value: {line}"));
            // A summary's quantiles are NaN while its window holds no observation.
            assert!(
                !value.is_nan() || series.contains("quantile="),
                "NaN: {line}"
            );
            families
                .get_mut(&current)
                .unwrap_or_else(|| panic!("sample before its # TYPE: {line}"))
                .1
                .push((series.to_string(), value));
        }
    }
    families
}

/// The sum of a family's samples on one series name (the family's own, or `_count`, ...).
fn value(scrape: &Scrape, family: &str, series: &str) -> f64 {
    scrape.get(family).map_or(0.0, |(_, samples)| {
        samples
            .iter()
            .filter(|(s, _)| s == series || s.starts_with(&format!("{series}{{")))
            .map(|(_, v)| v)
            .sum()
    })
}

fn quiet(family: &str) -> bool {
    QUIET.iter().any(|(name, _)| {
        family.starts_with(name) || (name.starts_with('_') && family.ends_with(name))
    })
}

/// A running Prometheus server scraping `targets` every second; killed when dropped.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_prometheus(dir: &Path, targets: &[String]) -> Prometheus {
    let binary = ["/usr/bin/prometheus"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("Prometheus is not installed; scripts/setup.sh (run by make test) installs it");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: besu\n    static_configs:\n      - targets: [{}]\n",
        targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, config).unwrap();
    let child = Command::new(binary)
        .arg(format!("--config.file={}", path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={PROMETHEUS}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    Prometheus(child)
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Runs an instant query; `Err` carries Prometheus's error.
fn query(expr: &str) -> Result<Vec<Value>, String> {
    std::net::TcpStream::connect(PROMETHEUS).map_err(|e| format!("Prometheus: {e}"))?;
    let url = format!(
        "http://{PROMETHEUS}/api/v1/query?query={}",
        url_encode(expr)
    );
    let (_, body) = http_request(&url, "GET", "", None);
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if v["status"] != "success" {
        return Err(v.to_string());
    }
    let result = &v["data"]["result"];
    Ok(match v["data"]["resultType"].as_str() {
        Some("vector") | Some("matrix") => result.as_array().cloned().unwrap_or_default(),
        _ => vec![result.clone()],
    })
}

/// Grafana's variables, as the panels would expand them for "all instances".
fn expand(expr: &str) -> String {
    let mut expr = expr.to_string();
    for (var, with) in [
        ("${executor}", "consensus"),
        ("$__rate_interval", "30s"),
        ("$__interval", "5s"),
        ("$__range", "1m"),
        ("$overview_engine_percentiles", "0.5"),
        ("$sync_task_quantile", "0.5"),
        ("$executor", "consensus"),
        ("$txpool_layer", ".*"),
        ("$protocol_inbound", "eth/68"),
        ("$protocol_outbound", "eth/68"),
        ("$vertx_pool_name", ".*"),
        ("$diskdevices", ".*"),
        ("$instance", ".*"),
        ("$system", ".*"),
        ("$network", ".*"),
        ("$job", ".*"),
    ] {
        expr = expr.replace(var, with);
    }
    // `instance='.*'` (an equality in some Besu panels) means "any" once expanded.
    expr.replace("instance='.*'", "instance=~'.*'")
        .replace("instance=\".*\"", "instance=~\".*\"")
}

/// The metric names an expression reads (identifiers that are not PromQL words).
fn names_in(expr: &str) -> BTreeSet<String> {
    const WORDS: &[&str] = &[
        "sum",
        "by",
        "rate",
        "irate",
        "increase",
        "and",
        "or",
        "unless",
        "on",
        "ignoring",
        "without",
        "max",
        "min",
        "avg",
        "count",
        "time",
        "histogram_quantile",
        "topk",
        "bottomk",
        "delta",
        "deriv",
        "le",
        "quantile",
        "instance",
        "job",
        "group_left",
        "group_right",
        "abs",
        "vector",
        "label_replace",
        "clamp_min",
        "offset",
        "bool",
        "avg_over_time",
        "max_over_time",
        "sum_over_time",
        "idelta",
        "sort_desc",
    ];
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(start) = rest.find(|c: char| c.is_ascii_alphabetic() || c == '_') {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        let word = &tail[..end];
        let before = rest[..start].chars().last();
        let quoted = matches!(
            before,
            Some('"') | Some('\'') | Some('~') | Some('=') | Some('$')
        );
        let after = tail[end..].trim_start();
        let label = after.starts_with("=") || after.starts_with("!=") || after.starts_with("=~");
        if !quoted && !label && word.contains('_') && !WORDS.contains(&word) {
            names.insert(word.to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// Whether `name` (maybe a `_bucket`/`_sum`/`_count` series) has a series in Prometheus.
fn has_series(name: &str) -> bool {
    query(&format!("count({{__name__=\"{name}\"}})")).is_ok_and(|r| !r.is_empty())
}

/// Every panel query of a Grafana dashboard JSON, with its panel's title.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = panels.pop() {
        if let Some(inner) = panel["panels"].as_array() {
            panels.extend(inner);
        }
        let title = panel["title"].as_str().unwrap_or_default().to_string();
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                out.push((title.clone(), expr.to_string()));
            }
        }
    }
    out
}

/// The names `metrics-dashboards/README.md` lists under `## Not provided`.
fn not_provided() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(repo().join("metrics-dashboards/README.md")).unwrap();
    let section = readme
        .split("\n## Not provided")
        .nth(1)
        .expect("a ## Not provided section");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect()
}

/// Besu Full's PromQL expressions from the reference (Appendix B), if it is there.
fn besu_full_queries() -> Option<Vec<String>> {
    let path = repo().join("../shared/reference/metrics.md");
    let Ok(text) = std::fs::read_to_string(&path) else {
        assert!(
            std::env::var("CONSORT_REQUIRE_CONFORMANCE").is_err(),
            "{} is missing",
            path.display()
        );
        eprintln!(
            "skipped the Besu Full queries: {} is missing",
            path.display()
        );
        return None;
    };
    let appendix = text.split("## Appendix B").nth(1)?;
    let block = appendix.split("```text").nth(1)?.split("```").next()?;
    Some(
        block
            .lines()
            .filter(|l| !l.starts_with("[templating]"))
            .filter_map(|l| l.split_once(" :: ").map(|(_, e)| e.trim().to_string()))
            .collect(),
    )
}

#[test]
fn a_loaded_network_serves_over_100_live_families_that_prometheus_and_the_dashboards_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = start_validators(dir.path());
    // A peer disconnected and connected again (the disconnection counters).
    let third = nodes[3].enode.clone().unwrap();
    assert_eq!(
        rpc(&nodes[0].http, "admin_removePeer", json!([third]))["result"],
        json!(true)
    );
    rpc(&nodes[0].http, "admin_addPeer", json!([third]));
    let back = poll(Duration::from_secs(30), || {
        (rpc(&nodes[0].http, "net_peerCount", json!([]))["result"] == json!("0x3")).then_some(())
    });
    assert!(back.is_some(), "the removed peer did not come back");
    // A WebSocket client subscribes to new heads, gets one and unsubscribes.
    subscribe_and_unsubscribe(&nodes[0].ws);
    // A follower that joins late and syncs (the synchronizer's families).
    let follower = start_with(
        &dir.path().join("follower"),
        &[
            format!(
                "--genesis-file={}",
                dir.path().join("genesis.json").display()
            ),
            "--p2p-interface=127.0.0.128".into(),
            "--p2p-host=127.0.0.128".into(),
            format!("--bootnodes={}", nodes[0].enode.clone().unwrap()),
        ],
    );
    let head = block_number(&nodes[0].http);
    let synced = poll(Duration::from_secs(60), || {
        (block_number(&follower.http) >= head).then_some(())
    });
    assert!(synced.is_some(), "the follower did not sync");
    nodes.push(follower);
    let targets: Vec<String> = nodes
        .iter()
        .map(|n| {
            let url = n.metrics.as_ref().unwrap();
            url.trim_start_matches("http://")
                .trim_end_matches("/metrics")
                .to_string()
        })
        .collect();
    let _prometheus = start_prometheus(dir.path(), &targets);
    let stop = Arc::new(AtomicBool::new(false));
    let load = workload(
        nodes[..4].iter().map(|n| n.http.clone()).collect(),
        stop.clone(),
    );

    // Prometheus scrapes all four for a while under the load.
    let up = poll(Duration::from_secs(60), || {
        let up = query("sum(up{job=\"besu\"})").ok()?;
        (up.first()?["value"][1] == json!("5")).then_some(())
    });
    assert!(up.is_some(), "Prometheus never scraped all five nodes");
    let moved = poll(Duration::from_secs(60), || {
        let r =
            query("sum(increase(besu_blockchain_chain_head_transaction_count_counter_total[30s]))")
                .ok()?;
        let v: f64 = r.first()?["value"][1].as_str()?.parse().ok()?;
        (v > 20.0).then_some(())
    });
    assert!(moved.is_some(), "the workload did not reach the chain");
    std::thread::sleep(Duration::from_secs(12));

    let scrapes: Vec<Scrape> = nodes.iter().map(scrape).collect();
    let default = &scrapes[0];
    eprintln!("{} families with the default categories", default.len());
    assert!(
        default.len() > 100,
        "only {} families: {:?}",
        default.len(),
        default.keys().collect::<Vec<_>>()
    );

    // Every family is live: some sample on some node moved from zero, unless the event it
    // counts cannot have happened here.
    let dead: Vec<&String> = scrapes
        .iter()
        .flat_map(|s| s.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|family| {
            scrapes
                .iter()
                .filter_map(|s| s.get(*family))
                .all(|(_, samples)| samples.iter().all(|(_, v)| *v == 0.0))
        })
        .filter(|family| !quiet(family))
        .collect();
    assert!(dead.is_empty(), "registered but never moved: {dead:?}");

    // Plausible values on the first validator.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as f64;
    let head = block_number(&nodes[0].http) as f64;
    let v = |family: &str| value(default, family, family);
    let in_range = |family: &str, low: f64, high: f64| {
        let x = v(family);
        assert!(
            (low..=high).contains(&x),
            "{family} = {x}, not in {low}..={high}"
        );
    };
    in_range("ethereum_blockchain_height", head - 20.0, head);
    in_range("ethereum_best_known_block_number", head - 20.0, head + 20.0);
    in_range("ethereum_peer_count", 3.0, 4.0);
    in_range("consort_qbft_validators", 4.0, 4.0);
    in_range("consort_qbft_is_validator", 1.0, 1.0);
    in_range("besu_synchronizer_in_sync", 1.0, 1.0);
    in_range(
        "besu_blockchain_chain_head_timestamp",
        now - 30.0,
        now + 5.0,
    );
    in_range("besu_blockchain_difficulty", head - 20.0, head + 1.0);
    in_range(
        "besu_executors_ethscheduler_workers_pool_size_current",
        1.0,
        64.0,
    );
    in_range(
        "besu_executors_ethscheduler_consensus_pool_size_current",
        1.0,
        1.0,
    );
    in_range("process_resident_memory_bytes", 1e6, 2e9);
    in_range("process_open_fds", 5.0, 10_000.0);
    in_range("process_start_time_seconds", now - 600.0, now);
    for counter in [
        "besu_blockchain_chain_head_transaction_count_counter_total",
        "besu_blockchain_chain_head_gas_used_counter_total",
        "besu_blockchain_get_account_total",
        "besu_blockchain_get_storagevalue_total",
        "besu_peers_connected_total",
        "besu_network_p2p_messages_inbound_total",
        "besu_network_p2p_bytes_outbound_total",
        "consort_qbft_messages_total",
        "consort_block_logs_total",
        "besu_rpc_errors_count_total",
        "besu_rpc_eth_call_gas_used_total",
        "besu_transaction_pool_added_total",
        "besu_executors_ethscheduler_consensus_completed_tasks_total",
        "consort_executors_tokio_busy_seconds_total",
        "process_cpu_seconds_total",
    ] {
        assert!(v(counter) > 0.0, "{counter} did not move");
    }
    let calls = value(
        default,
        "besu_rpc_request_time",
        "besu_rpc_request_time_count",
    );
    assert!(calls > 10.0, "besu_rpc_request_time_count = {calls}");
    let built: f64 = scrapes
        .iter()
        .map(|s| {
            value(
                s,
                "consort_qbft_blocks_built_total",
                "consort_qbft_blocks_built_total",
            )
        })
        .sum();
    assert!(built > 0.0, "no validator built a block");

    // The fourth validator also exports the RocksDB categories, Besu's names.
    let all = &scrapes[3];
    assert!(!default.contains_key("rocksdb_number_keys_read"));
    assert!(!default.contains_key("besu_rocksdb_read_latency_seconds"));
    for (family, series) in [
        (
            "besu_rocksdb_read_latency_seconds",
            "besu_rocksdb_read_latency_seconds_count",
        ),
        (
            "besu_rocksdb_commit_latency_seconds",
            "besu_rocksdb_commit_latency_seconds_count",
        ),
        ("rocksdb_number_keys_read", "rocksdb_number_keys_read"),
        ("rocksdb_number_keys_written", "rocksdb_number_keys_written"),
        ("rocksdb_db_get", "rocksdb_db_get_count"),
        ("rocksdb_db_write", "rocksdb_db_write_count"),
    ] {
        assert!(value(all, family, series) > 0.0, "{series} did not move");
    }
    eprintln!("{} families with every category", all.len());

    // Prometheus answers every panel of consort's own dashboard (the opt-in RocksDB row aside).
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("metrics-dashboards/consort.json")).unwrap(),
    )
    .unwrap();
    let panels = dashboard_queries(&dashboard);
    assert!(panels.len() >= 20, "only {} panel queries", panels.len());
    let mut empty = Vec::new();
    for (title, expr) in &panels {
        if title.contains("(opt-in)") {
            continue;
        }
        match query(&expand(expr)) {
            Ok(r) if !r.is_empty() => {}
            Ok(_) => empty.push(format!("{title}: {expr} (no data)")),
            Err(e) => empty.push(format!("{title}: {expr} ({e})")),
        }
    }
    assert!(
        empty.is_empty(),
        "dashboard panels without data:\n{}",
        empty.join("\n")
    );

    // And Besu Full's queries, wherever every metric they read applies to consort: each runs,
    // each metric it names has data, and the query itself has data unless it filters on a
    // condition (`> 0`, `!= 0`) that does not hold on a healthy network.
    let missing = not_provided();
    if let Some(besu) = besu_full_queries() {
        let mut failures = Vec::new();
        let mut answered = 0;
        for expr in &besu {
            if let Some((_, why)) = NOT_FOR_QBFT.iter().find(|(s, _)| expr.contains(s)) {
                eprintln!("skipped ({why}): {expr}");
                continue;
            }
            let expanded = expand(expr);
            // An `or` branch whose every metric consort provides can have data.
            let usable: Vec<BTreeSet<String>> = expanded
                .split(" or ")
                .map(names_in)
                .filter(|names| !names.is_empty() && names.iter().all(|n| !missing.contains(n)))
                .collect();
            if usable.is_empty() {
                continue;
            }
            answered += 1;
            match query(&expanded) {
                Err(e) => failures.push(format!("{expr}: {e}")),
                Ok(r) => {
                    for name in usable.iter().flatten() {
                        if !has_series(name) {
                            failures.push(format!("{expr}: {name} has no data"));
                        }
                    }
                    let conditional = [">0", "> 0", "!= 0", "!=0"]
                        .iter()
                        .any(|c| expr.contains(c));
                    if r.is_empty() && !conditional {
                        failures.push(format!("{expr}: no data"));
                    }
                }
            }
        }
        eprintln!(
            "{answered} of {} Besu Full queries apply and were answered",
            besu.len()
        );
        assert!(answered >= 60, "only {answered} Besu Full queries applied");
        assert!(
            failures.is_empty(),
            "Besu Full queries:\n{}",
            failures.join("\n")
        );
    }

    stop.store(true, Ordering::SeqCst);
    assert!(load.join().unwrap() > 0);
}

/// A Pushgateway stand-in on `addr`: answers 200 and hands back each request's head and body.
fn gateway(addr: &str) -> std::sync::mpsc::Receiver<String> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind(addr).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut got = Vec::new();
            let mut buf = [0u8; 65536];
            while let Ok(n) = stream.read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                let complete = text.split_once("\r\n\r\n").is_some_and(|(head, body)| {
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    body.len() >= len
                });
                if n == 0 || complete {
                    break;
                }
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            if tx.send(String::from_utf8_lossy(&got).to_string()).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn metrics_are_pushed_beside_the_endpoint_and_a_bad_otlp_setting_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pushes = gateway("127.0.0.126:9091");
    let mut node = support::start(
        &dir.path().join("push"),
        &[
            "--metrics-push-enabled",
            "--metrics-push-host=127.0.0.126",
            "--metrics-push-port=9091",
            "--metrics-push-interval=1",
            "--metrics-push-prometheus-job=consortium",
        ],
    );
    let push = pushes
        .recv_timeout(Duration::from_secs(30))
        .expect("no push");
    assert!(
        push.starts_with("PUT /metrics/job/consortium HTTP/1.1\r\n"),
        "{push}"
    );
    assert!(push.contains("\nethereum_blockchain_height "), "{push}");
    // The pull endpoint stays on beside the push.
    let (status, _) = http_request(node.metrics.as_ref().unwrap(), "GET", "", None);
    assert_eq!(status, 200);
    // A graceful stop deletes the group.
    let _ = Command::new("kill")
        .arg(node.child.id().to_string())
        .status();
    let _ = node.child.wait();
    let deleted = poll(Duration::from_secs(10), || {
        let request = pushes.recv_timeout(Duration::from_secs(10)).ok()?;
        request
            .starts_with("DELETE /metrics/job/consortium ")
            .then_some(())
    });
    assert!(deleted.is_some(), "the group was not deleted on shutdown");

    // An OTLP setting the exporter cannot honour stops the node at start, saying which.
    for (var, value, says) in [
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://collector:4317",
            "TLS is not supported",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "http/json"),
        (
            "OTEL_METRIC_EXPORT_INTERVAL",
            "often",
            "OTEL_METRIC_EXPORT_INTERVAL",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_consort"))
            .args([
                "--network=dev",
                "--metrics-enabled",
                "--metrics-protocol=opentelemetry",
            ])
            .arg(format!("--data-path={}", dir.path().join("otel").display()))
            .env(var, value)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("--metrics-protocol=OPENTELEMETRY") && stderr.contains(says),
            "{stderr}"
        );
    }
}

/// What the in-test OTLP receiver got: metrics and trace requests, each with the path it came
/// on (`grpc` or `http`).
#[derive(Default)]
struct Received {
    metrics: Vec<(&'static str, otlp_metrics::ExportMetricsServiceRequest)>,
    traces: Vec<(&'static str, otlp_traces::ExportTraceServiceRequest)>,
}

use opentelemetry_proto::tonic::collector::metrics::v1 as otlp_metrics;
use opentelemetry_proto::tonic::collector::trace::v1 as otlp_traces;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span as OtlpSpan;

/// An OTLP receiver on `addr` speaking both gRPC (HTTP/2 without TLS) and HTTP protobuf
/// (HTTP/1.1), as a collector does on its two ports. Runs on its own runtime thread.
fn otlp_receiver(addr: &'static str) -> Arc<std::sync::Mutex<Received>> {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full, StreamBody};
    use hyper::body::Frame;
    use prost::Message;
    let received = Arc::new(std::sync::Mutex::new(Received::default()));
    let sink = received.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
            ready_tx.send(()).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let sink = sink.clone();
                let service = hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let sink = sink.clone();
                    async move {
                        let path = request.uri().path().to_string();
                        let grpc = request
                            .headers()
                            .get("content-type")
                            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let message = if grpc { body.slice(5..) } else { body };
                        let via = if grpc { "grpc" } else { "http" };
                        let mut got = sink.lock().unwrap();
                        if path.ends_with("MetricsService/Export") || path.ends_with("/v1/metrics") {
                            let m = otlp_metrics::ExportMetricsServiceRequest::decode(message).unwrap();
                            got.metrics.push((via, m));
                        } else if path.ends_with("TraceService/Export") || path.ends_with("/v1/traces") {
                            let t = otlp_traces::ExportTraceServiceRequest::decode(message).unwrap();
                            got.traces.push((via, t));
                        } else {
                            panic!("unexpected OTLP path {path}");
                        }
                        drop(got);
                        let response = if grpc {
                            let mut trailers = http::HeaderMap::new();
                            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                            let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
                                Ok(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0]))),
                                Ok(Frame::trailers(trailers)),
                            ];
                            http::Response::builder()
                                .header("content-type", "application/grpc")
                                .body(StreamBody::new(futures::stream::iter(frames)).boxed())
                                .unwrap()
                        } else {
                            http::Response::builder()
                                .header("content-type", "application/x-protobuf")
                                .body(Full::new(Bytes::new()).map_err(|e| match e {}).boxed())
                                .unwrap()
                        };
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        });
    });
    ready_rx.recv().unwrap();
    received
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attribute(attributes, key)? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

/// Every span `service` sent, with its scope.
fn spans_of(received: &Received, service: &str) -> Vec<(String, OtlpSpan)> {
    received
        .traces
        .iter()
        .flat_map(|(_, t)| &t.resource_spans)
        .filter(|r| {
            r.resource.as_ref().is_some_and(|res| {
                text(&res.attributes, "service.name").as_deref() == Some(service)
            })
        })
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| {
            let scope = s.scope.as_ref().map(|s| s.name.clone()).unwrap_or_default();
            s.spans
                .iter()
                .map(move |span| (scope.clone(), span.clone()))
        })
        .collect()
}

/// The metric `name` in `service`'s latest export, with its scope.
fn latest_metric(
    received: &Received,
    service: &str,
    name: &str,
) -> Option<(
    &'static str,
    String,
    opentelemetry_proto::tonic::metrics::v1::Metric,
)> {
    received.metrics.iter().rev().find_map(|(via, m)| {
        let resource = m.resource_metrics.first()?;
        let named = resource
            .resource
            .as_ref()
            .is_some_and(|r| text(&r.attributes, "service.name").as_deref() == Some(service));
        if !named {
            return None;
        }
        resource.scope_metrics.iter().find_map(|s| {
            let metric = s.metrics.iter().find(|m| m.name == name)?;
            Some((*via, s.scope.as_ref()?.name.clone(), metric.clone()))
        })
    })
}

#[test]
fn otlp_carries_metrics_and_traces_over_grpc_and_http_with_w3c_parents() {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    let dir = tempfile::tempdir().unwrap();
    let received = otlp_receiver("127.0.0.127:4317");
    let common = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.127:4317"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test"),
    ];
    let args = [
        "--network=dev".to_string(),
        "--metrics-protocol=PROMETHEUS,OPENTELEMETRY".to_string(),
    ];
    let mut validator_env = common.to_vec();
    validator_env.push(("OTEL_SERVICE_NAME", "validator-a"));
    let validator = support::start_with_env(&dir.path().join("a"), &args, &validator_env);
    let mut follower_env = common.to_vec();
    follower_env.push(("OTEL_SERVICE_NAME", "follower-b"));
    follower_env.push(("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"));
    // The dev network's default key is its validator's: the follower needs a key of its own.
    let follower_key = dir.path().join("follower.key");
    std::fs::write(&follower_key, DEV_KEYS[2]).unwrap();
    let mut follower_args = args.to_vec();
    follower_args.push(format!(
        "--node-private-key-file={}",
        follower_key.display()
    ));
    follower_args.push(format!("--bootnodes={}", validator.enode.clone().unwrap()));
    let follower = support::start_with_env(&dir.path().join("b"), &follower_args, &follower_env);

    // A JSON-RPC request that carries a W3C trace context.
    let (trace_hex, parent_hex) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let traceparent = format!("00-{trace_hex}-{parent_hex}-01");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []});
    let (status, _, _) = support::http_request_with(
        &validator.http,
        "POST",
        &body.to_string(),
        &[("traceparent", traceparent.as_str())],
    );
    assert_eq!(status, 200);
    let synced = poll(Duration::from_secs(60), || {
        (block_number(&follower.http) >= 3).then_some(())
    });
    assert!(synced.is_some(), "the follower did not import blocks");

    let trace_id = alloy::hex::decode(trace_hex).unwrap();
    let parent_id = alloy::hex::decode(parent_hex).unwrap();
    let by_id = |spans: &[(String, OtlpSpan)], id: &[u8]| {
        spans.iter().find(|(_, s)| s.span_id == id).cloned()
    };
    let children = |spans: &[(String, OtlpSpan)], parent: &OtlpSpan, name: &str| -> Vec<OtlpSpan> {
        spans
            .iter()
            .filter(|(_, s)| {
                s.parent_span_id == parent.span_id
                    && s.trace_id == parent.trace_id
                    && s.name == name
            })
            .map(|(_, s)| s.clone())
            .collect()
    };
    let complete = poll(Duration::from_secs(60), || {
        let got = received.lock().unwrap();
        let a = spans_of(&got, "validator-a");
        let b = spans_of(&got, "follower-b");
        // The request's server span is the caller's child; the method's span is its child.
        let (scope, server) = a
            .iter()
            .find(|(_, s)| s.trace_id == trace_id && s.parent_span_id == parent_id)?
            .clone();
        assert_eq!(scope, "consort.jsonrpc");
        assert_eq!(server.kind, 2, "a server span");
        assert!(server.name.starts_with("127.0.0.1:"), "{}", server.name);
        let method = children(&a, &server, "eth_blockNumber").pop()?;
        assert_eq!(method.trace_id, trace_id);
        // A round that decided, with the block built in it and its import.
        let round = a.iter().find(|(_, s)| {
            s.name == "qbftRound"
                && matches!(attribute(&s.attributes, "qbft.outcome"), Some(any_value::Value::StringValue(o)) if o == "decided")
                && a.iter().any(|(_, c)| c.parent_span_id == s.span_id && c.name == "importBlock")
                && a.iter().any(|(_, c)| c.parent_span_id == s.span_id && c.name == "buildBlock")
        })?;
        let (round_scope, round) = round.clone();
        assert_eq!(round_scope, "consort.qbft");
        let built = children(&a, &round, "buildBlock").pop()?;
        children(&a, &built, "execute").pop()?;
        children(&a, &built, "calculateStateRoot").pop()?;
        let imported = children(&a, &round, "importBlock").pop()?;
        children(&a, &imported, "commit").pop()?;
        // The follower's import of a block from its peer: checked (executed, state root)
        // and committed, as child spans.
        let (_, peer_import) = b.iter().find(|(_, s)| {
            s.name == "importBlock"
                && text(&s.attributes, "block.source").as_deref() == Some("peer")
        })?;
        let checked = children(&b, peer_import, "checkBlock").pop()?;
        children(&b, &checked, "execute").pop()?;
        children(&b, &checked, "calculateStateRoot").pop()?;
        children(&b, peer_import, "commit").pop()?;
        assert!(by_id(&a, &round.span_id).is_some());
        // Metrics from both, each by its own protocol, under the categories' scopes.
        let (via, scope, height) =
            latest_metric(&got, "validator-a", "ethereum_blockchain_height")?;
        assert_eq!((via, scope.as_str()), ("grpc", "ethereum"));
        let Some(Data::Gauge(gauge)) = height.data else {
            panic!("not a gauge")
        };
        let Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(h)) =
            gauge.data_points.first()?.value
        else {
            panic!("no value")
        };
        if h < 1.0 {
            return None;
        }
        let (_, scope, built) = latest_metric(&got, "validator-a", "consort_qbft_blocks_built")?;
        assert_eq!(scope, "qbft");
        assert!(matches!(built.data, Some(Data::Sum(ref s)) if s.is_monotonic));
        let (_, _, rpc) = latest_metric(&got, "validator-a", "besu_rpc_request_time")?;
        assert!(matches!(rpc.data, Some(Data::Summary(_))), "{rpc:?}");
        let (via, _, _) = latest_metric(&got, "follower-b", "ethereum_blockchain_height")?;
        assert_eq!(via, "http");
        let resource = got
            .metrics
            .first()?
            .1
            .resource_metrics
            .first()?
            .resource
            .clone()?;
        assert_eq!(
            text(&resource.attributes, "deployment.environment").as_deref(),
            Some("test")
        );
        Some(())
    });
    assert!(
        complete.is_some(),
        "the receiver never got every expected span and metric; spans seen: {:?}",
        {
            let got = received.lock().unwrap();
            ["validator-a", "follower-b"].map(|service| {
                let names: BTreeSet<String> = spans_of(&got, service)
                    .iter()
                    .map(|(_, s)| s.name.clone())
                    .filter(|n| !n.starts_with("127.0.0.1:"))
                    .collect();
                (service, names)
            })
        }
    );
}
