//! Node and account permissioning across real `consort` processes: a local allowlist file
//! (Besu's `permissions_config.toml`) changed over `perm_*`, and the allowlist contracts of
//! `genesis/permissioning` preloaded by `consort perm genesis` and changed by `consort perm`
//! transactions. The two tests run at once, each network on its own loopback addresses and
//! fixed ports below the ephemeral range (the allowlists name them before the nodes start).

mod support;

use alloy::consensus::TxEip1559;
use alloy::primitives::{Address, TxKind, U256};
use alloy::signers::local::PrivateKeySigner;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{block_number, metric_sum, poll, rpc, sign_eip1559, start_with, Node, DEV_KEYS};

const DEADLINE: Duration = Duration::from_secs(60);
/// How long a refused node is watched for a connection that must not happen.
const WATCH: Duration = Duration::from_secs(4);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A node key (from `seed`) written to `dir`, and its enode ID.
fn node_key(dir: &Path, name: &str, seed: u8) -> (PathBuf, String) {
    let secret = secp256k1::SecretKey::from_slice(&[seed; 32]).unwrap();
    let path = dir.join(format!("{name}.key"));
    std::fs::write(&path, alloy::hex::encode(secret.secret_bytes())).unwrap();
    (path, public_id(&secret))
}

fn public_id(secret: &secp256k1::SecretKey) -> String {
    let public = secp256k1::PublicKey::from_secret_key(secp256k1::SECP256K1, secret);
    alloy::hex::encode(&public.serialize_uncompressed()[1..])
}

fn key_file_id(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let bytes = alloy::hex::decode(text.trim().trim_start_matches("0x")).unwrap();
    public_id(&secp256k1::SecretKey::from_slice(&bytes).unwrap())
}

fn signer(i: usize) -> PrivateKeySigner {
    DEV_KEYS[i].parse().unwrap()
}

/// A transfer from dev key `from`, signed for `chain_id`.
fn transfer(chain_id: u64, from: usize, nonce: u64) -> String {
    let tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 10_000_000_000,
        max_priority_fee_per_gas: 0,
        to: TxKind::Call(Address::repeat_byte(0x42)),
        value: U256::from(1),
        access_list: Default::default(),
        input: Default::default(),
    };
    format!("{}", sign_eip1559(&signer(from), tx))
}

fn send(url: &str, raw: &str) -> Value {
    rpc(url, "eth_sendRawTransaction", json!([raw]))
}

fn mined(url: &str, hash: &str) -> bool {
    rpc(url, "eth_getTransactionReceipt", json!([hash]))["result"]["status"] == "0x1"
}

fn peer_ids(url: &str) -> Vec<String> {
    rpc(url, "admin_peers", json!([]))["result"]
        .as_array()
        .map(|peers| {
            peers
                .iter()
                .filter_map(|p| p["id"].as_str())
                .map(|id| id.trim_start_matches("0x").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn peer_count(url: &str) -> usize {
    peer_ids(url).len()
}

/// Waits until `url` has at least `n` peers.
fn wait_peers(url: &str, n: usize, what: &str) {
    poll(DEADLINE, || (peer_count(url) >= n).then_some(()))
        .unwrap_or_else(|| panic!("{what}: fewer than {n} peers"));
}

/// Waits until the chain at `url` passes block `n`.
fn wait_block(url: &str, n: u64, what: &str) -> u64 {
    poll(DEADLINE, || {
        let b = block_number(url);
        (b > n).then_some(b)
    })
    .unwrap_or_else(|| panic!("{what}: no block after {n}"))
}

fn wait_mined(url: &str, hash: &str, what: &str) {
    poll(DEADLINE, || mined(url, hash).then_some(()))
        .unwrap_or_else(|| panic!("{what}: {hash} not mined"));
}

/// Checks for a while that no node at `members` ever has the node `id` (at `url`) as a peer
/// and that it stays at block 0. (The refused node itself may see a connection for the moment
/// its dial takes to be refused, so its own peer count is not the test.)
fn stays_out(members: &[&str], url: &str, id: &str, what: &str) {
    let until = std::time::Instant::now() + WATCH;
    while std::time::Instant::now() < until {
        for m in members {
            assert!(
                !peer_ids(m).iter().any(|p| p == id),
                "{what} became a peer of {m}"
            );
        }
        assert_eq!(block_number(url), 0, "{what} synced a block");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `chainspecs/dev.json` with a block every 250 ms, empty or not.
fn dev_genesis(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("chainspecs/dev.json")).unwrap();
    let mut genesis: Value = serde_json::from_str(&text).unwrap();
    let qbft = &mut genesis["config"]["qbft"];
    qbft["emptyblockperiodseconds"] = json!(0);
    qbft["xblockperiodmilliseconds"] = json!(250);
    let path = dir.join("dev-genesis.json");
    std::fs::write(&path, genesis.to_string()).unwrap();
    path
}

fn node_args(genesis: &Path, key: &Path, ip: &str, port: u16) -> Vec<String> {
    vec![
        format!("--genesis-file={}", genesis.display()),
        format!("--node-private-key-file={}", key.display()),
        format!("--p2p-interface={ip}"),
        format!("--p2p-host={ip}"),
        format!("--p2p-port={port}"),
        "--rpc-http-api=PERM".to_string(),
    ]
}

/// Local allowlists on one validator V, a listed node N and an unlisted node U (loopback
/// aliases 127.0.0.41-43): U cannot peer with V either way nor sync; an unlisted account is
/// refused with -32007 naming it, is added over `perm_addAccountsToAllowlist` (written to the
/// file, which keeps its comment and other keys) and its next transaction is mined; removing
/// N over `perm_removeNodesFromAllowlist` disconnects it; a read-only allowlist file works.
#[test]
fn local_allowlists_guard_connections_and_senders() {
    let dir = tempfile::tempdir().unwrap();
    let genesis = dev_genesis(dir.path());
    let v_key = repo().join("chainspecs/dev-validator.key");
    let v_id = key_file_id(&v_key);
    let (n_key, n_id) = node_key(dir.path(), "n", 0x41);
    let (u_key, u_id) = node_key(dir.path(), "u", 0x42);
    let v_enode = format!("enode://{v_id}@127.0.0.41:24141");
    let n_enode = format!("enode://{n_id}@127.0.0.42:24142");
    let u_enode = format!("enode://{u_id}@127.0.0.43:24143");
    let dev0 = signer(0).address();
    let dev1 = signer(1).address();
    let file = dir.path().join("permissions_config.toml");
    std::fs::write(
        &file,
        format!(
            "# The consortium's members.\nnodes-allowlist=[\"{v_enode}\",\"{n_enode}\"]\n\
             accounts-allowlist=[\"{dev0:#x}\"]\nother-key=\"kept\"\n"
        ),
    )
    .unwrap();
    let permissioned = |args: &mut Vec<String>, file: &Path| {
        args.extend([
            "--permissions-nodes-config-file-enabled".to_string(),
            format!("--permissions-nodes-config-file={}", file.display()),
            "--permissions-accounts-config-file-enabled".to_string(),
            format!("--permissions-accounts-config-file={}", file.display()),
        ]);
    };
    let mut v_args = node_args(&genesis, &v_key, "127.0.0.41", 24141);
    permissioned(&mut v_args, &file);
    let v = start_with(&dir.path().join("v"), &v_args);

    // N's copy of the list is read-only, as a Kubernetes ConfigMap is: reading it is enough.
    let n_file = dir.path().join("n-permissions.toml");
    std::fs::copy(&file, &n_file).unwrap();
    let mut perms = std::fs::metadata(&n_file).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&n_file, perms).unwrap();
    let mut n_args = node_args(&genesis, &n_key, "127.0.0.42", 24142);
    permissioned(&mut n_args, &n_file);
    n_args.push(format!("--bootnodes={v_enode}"));
    let n = start_with(&dir.path().join("n"), &n_args);

    let mut u_args = node_args(&genesis, &u_key, "127.0.0.43", 24143);
    u_args.push(format!("--bootnodes={v_enode}"));
    let u = start_with(&dir.path().join("u"), &u_args);

    wait_peers(&n.http, 1, "the listed node");
    let head = wait_block(&v.http, 3, "the validator");
    wait_block(&n.http, head, "the listed node syncing");
    // U dials V and is refused; V asked to dial U refuses too.
    assert_eq!(
        rpc(&v.http, "admin_addPeer", json!([u_enode]))["result"],
        json!(true)
    );
    stays_out(&[&v.http, &n.http], &u.http, &u_id, "the unlisted node");

    // An unlisted sender is refused at the door, by name.
    let refused = send(&v.http, &transfer(1337, 1, 0));
    assert_eq!(refused["error"]["code"], json!(-32007), "{refused}");
    let message = refused["error"]["message"].as_str().unwrap().to_lowercase();
    assert!(message.contains(&format!("{dev1:#x}")), "{message}");
    // The admin adds it; the file keeps its comment and other key.
    let added = rpc(
        &v.http,
        "perm_addAccountsToAllowlist",
        json!([[format!("{dev1:#x}")]]),
    );
    assert_eq!(added["result"], json!("Success"), "{added}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("# The consortium's members."), "{text}");
    assert!(text.contains("other-key"), "{text}");
    assert!(text.contains(&format!("{dev1:#x}")), "{text}");
    let listed = rpc(&v.http, "perm_getAccountsAllowlist", json!([]));
    assert_eq!(
        listed["result"],
        json!([format!("{dev0:#x}"), format!("{dev1:#x}")])
    );
    let accepted = send(&v.http, &transfer(1337, 1, 0));
    let hash = accepted["result"]
        .as_str()
        .unwrap_or_else(|| panic!("{accepted}"));
    wait_mined(&v.http, hash, "the newly allowed sender");

    // Removing N from V's list drops it at once.
    let removed = rpc(&v.http, "perm_removeNodesFromAllowlist", json!([[n_enode]]));
    assert_eq!(removed["result"], json!("Success"), "{removed}");
    poll(DEADLINE, || (peer_count(&n.http) == 0).then_some(()))
        .expect("the removed node is still connected");
    assert!(!peer_ids(&v.http).contains(&n_id));
    let reloaded = rpc(&v.http, "perm_reloadPermissionsFromFile", json!([]));
    assert_eq!(reloaded["result"], json!("Success"), "{reloaded}");
    assert_eq!(
        rpc(&v.http, "perm_getNodesAllowlist", json!([]))["result"],
        json!([v_enode])
    );
    drop(u);
}

/// `genesis/qbft-4` with a 250 ms block period and the allowlist contracts preloaded by
/// `consort perm genesis`: dev key 0 the admin, `nodes` allowed to connect.
fn contract_genesis(dir: &Path, nodes: &[String]) -> PathBuf {
    let genesis = support::fast_qbft4_genesis();
    let base = dir.join("base-genesis.json");
    std::fs::write(&base, genesis.to_string()).unwrap();
    let out = dir.join("genesis.json");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_consort"));
    cmd.args(["perm", "genesis"])
        .arg(format!("--genesis-file={}", base.display()))
        .arg(format!("--output={}", out.display()))
        .arg(format!("--admin={:#x}", signer(0).address()));
    for n in nodes {
        cmd.arg(format!("--node={n}"));
    }
    let status = cmd.status().unwrap();
    assert!(status.success(), "consort perm genesis failed");
    out
}

/// Runs `consort perm <args>` against `url` as dev key 0 (the admin).
fn perm(url: &str, args: &[&str]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_consort"))
        .arg("perm")
        .args(args)
        .arg(format!("--rpc-url={url}"))
        .arg(format!("--private-key={}", DEV_KEYS[0]))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "consort perm {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const CONTRACT_FLAGS: [&str; 5] = [
    "--permissions-nodes-contract-enabled",
    "--permissions-nodes-contract-address=0x0000000000000000000000000000000000009999",
    "--permissions-nodes-contract-version=2",
    "--permissions-accounts-contract-enabled",
    "--permissions-accounts-contract-address=0x0000000000000000000000000000000000008888",
];

/// The key files of `genesis/qbft-4`'s four validators and their enodes, validator `i` (1-4)
/// at `enode_of(id, i)`.
fn qbft4_validators(enode_of: impl Fn(&str, u16) -> String) -> (Vec<PathBuf>, Vec<String>) {
    let keys: Vec<PathBuf> = (1..=4)
        .map(|i| repo().join(format!("genesis/qbft-4/validator{i}/key")))
        .collect();
    let enodes = keys
        .iter()
        .zip(1u16..)
        .map(|(k, i)| enode_of(&key_file_id(k), i))
        .collect();
    (keys, enodes)
}

/// The allowlist contracts on four validators (127.0.0.51-54), a listed node N (.55), a fresh
/// node F (.56) and an unlisted node U (.57). Validator 4 does not enforce account rules,
/// like a Byzantine proposer: the block it builds with a forbidden sender is rejected by the
/// others and the chain goes on without it. U cannot peer or sync; an account is refused with
/// -32007 until the admin adds it by transaction, and refused again once removed; F syncs from
/// genesis a chain whose early sender was removed later; removing N through the contract
/// disconnects it within a block.
#[test]
fn allowlist_contracts_govern_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let enode_of = |id: &str, i: u16| format!("enode://{id}@127.0.0.{}:{}", 50 + i, 24150 + i);
    let (validator_keys, mut enodes) = qbft4_validators(enode_of);
    let (n_key, n_id) = node_key(dir.path(), "n", 0x51);
    let (f_key, f_id) = node_key(dir.path(), "f", 0x52);
    let (u_key, u_id) = node_key(dir.path(), "u", 0x53);
    let n_enode = enode_of(&n_id, 5);
    let f_enode = enode_of(&f_id, 6);
    enodes.push(n_enode.clone());
    enodes.push(f_enode.clone());
    let genesis = contract_genesis(dir.path(), &enodes);
    // Everyone knows the validators as static nodes; the validators know N and F too.
    let static_file = |name: &str, list: &[String]| {
        let path = dir.path().join(format!("{name}-static.json"));
        std::fs::write(&path, serde_json::to_string(list).unwrap()).unwrap();
        path
    };
    let start = |i: u16, key: &Path, statics: &[String], extra: &[&str]| -> Node {
        let ip = format!("127.0.0.{}", 50 + i);
        let mut args = node_args(&genesis, key, &ip, 24150 + i);
        let file = static_file(&format!("node{i}"), statics);
        args.push(format!("--static-nodes-file={}", file.display()));
        args.extend(extra.iter().map(|s| s.to_string()));
        start_with(&dir.path().join(format!("node{i}")), &args)
    };
    let validators: Vec<Node> = (1..=4u16)
        .map(|i| {
            let others: Vec<String> = enodes
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != usize::from(i - 1))
                .map(|(_, e)| e.clone())
                .collect();
            // Validator 4 runs without the account rules (the last two flags).
            let flags: &[&str] = if i == 4 {
                &CONTRACT_FLAGS[..3]
            } else {
                &CONTRACT_FLAGS
            };
            start(i, &validator_keys[usize::from(i - 1)], &others, flags)
        })
        .collect();
    let v1 = &validators[0].http;
    let head = wait_block(v1, 3, "the validators");
    let validator_enodes = enodes[..4].to_vec();
    let n = start(5, &n_key, &validator_enodes, &CONTRACT_FLAGS);
    let u = start(7, &u_key, &validator_enodes, &CONTRACT_FLAGS);
    wait_block(&n.http, head, "the listed node syncing");
    assert_eq!(
        rpc(v1, "admin_addPeer", json!([enode_of(&u_id, 7)]))["result"],
        json!(true)
    );
    let members: Vec<&str> = validators
        .iter()
        .map(|v| v.http.as_str())
        .chain([n.http.as_str()])
        .collect();
    stays_out(&members, &u.http, &u_id, "the unlisted node");

    // dev key 1 may not transact until the admin (dev key 0) adds it by transaction.
    let refused = send(v1, &transfer(1338, 1, 0));
    assert_eq!(refused["error"]["code"], json!(-32007), "{refused}");
    let dev1 = format!("{:#x}", signer(1).address());
    perm(v1, &["add-account", &dev1]);
    let accepted = send(v1, &transfer(1338, 1, 0));
    let hash = accepted["result"]
        .as_str()
        .unwrap_or_else(|| panic!("{accepted}"));
    wait_mined(v1, hash, "the added account");
    perm(v1, &["remove-account", &dev1]);
    let refused = send(v1, &transfer(1338, 1, 1));
    assert_eq!(refused["error"]["code"], json!(-32007), "{refused}");

    // Validator 4 takes a forbidden sender's transaction and proposes it in its turn: the
    // others reject those blocks, rounds change, and the chain goes on without it.
    let forbidden = send(&validators[3].http, &transfer(1338, 2, 0));
    let forbidden = forbidden["result"]
        .as_str()
        .unwrap_or_else(|| panic!("{forbidden}"))
        .to_string();
    let metrics = validators[0].metrics.clone().unwrap();
    let unpermitted = |m: &str| {
        metric_sum(
            m,
            "besu_permissioning_transaction_smart_contract_check_count_unpermitted_total",
            &[],
        )
    };
    let before = unpermitted(&metrics);
    let from = block_number(v1);
    wait_block(v1, from + 12, "the chain with a Byzantine proposer");
    assert!(
        !mined(v1, &forbidden),
        "a forbidden sender's transaction was mined"
    );
    assert!(
        unpermitted(&metrics) > before,
        "validator 1 never refused the forbidden transaction"
    );

    // F syncs from genesis, through the block whose sender was removed later; its own local
    // account list (without that sender) is not applied to blocks it imports.
    let f_accounts = dir.path().join("f-permissions.toml");
    std::fs::write(
        &f_accounts,
        format!("accounts-allowlist=[\"{:#x}\"]\n", signer(0).address()),
    )
    .unwrap();
    let f_local = [
        "--permissions-accounts-config-file-enabled".to_string(),
        format!(
            "--permissions-accounts-config-file={}",
            f_accounts.display()
        ),
    ];
    let mut f_flags: Vec<&str> = CONTRACT_FLAGS.to_vec();
    f_flags.extend(f_local.iter().map(String::as_str));
    let f = start(6, &f_key, &validator_enodes, &f_flags);
    let head = block_number(v1);
    wait_block(&f.http, head, "the fresh node");
    assert!(mined(&f.http, hash));

    // Removing N through the contract disconnects it within a block.
    wait_peers(&n.http, 1, "the listed node");
    perm(v1, &["remove-node", &n_enode]);
    poll(Duration::from_secs(10), || {
        (peer_count(&n.http) == 0).then_some(())
    })
    .expect("the removed node is still connected");
    for v in &validators {
        assert!(!peer_ids(&v.http).contains(&n_id));
    }
    drop((u, f));
}

/// Besu #528: four validators whose only bootnode is a non-validator B, all listed in the node
/// contract, find each other through B and make blocks. Until each has caught up with B it may
/// reach only B; then the contract decides, and it lists the others. On one loopback address
/// (127.0.0.1, ports 24161-24165): a connection's source is then the peer's listening address.
#[test]
fn validators_behind_a_non_validator_bootnode_find_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let enode_of = |id: &str, i: u16| format!("enode://{id}@127.0.0.1:{}", 24160 + i);
    let (validator_keys, mut enodes) = qbft4_validators(enode_of);
    let (b_key, b_id) = node_key(dir.path(), "b", 0x61);
    let b_enode = enode_of(&b_id, 5);
    enodes.push(b_enode.clone());
    let genesis = contract_genesis(dir.path(), &enodes);
    let start = |i: u16, key: &Path, extra: &[String]| -> Node {
        let mut args = node_args(&genesis, key, "127.0.0.1", 24160 + i);
        args.extend(CONTRACT_FLAGS.iter().map(|s| s.to_string()));
        args.extend(extra.iter().cloned());
        start_with(&dir.path().join(format!("node{i}")), &args)
    };
    let _b = start(5, &b_key, &[]);
    let validators: Vec<Node> = (1..=4u16)
        .map(|i| {
            let bootnode = format!("--bootnodes={b_enode}");
            start(i, &validator_keys[usize::from(i - 1)], &[bootnode])
        })
        .collect();
    for v in &validators {
        wait_peers(&v.http, 3, "a validator behind the bootnode");
    }
    wait_block(
        &validators[0].http,
        3,
        "validators behind a non-validator bootnode",
    );
}
