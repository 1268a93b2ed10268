//! Node lifecycle and operations: restart from the stored head, `kill -9` at any moment, the
//! metrics endpoint, and option handling (flags, environment, config file, errors).

mod support;

use alloy::consensus::TxEip1559;
use alloy::primitives::{Address, Bytes, TxKind, U256};
use alloy::signers::local::PrivateKeySigner;
use serde_json::json;
use std::process::Command;
use std::time::Duration;
use support::{block_number, http_request, poll, rpc, start, DEV_KEYS};

fn send_transfer(url: &str, nonce: u64) -> String {
    let signer: PrivateKeySigner = DEV_KEYS[0].parse().unwrap();
    let tx = TxEip1559 {
        chain_id: 1337,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 10_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(Address::repeat_byte(0x77)),
        value: U256::from(1),
        access_list: Default::default(),
        input: Bytes::new(),
    };
    let raw = support::sign_eip1559(&signer, tx);
    let v = rpc(url, "eth_sendRawTransaction", json!([raw]));
    v["result"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_string()
}

fn mined(url: &str, hash: &str) -> bool {
    rpc(url, "eth_getTransactionReceipt", json!([hash]))["result"].is_object()
}

#[test]
fn restart_continues_from_the_stored_head_and_kill_9_loses_no_block() {
    let dir = tempfile::tempdir().unwrap();
    let mut hashes = Vec::new();
    let before;
    {
        let node = start(dir.path(), &[]);
        for nonce in 0..3 {
            hashes.push(send_transfer(&node.http, nonce));
        }
        for h in &hashes {
            assert!(poll(Duration::from_secs(30), || mined(&node.http, h)
                .then_some(()))
            .is_some());
        }
        before = block_number(&node.http);
        // Graceful stop.
        let pid = node.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let mut node = node;
        let status = node.child.wait().unwrap();
        assert!(status.success(), "SIGTERM exit: {status}");
    }
    let node = start(dir.path(), &[]);
    assert!(block_number(&node.http) >= before);
    for h in &hashes {
        assert!(mined(&node.http, h), "{h} lost across a restart");
    }
    // It keeps producing: a new transaction is mined on top.
    let next = send_transfer(&node.http, 3);
    assert!(poll(Duration::from_secs(30), || mined(&node.http, &next)
        .then_some(()))
    .is_some());

    // kill -9 while blocks are being produced, several times; nothing committed is lost.
    let mut node = node;
    for (round, nonce) in (0..3).zip(4..) {
        let h = send_transfer(&node.http, nonce);
        assert!(poll(Duration::from_secs(30), || mined(&node.http, &h)
            .then_some(()))
        .is_some());
        hashes.push(h);
        let seen = block_number(&node.http);
        std::thread::sleep(Duration::from_millis(150 * round));
        node.child.kill().unwrap();
        node.child.wait().unwrap();
        node = start(dir.path(), &[]);
        assert!(
            block_number(&node.http) >= seen,
            "round {round}: head went back"
        );
        for h in &hashes {
            assert!(
                mined(&node.http, h),
                "round {round}: {h} lost after kill -9"
            );
        }
    }
}

#[test]
fn metrics_are_served_under_besu_names_and_guarded_by_the_host_allowlist() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), &[]);
    let url = node.http.clone();
    let h = send_transfer(&url, 0);
    assert!(poll(Duration::from_secs(30), || mined(&url, &h).then_some(())).is_some());
    let _ = rpc(&url, "eth_sendRawTransaction", json!(["0x00"]));
    let metrics = node.metrics.clone().unwrap();
    let (status, text) = http_request(&metrics, "GET", "", None);
    assert_eq!(status, 200);
    for name in [
        "ethereum_blockchain_height",
        "ethereum_best_known_block_number",
        "besu_blockchain_chain_head_timestamp",
        "besu_blockchain_chain_head_transaction_count_counter_total",
        "besu_blockchain_chain_head_gas_used_counter_total",
        "besu_transaction_pool_transactions",
        "besu_transaction_pool_rejected_total",
        "besu_transaction_pool_transactions_added_total",
        "besu_rpc_request_time_count{methodName=\"eth_sendRawTransaction\"}",
        "besu_rpc_errors_count_total{errorType=\"INVALID_TRANSACTION_FORMAT\",rpcMethod=\"eth_sendRawTransaction\"}",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_release{version=\"consort/v",
        "ethereum_peer_count 0",
        "ethereum_peer_limit 25",
        "besu_peers_connected_total 0",
        "besu_synchronizer_in_sync 1",
        "consort_qbft_height ",
        "consort_qbft_current_round ",
        "consort_qbft_round_changes_total ",
        "consort_qbft_time_to_finality_seconds_count ",
        "consort_qbft_messages_total{outcome=\"sent\",type=\"commit\"}",
        "consort_sync_imported_blocks_total 0",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    let height = text
        .lines()
        .find(|l| l.starts_with("ethereum_blockchain_height "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap();
    assert!(height >= 1.0);
    // Idle memory stays far below Besu's gigabytes.
    let rss = text
        .lines()
        .find(|l| l.starts_with("process_resident_memory_bytes "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap();
    assert!(rss < 100.0 * 1024.0 * 1024.0, "resident memory {rss} bytes");
    let (status, _) = http_request(&metrics, "GET", "", Some("evil.example"));
    assert_eq!(status, 403);
    // JSON-RPC applies the same allowlist.
    let (status, _) = http_request(&url, "POST", "{}", Some("evil.example"));
    assert_eq!(status, 403);
}

fn consort(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_consort"))
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn bad_options_fail_with_a_message_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("--data-path={}", dir.path().display());
    let bad_toml = dir.path().join("bad.toml");
    std::fs::write(&bad_toml, "rpc-http-port = 8545\nno-such-option = true\n").unwrap();
    let config = format!("--config-file={}", bad_toml.display());
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["--no-such-flag"], vec![], "--no-such-flag"),
        (vec!["--rpc-http-port=notaport"], vec![], "--rpc-http-port"),
        (vec!["--rpc-http-api=ETH,BOGUS"], vec![], "BOGUS"),
        (
            vec!["--network=mainnet", &data],
            vec![],
            "unknown --network 'mainnet'",
        ),
        (vec![&data], vec![], "--genesis-file"),
        (
            vec!["--network=dev", "--genesis-file=x.json"],
            vec![],
            "mutually exclusive",
        ),
        (
            vec!["--genesis-file=/no/such/file.json", &data],
            vec![],
            "/no/such/file.json",
        ),
        (vec![&config], vec![], "no-such-option"),
        (
            vec![],
            vec![("CONSORT_RPC_WS_PORT", "seventy")],
            "--rpc-ws-port",
        ),
        (
            vec!["--network=dev", "--tx-pool-limit-by-account-percentage=1.5"],
            vec![],
            "--tx-pool-limit-by-account-percentage",
        ),
    ];
    for (args, envs, needle) in cases {
        let out = consort(&args, &envs);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr.contains(needle),
            "{args:?}: '{needle}' not in: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    }
    let help = consort(&["--help"], &[]);
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--genesis-file",
        "--network",
        "--rpc-http-enabled",
        "--rpc-ws-api",
        "--metrics-port",
        "--config-file",
        "--min-gas-price",
        "--host-allowlist",
    ] {
        assert!(text.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn flags_beat_environment_which_beats_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("config.toml");
    std::fs::write(
        &toml,
        format!(
            "network = \"dev\"\ndata-path = \"{}\"\nrpc-http-enabled = true\nrpc-http-port = 0\nrpc-http-api = [\"ETH\", \"WEB3\"]\nmin-gas-price = 5\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    // The file enables HTTP; the environment overrides the min gas price; a flag overrides the
    // environment's API list.
    let mut child = Command::new(env!("CARGO_BIN_EXE_consort"))
        .arg(format!("--config-file={}", toml.display()))
        .arg("--rpc-http-api=ETH,NET")
        .arg("--p2p-port=0")
        .env("CONSORT_MIN_GAS_PRICE", "7")
        .env("CONSORT_RPC_HTTP_API", "ETH")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let url = {
        use std::io::{BufRead, BufReader};
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.split("JSON-RPC HTTP on ").nth(1).map(str::to_string))
            .unwrap()
    };
    let net = rpc(&url, "net_version", json!([]));
    assert_eq!(net["result"], "1337", "the flag's NET group is served");
    let web3 = rpc(&url, "web3_clientVersion", json!([]));
    assert_eq!(
        web3["error"]["code"], -32601,
        "WEB3 from the file was overridden"
    );
    let tip = rpc(&url, "eth_maxPriorityFeePerGas", json!([]));
    assert_eq!(tip["result"], "0x7", "the environment's min gas price");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Runs `consort` with `args`, which must make it exit with an error within 20 s (a node that
/// starts instead is killed and the test fails). Returns its stderr.
fn refused(args: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_consort"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = poll(Duration::from_secs(20), || child.try_wait().unwrap());
    if status.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        status.is_some_and(|s| !s.success()),
        "{args:?} started: {stderr}"
    );
    stderr
}

/// A genesis whose validators consort cannot know, or a validator whose consensus memory is
/// unreadable, never starts: an unsealed chain or a validator that may vote twice is worse
/// than a node that refuses with the field to fix.
#[test]
fn chains_without_validators_and_lost_consensus_memory_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let base: serde_json::Value = serde_json::from_str(consort_node::DEV_GENESIS).unwrap();
    let write = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut g = base.clone();
        edit(&mut g);
        let path = dir.path().join(name);
        std::fs::write(&path, g.to_string()).unwrap();
        format!("--genesis-file={}", path.display())
    };
    // RLP [zero32, [], [], 0x80, []]: no validators.
    let empty = write("empty.json", &|g| {
        g["extraData"] =
            "0xe5a00000000000000000000000000000000000000000000000000000000000000000c0c080c0".into()
    });
    let contract = write("contract.json", &|g| {
        g["config"]["qbft"]["validatorcontractaddress"] =
            "0x0000000000000000000000000000000000008888".into()
    });
    for (genesis, needle) in [
        (&empty, "genesis field extraData lists no validators"),
        // Contract mode with no contract at the address: nothing answers getValidators().
        (
            &contract,
            "validator contract 0x0000000000000000000000000000000000008888 after block 0",
        ),
    ] {
        let data = tempfile::tempdir().unwrap();
        let stderr = refused(&[
            genesis,
            &format!("--data-path={}", data.path().display()),
            "--p2p-enabled=false",
        ]);
        assert!(stderr.contains(needle), "'{needle}' not in: {stderr}");
    }

    // A dev node that has voted, then finds its consensus state corrupted.
    let data = tempfile::tempdir().unwrap();
    let node = support::start(data.path(), &["--p2p-enabled=false"]);
    let url = node.http.clone();
    let hash = send_transfer(&url, 0);
    assert!(
        poll(Duration::from_secs(30), || mined(&url, &hash).then_some(())).is_some(),
        "no block"
    );
    drop(node);
    {
        let store = consort_storage::Store::open(
            &data.path().join("database"),
            consort_storage::StoreOptions::default(),
        )
        .unwrap();
        store.put_consensus_state(&[0xde, 0xad]).unwrap();
    }
    let stderr = refused(&[
        "--network=dev",
        &format!("--data-path={}", data.path().display()),
        "--p2p-enabled=false",
    ]);
    assert!(
        stderr.contains("persisted consensus state") && stderr.contains("database"),
        "{stderr}"
    );
}
