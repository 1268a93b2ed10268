//! The JSON-RPC bounds against a dev node, each at its flag: HTTP and WebSocket connection
//! limits apart, the response size, the wall-clock limit of `eth_call`, filters per
//! connection, request and message sizes, and subscriptions per connection.

mod support;

use alloy::providers::{Provider, ProviderBuilder, WsConnect};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{http_request, poll, post, rpc, start};

fn authority(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_string()
}

/// The status code of the response head that `stream` receives.
fn status_of(stream: &mut TcpStream) -> u16 {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Opens a WebSocket (the upgrade handshake by hand) and returns the socket if the server
/// switched protocols, or the status it answered with.
fn open_ws(url: &str) -> Result<TcpStream, u16> {
    let authority = authority(url);
    let mut stream = TcpStream::connect(&authority).unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    match status_of(&mut stream) {
        101 => Ok(stream),
        status => Err(status),
    }
}

/// Starts an HTTP request whose body never arrives, so the server is busy with it until the
/// socket closes.
fn stall_http(url: &str) -> TcpStream {
    let authority = authority(url);
    let mut stream = TcpStream::connect(&authority).unwrap();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n{{\"jsonrpc\":"
    )
    .unwrap();
    stream
}

/// Whether the server has answered on (or closed) `stream`.
fn answered(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let seen = stream.peek(&mut [0u8; 1]).is_ok();
    stream.set_nonblocking(false).unwrap();
    seen
}

fn chain_id_status(url: &str) -> u16 {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []});
    http_request(url, "POST", &body.to_string(), None).0
}

#[test]
fn http_and_websocket_connection_limits_apply_each_to_its_own_transport() {
    // (HTTP limit, WebSocket limit): each lower than the other once, so a shared limit (the
    // larger of the two) would let one transport past its own.
    for (http_limit, ws_limit) in [(2usize, 4usize), (4, 2)] {
        let dir = tempfile::tempdir().unwrap();
        let flags = [
            format!("--rpc-http-max-active-connections={http_limit}"),
            format!("--rpc-ws-max-active-connections={ws_limit}"),
        ];
        let node = start(dir.path(), &[&flags[0], &flags[1]]);
        let case = format!("http {http_limit}, ws {ws_limit}");

        // WebSocket: exactly `ws_limit` connections, whatever the HTTP limit.
        let sockets: Vec<TcpStream> = (0..ws_limit)
            .map(|i| open_ws(&node.ws).unwrap_or_else(|s| panic!("{case}: ws {i} refused: {s}")))
            .collect();
        assert_eq!(
            open_ws(&node.ws).err(),
            Some(429),
            "{case}: one WebSocket past the limit"
        );

        // HTTP: with `http_limit` requests in progress the next one is refused, while the
        // WebSockets stay open; the WebSocket limit does not apply.
        let mut stalled: Vec<TcpStream> = (0..http_limit).map(|_| stall_http(&node.http)).collect();
        let refused = poll(Duration::from_secs(10), || {
            // A stalled request that lost the race for a slot to a probe was answered (429):
            // start it again.
            for stream in stalled.iter_mut() {
                if answered(stream) {
                    *stream = stall_http(&node.http);
                }
            }
            (chain_id_status(&node.http) == 429).then_some(())
        });
        assert!(
            refused.is_some(),
            "{case}: HTTP served a request past {http_limit} in progress"
        );
        drop(stalled);
        let served = poll(Duration::from_secs(10), || {
            (chain_id_status(&node.http) == 200).then_some(())
        });
        assert!(served.is_some(), "{case}: HTTP did not recover");
        drop(sockets);
        assert!(
            poll(Duration::from_secs(10), || open_ws(&node.ws).ok()).is_some(),
            "{case}: WebSocket did not recover"
        );
    }
}

/// Runtime code that returns `len` zero bytes.
fn returns_bytes(len: u16) -> String {
    format!("0x61{len:04x}6000f3")
}

fn call_returning(len: u16, id: u64) -> Value {
    let to = "0x00000000000000000000000000000000000000c0";
    json!({
        "jsonrpc": "2.0", "id": id, "method": "eth_call",
        "params": [{"to": to}, "latest", {to: {"code": returns_bytes(len)}}]
    })
}

#[test]
fn a_response_over_the_size_limit_is_an_error_instead() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &["--Xrpc-max-response-size=1000"]);
    // 400 bytes are 800 hex digits: within the limit with the envelope.
    let ok = post(&node.http, &call_returning(400, 1).to_string());
    assert_eq!(ok["result"].as_str().map(str::len), Some(2 + 800), "{ok}");
    // 600 bytes are not.
    let big = post(&node.http, &call_returning(600, 2).to_string());
    assert_eq!(big["error"]["code"], -32008, "{big}");
    assert_eq!(big["error"]["message"], "Response is too big", "{big}");
    assert!(big.get("result").is_none());
    // A batch counts its responses together.
    let batch = post(
        &node.http,
        &json!([call_returning(400, 3), call_returning(400, 4)]).to_string(),
    );
    assert_eq!(batch["error"]["code"], -32011, "{batch}");
}

#[test]
fn an_endless_eth_call_under_a_huge_gas_cap_stops_at_the_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(
        dir.path(),
        &["--rpc-gas-cap=1000000000000", "--Xrpc-call-timeout-ms=300"],
    );
    let to = "0x00000000000000000000000000000000000000c1";
    let start = Instant::now();
    // JUMPDEST PUSH1 0 JUMP: loops until the gas (here: ~10^11 iterations' worth) runs out.
    let v = rpc(
        &node.http,
        "eth_call",
        json!([{"to": to, "gas": "0xe8d4a51000"}, "latest", {to: {"code": "0x5b600056"}}]),
    );
    let elapsed = start.elapsed();
    assert_eq!(v["error"]["code"], -32000, "{v}");
    assert_eq!(
        v["error"]["message"], "execution aborted (timeout = 300ms)",
        "{v}"
    );
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(10),
        "answered after {elapsed:?}"
    );
    // The node still answers calls that end in time.
    let v = rpc(
        &node.http,
        "eth_call",
        json!([{"to": to, "gas": "0x100000"}, "latest", {to: {"code": "0x00"}}]),
    );
    assert_eq!(v["result"], "0x", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_cannot_install_more_than_its_share_of_filters() {
    const PER_CONNECTION: usize = 256;
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &[]);
    let greedy = ProviderBuilder::new()
        .connect_ws(WsConnect::new(node.ws.clone()))
        .await
        .unwrap();
    let other = ProviderBuilder::new()
        .connect_ws(WsConnect::new(node.ws.clone()))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..PER_CONNECTION {
        let id: String = greedy
            .raw_request("eth_newBlockFilter".into(), ())
            .await
            .unwrap();
        ids.push(id);
    }
    for method in [
        "eth_newBlockFilter",
        "eth_newPendingTransactionFilter",
        "eth_newFilter",
    ] {
        let err = if method == "eth_newFilter" {
            greedy
                .raw_request::<_, String>(method.into(), [json!({})])
                .await
        } else {
            greedy.raw_request::<_, String>(method.into(), ()).await
        }
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("-32005") && text.contains("by this connection (limit 256)"),
            "{method}: {text}"
        );
    }
    // Another connection, WebSocket or HTTP, still has its share.
    let id: String = other
        .raw_request("eth_newBlockFilter".into(), ())
        .await
        .unwrap();
    assert!(id.starts_with("0x"));
    let v = rpc(&node.http, "eth_newBlockFilter", json!([]));
    assert!(v["result"].is_string(), "{v}");
    // Uninstalling one gives the greedy connection room for one more.
    let removed: bool = greedy
        .raw_request("eth_uninstallFilter".into(), [ids.pop().unwrap()])
        .await
        .unwrap();
    assert!(removed);
    let _: String = greedy
        .raw_request("eth_newBlockFilter".into(), ())
        .await
        .unwrap();
}

/// A `web3_sha3` request whose body is about `len` bytes.
fn sha3_request(len: usize) -> String {
    let data = "ab".repeat(len / 2);
    json!({"jsonrpc": "2.0", "id": 1, "method": "web3_sha3", "params": [format!("0x{data}")]})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_sizes_and_subscriptions_are_bounded_at_their_flags() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(
        dir.path(),
        &[
            "--rpc-http-max-request-content-length=4000",
            "--rpc-ws-max-frame-size=6000",
            "--rpc-ws-max-subscriptions-per-connection=2",
        ],
    );
    // HTTP: under the limit answered, over it 413 and nothing run.
    let (status, body) = http_request(&node.http, "POST", &sha3_request(3_000), None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"result\""), "{body}");
    let (status, body) = http_request(&node.http, "POST", &sha3_request(5_000), None);
    assert_eq!(status, 413, "{body}");

    // WebSocket: its own limit (a 5,000-byte message passes there), a larger message ends
    // the connection, and a new one is served.
    let ws = ProviderBuilder::new()
        .connect_ws(WsConnect::new(node.ws.clone()))
        .await
        .unwrap();
    let hash = |len: usize| format!("0x{}", "ab".repeat(len / 2));
    let ok: String = ws
        .raw_request("web3_sha3".into(), [hash(5_000)])
        .await
        .unwrap();
    assert!(ok.starts_with("0x"));
    let big = tokio::time::timeout(
        Duration::from_secs(20),
        ws.raw_request::<_, String>("web3_sha3".into(), [hash(7_000)]),
    )
    .await;
    assert!(
        !matches!(big, Ok(Ok(_))),
        "a message over --rpc-ws-max-frame-size was answered"
    );

    // Subscriptions: two per connection, the third refused; another connection has its own.
    let subscriber = ProviderBuilder::new()
        .connect_ws(WsConnect::new(node.ws.clone()))
        .await
        .unwrap();
    let _a = subscriber.subscribe_blocks().await.unwrap();
    let _b = subscriber.subscribe_blocks().await.unwrap();
    let third = subscriber.subscribe_blocks().await;
    assert!(third.is_err(), "a third subscription was accepted");
    let other = ProviderBuilder::new()
        .connect_ws(WsConnect::new(node.ws.clone()))
        .await
        .unwrap();
    let _c = other.subscribe_blocks().await.unwrap();
}

/// A queued (nonce-gapped, so never mined) transfer from `key` with `data_len` bytes of data.
fn queued_transfer(key: &str, nonce: u64, data_len: usize) -> String {
    let signer: alloy::signers::local::PrivateKeySigner = key.parse().unwrap();
    let tx = alloy::consensus::TxEip1559 {
        chain_id: 1337,
        nonce: 1_000 + nonce,
        gas_limit: 100_000,
        max_fee_per_gas: 10_000_000_000,
        max_priority_fee_per_gas: 1,
        to: alloy::primitives::TxKind::Call(alloy::primitives::Address::repeat_byte(0x42)),
        value: alloy::primitives::U256::from(1),
        access_list: Default::default(),
        input: vec![0u8; data_len].into(),
    };
    support::sign_eip1559(&signer, tx).to_string()
}

#[test]
fn one_sender_holds_at_most_its_share_of_the_pool_in_transactions_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // 0.2% of 1,000 transactions is 2; of 500,000 bytes, 1,000.
    let node = start(
        dir.path(),
        &[
            "--tx-pool-max-size=1000",
            "--tx-pool-layer-max-capacity=500000",
            "--tx-pool-limit-by-account-percentage=0.002",
            "--tx-pool-max-future-by-sender=100000",
        ],
    );
    let send = |raw: String| rpc(&node.http, "eth_sendRawTransaction", json!([raw]));
    let [a, b, _] = support::DEV_KEYS;
    for nonce in 0..2 {
        let answer = send(queued_transfer(a, nonce, 0));
        assert!(answer["result"].is_string(), "{answer}");
    }
    let third = send(queued_transfer(a, 2, 0));
    let message = third["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("too many transactions"), "{third}");

    // Another sender's one transaction of 1,200 bytes is over its 1,000-byte share.
    let big = send(queued_transfer(b, 0, 1_100));
    let message = big["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("exceed 1000 bytes"), "{big}");
    let small = send(queued_transfer(b, 0, 700));
    assert!(small["result"].is_string(), "{small}");
    let status = rpc(&node.http, "txpool_status", json!([]));
    assert_eq!(status["result"]["queued"], "0x3", "{status}");
}
