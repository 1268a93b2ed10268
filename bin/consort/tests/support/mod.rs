//! Spawning `consort` nodes for end-to-end tests: ephemeral ports, a temporary data path, and
//! the addresses read back from the node's log.

#![allow(dead_code)]

pub mod netns;
pub mod rogue;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Public development keys funded in `chainspecs/dev.json`.
pub const DEV_KEYS: [&str; 3] = [
    "8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63",
    "c87509a1c067bbde78beb793e6fa76530b6382a4c0241e5e4a9ec0a0f44dc0d3",
    "ae6ae8e5ccbfb04590405997ee2d52d2b330726137b875053c36d94e974d162f",
];

/// A running node process. Killed when dropped.
pub struct Node {
    pub child: Child,
    pub http: String,
    pub ws: String,
    pub metrics: Option<String>,
    /// The node's enode URL, unless started with `--p2p-enabled=false`.
    pub enode: Option<String>,
    pub log: mpsc::Receiver<String>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `consort --network=dev` on `data_path` with HTTP, WebSocket, metrics and P2P on
/// ephemeral ports.
pub fn start(data_path: &Path, extra: &[&str]) -> Node {
    let mut args = vec!["--network=dev".to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    start_with(data_path, &args)
}

/// Starts `consort` with `args` on `data_path`, HTTP, WebSocket, metrics and P2P on ephemeral
/// ports (P2P on 127.0.0.1 unless `args` name an interface).
pub fn start_with(data_path: &Path, args: &[String]) -> Node {
    start_in(None, data_path, args)
}

/// Like [`start_with`], inside the network namespace `netns` when given (`ip netns exec`,
/// which execs the node, so the child is the node itself).
pub fn start_in(netns: Option<&str>, data_path: &Path, args: &[String]) -> Node {
    start_in_env(netns, data_path, args, &[])
}

/// Like [`start_with`], with environment variables `envs` set for the node.
pub fn start_with_env(data_path: &Path, args: &[String], envs: &[(&str, &str)]) -> Node {
    start_in_env(None, data_path, args, envs)
}

fn start_in_env(
    netns: Option<&str>,
    data_path: &Path,
    args: &[String],
    envs: &[(&str, &str)],
) -> Node {
    let p2p = !args.iter().any(|a| a == "--p2p-enabled=false");
    let binary = env!("CARGO_BIN_EXE_consort");
    let mut cmd = match netns {
        Some(ns) => {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", ns, binary]);
            cmd
        }
        None => Command::new(binary),
    };
    if !args.iter().any(|a| a.starts_with("--p2p-interface")) {
        cmd.args(["--p2p-interface=127.0.0.1", "--p2p-host=127.0.0.1"]);
    }
    if !args.iter().any(|a| a.starts_with("--p2p-port")) {
        cmd.arg("--p2p-port=0");
    }
    cmd.arg(format!("--data-path={}", data_path.display()))
        .args([
            "--rpc-http-enabled",
            "--rpc-http-port=0",
            "--rpc-http-api=ETH,NET,WEB3,TXPOOL,DEBUG,QBFT,ADMIN",
            "--rpc-ws-enabled",
            "--rpc-ws-port=0",
            "--metrics-enabled",
            "--metrics-port=0",
        ])
        .args(args)
        .envs(envs.iter().copied())
        .env_remove("CONSORT_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn consort");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut http, mut ws, mut metrics, mut enode) = (None, None, None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    while http.is_none() || ws.is_none() || metrics.is_none() || (p2p && enode.is_none()) {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("node did not start; log so far:\n{seen}"));
        seen.push_str(&line);
        seen.push('\n');
        if let Some(url) = after(&line, "JSON-RPC HTTP on ") {
            http = Some(url);
        } else if let Some(url) = after(&line, "JSON-RPC WebSocket on ") {
            ws = Some(url);
        } else if let Some(url) = after(&line, "metrics on ") {
            metrics = Some(url);
        } else if let Some(url) = after(&line, "P2P on ") {
            enode = Some(url);
        }
    }
    Node {
        child,
        http: http.unwrap_or_default(),
        ws: ws.unwrap_or_default(),
        metrics,
        enode,
        log: rx,
    }
}

impl Node {
    /// The warnings and errors the node has logged since its log was last read, the last
    /// `keep` of them: what a failure message shows of a node.
    pub fn warnings(&self, keep: usize) -> Vec<String> {
        let mut lines: Vec<String> = self
            .log
            .try_iter()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .collect();
        lines.drain(..lines.len().saturating_sub(keep));
        lines
    }
}

fn after(line: &str, marker: &str) -> Option<String> {
    let start = line.find(marker)? + marker.len();
    Some(line[start..].split_whitespace().next()?.to_string())
}

/// `genesis/qbft-4/genesis.json` as JSON with a 250 ms block period, blocks even when empty,
/// and a 1 s round timeout: the multi-process tests' four-validator chain.
pub fn fast_qbft4_genesis() -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../genesis/qbft-4/genesis.json");
    let text = std::fs::read_to_string(path).expect("genesis/qbft-4/genesis.json");
    let mut genesis: serde_json::Value = serde_json::from_str(&text).expect("json");
    genesis["config"]["qbft"] = serde_json::json!({
        "blockperiodseconds": 1,
        "xblockperiodmilliseconds": 250,
        "emptyblockperiodseconds": 0,
        "epochlength": 30000,
        "requesttimeoutseconds": 1,
    });
    genesis
}

/// Polls `f` every 100 ms until it returns Some or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `eth_blockNumber` as a number.
pub fn block_number(url: &str) -> u64 {
    let v = rpc(url, "eth_blockNumber", serde_json::json!([]));
    u64::from_str_radix(v["result"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// Sends one JSON-RPC request over plain HTTP and returns the parsed response object.
pub fn rpc(url: &str, method: &str, params: serde_json::Value) -> serde_json::Value {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    post(url, &body.to_string())
}

/// POSTs a raw body and parses the JSON response.
pub fn post(url: &str, body: &str) -> serde_json::Value {
    let (status, text) = http_request(url, "POST", body, None);
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON {e}: {text}"))
}

/// A minimal HTTP/1.1 client: returns status and body.
pub fn http_request(url: &str, method: &str, body: &str, host: Option<&str>) -> (u16, String) {
    let headers: Vec<(&str, &str)> = host.map(|h| vec![("Host", h)]).unwrap_or_default();
    let (status, _, body) = http_request_with(url, method, body, &headers);
    (status, body)
}

/// Like [`http_request`] with extra headers; also returns the response head.
pub fn http_request_with(
    url: &str,
    method: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let rest = url.trim_start_matches("http://");
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = std::net::TcpStream::connect(authority).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let host = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map_or(authority, |(_, v)| *v);
    let extra: String = headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, head.to_string(), body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n.min(rest.len())]);
        body = rest.get(n + 2..).unwrap_or("");
    }
    out
}

/// The repo's compiled test contract (see tests/js/compile.js).
pub fn token_bytecode() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/contracts/Token.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("Token.json")).expect("json");
    let hex = json["bytecode"].as_str().expect("bytecode");
    alloy::hex::decode(hex).expect("hex")
}

/// Signs an EIP-1559 transaction and returns its EIP-2718 bytes.
pub fn sign_eip1559(
    signer: &alloy::signers::local::PrivateKeySigner,
    mut tx: alloy::consensus::TxEip1559,
) -> alloy::primitives::Bytes {
    use alloy::consensus::{SignableTransaction, TxEnvelope};
    use alloy::eips::eip2718::Encodable2718;
    use alloy::network::TxSignerSync;
    let sig = signer.sign_transaction_sync(&mut tx).expect("sign");
    TxEnvelope::from(tx.into_signed(sig)).encoded_2718().into()
}

/// The sum of a metric's samples whose line contains every one of `parts`.
pub fn metric_sum(metrics_url: &str, name: &str, parts: &[&str]) -> f64 {
    let (_, text) = http_request(metrics_url, "GET", "", None);
    text.lines()
        .filter(|l| l.starts_with(name) && parts.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
