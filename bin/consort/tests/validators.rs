//! Changing the validator set on a live network of `consort` processes: a fifth validator voted
//! in over `qbft_proposeValidatorVote` (it then proposes and seals) and one voted out (the chain
//! goes on without it), votes that outlive a restart, and the same through the validator
//! contract with a transaction. Uses `genesis/qbft-4` with a 250 ms block period.

mod support;

use alloy::consensus::TxEip1559;
use alloy::primitives::{Address, TxKind, U256};
use alloy::signers::local::PrivateKeySigner;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{block_number, poll, rpc, sign_eip1559, start_in, Node, DEV_KEYS};

/// The fifth node's key (development only).
const FIFTH_KEY: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";
const CONTRACT: &str = "0x0000000000000000000000000000000000007777";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn address_of(key: &str) -> Address {
    key.trim_start_matches("0x")
        .parse::<PrivateKeySigner>()
        .unwrap()
        .address()
}

fn key_address(path: &Path) -> Address {
    address_of(std::fs::read_to_string(path).unwrap().trim())
}

/// Starts a node of the test network on `ip` with `key`, `bootnodes` its way in.
fn start(dir: &Path, name: &str, genesis: &Path, key: &Path, ip: &str, boot: &[String]) -> Node {
    let mut args = vec![
        format!("--genesis-file={}", genesis.display()),
        format!("--node-private-key-file={}", key.display()),
        format!("--p2p-interface={ip}"),
        format!("--p2p-host={ip}"),
        "--qbft-round-timeout-max-seconds=4".to_string(),
    ];
    if !boot.is_empty() {
        args.push(format!("--bootnodes={}", boot.join(",")));
    }
    start_in(None, &dir.join(name), &args)
}

/// Four validators of `genesis/qbft-4` and a fifth node, all running, on `base`.1-5.
fn network(dir: &Path, genesis: &Path, base: &str) -> (Vec<Node>, PathBuf) {
    let fifth_key = dir.join("fifth.key");
    std::fs::write(&fifth_key, FIFTH_KEY).unwrap();
    let keys: Vec<PathBuf> = (1..=4)
        .map(|i| repo().join(format!("genesis/qbft-4/validator{i}/key")))
        .chain([fifth_key])
        .collect();
    let first = start(dir, "n1", genesis, &keys[0], &format!("{base}1"), &[]);
    let boot = vec![first.enode.clone().unwrap()];
    let mut nodes = vec![first];
    for (i, key) in keys.iter().enumerate().skip(1) {
        let ip = format!("{base}{}", i + 1);
        nodes.push(start(dir, &format!("n{}", i + 1), genesis, key, &ip, &boot));
    }
    for n in &nodes {
        let ok = poll(Duration::from_secs(60), || {
            (block_number(&n.http) >= 3).then_some(())
        });
        assert!(
            ok.is_some(),
            "{} made no blocks: head {}",
            n.http,
            block_number(&n.http)
        );
    }
    (nodes, keys.into_iter().nth(4).unwrap())
}

fn validators(url: &str, tag: &str) -> Vec<Address> {
    let r = rpc(url, "qbft_getValidatorsByBlockNumber", json!([tag]));
    serde_json::from_value(r["result"].clone()).unwrap_or_else(|_| panic!("{r}"))
}

/// Blocks proposed by `who` among the last 100.
fn proposed_by(url: &str, who: Address) -> u64 {
    let r = rpc(url, "qbft_getSignerMetrics", json!([]));
    r["result"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .filter(|m| {
            m["address"]
                .as_str()
                .and_then(|a| a.parse::<Address>().ok())
                == Some(who)
        })
        .map(|m| {
            u64::from_str_radix(
                m["proposedBlockCount"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("0x"),
                16,
            )
            .unwrap()
        })
        .sum()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    assert!(poll(timeout, || f().then_some(())).is_some(), "{what}");
}

fn vote(url: &str, subject: Address, add: bool) {
    let r = rpc(url, "qbft_proposeValidatorVote", json!([subject, add]));
    assert_eq!(r["result"], json!(true), "{r}");
}

#[test]
fn validators_are_voted_in_and_out_over_json_rpc() {
    let dir = tempfile::tempdir().unwrap();
    let genesis = dir.path().join("genesis.json");
    std::fs::write(&genesis, support::fast_qbft4_genesis().to_string()).unwrap();
    let (mut nodes, fifth_key) = network(dir.path(), &genesis, "127.0.0.6");
    let fifth = key_address(&fifth_key);
    let url = |nodes: &[Node], i: usize| nodes[i].http.clone();
    assert_eq!(validators(&url(&nodes, 0), "latest").len(), 4);

    // Bad parameters get Besu's errors.
    let r = rpc(
        &url(&nodes, 0),
        "qbft_proposeValidatorVote",
        json!(["0x12", true]),
    );
    assert_eq!(r["error"]["code"], json!(-32602), "{r}");
    assert_eq!(
        r["error"]["message"],
        json!("Invalid address params"),
        "{r}"
    );
    let r = rpc(
        &url(&nodes, 0),
        "qbft_proposeValidatorVote",
        json!([fifth, "yes"]),
    );
    assert_eq!(
        r["error"]["message"],
        json!("Invalid vote type params"),
        "{r}"
    );

    // A vote asked of validator1 survives its restart.
    vote(&url(&nodes, 0), fifth, true);
    let key1 = repo().join("genesis/qbft-4/validator1/key");
    let boot = vec![nodes[1].enode.clone().unwrap()];
    drop(nodes.remove(0));
    nodes.insert(
        0,
        start(dir.path(), "n1", &genesis, &key1, "127.0.0.61", &boot),
    );
    let pending = rpc(&url(&nodes, 0), "qbft_getPendingVotes", json!([]));
    assert_eq!(
        pending["result"],
        json!({ format!("{fifth:#x}"): true }),
        "{pending}"
    );

    // Three of four vote the fifth in: it becomes a validator and proposes in its turn.
    for i in 1..3 {
        vote(&url(&nodes, i), fifth, true);
    }
    wait_for(
        "the fifth validator was not voted in",
        Duration::from_secs(60),
        || validators(&url(&nodes, 4), "latest").contains(&fifth),
    );
    assert_eq!(validators(&url(&nodes, 4), "pending").len(), 5);
    wait_for(
        "the fifth validator never proposed",
        Duration::from_secs(60),
        || proposed_by(&url(&nodes, 0), fifth) > 0,
    );

    // Three of five vote validator4 out; then it stops and the chain goes on without it.
    let fourth = key_address(&repo().join("genesis/qbft-4/validator4/key"));
    for i in [0, 1, 4] {
        vote(&url(&nodes, i), fourth, false);
    }
    wait_for(
        "validator4 was not voted out",
        Duration::from_secs(60),
        || !validators(&url(&nodes, 0), "latest").contains(&fourth),
    );
    let r = rpc(
        &url(&nodes, 0),
        "qbft_discardValidatorVote",
        json!([fourth]),
    );
    assert_eq!(r["result"], json!(true), "{r}");
    drop(nodes.remove(3));
    let from = block_number(&url(&nodes, 0));
    wait_for(
        "the chain stopped without validator4",
        Duration::from_secs(60),
        || nodes.iter().all(|n| block_number(&n.http) >= from + 8),
    );
}

#[test]
fn the_validator_contract_decides_who_seals() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        std::fs::read_to_string(repo().join("genesis/qbft-4/validator-contract-genesis.json"))
            .unwrap();
    let mut json: Value = serde_json::from_str(&text).unwrap();
    let fast = support::fast_qbft4_genesis();
    for key in [
        "blockperiodseconds",
        "xblockperiodmilliseconds",
        "emptyblockperiodseconds",
        "requesttimeoutseconds",
    ] {
        json["config"]["qbft"][key] = fast["config"]["qbft"][key].clone();
    }
    let genesis = dir.path().join("genesis.json");
    std::fs::write(&genesis, json.to_string()).unwrap();
    let (nodes, fifth_key) = network(dir.path(), &genesis, "127.0.0.7");
    let fifth = key_address(&fifth_key);
    let url = nodes[0].http.clone();
    assert_eq!(validators(&url, "latest").len(), 4);
    // No header votes in contract mode (Besu's -32604).
    let r = rpc(&url, "qbft_proposeValidatorVote", json!([fifth, true]));
    assert_eq!(r["error"]["code"], json!(-32604), "{r}");

    // The admin adds the fifth validator with a transaction.
    let admin: PrivateKeySigner = DEV_KEYS[0].parse().unwrap();
    let mut input = vec![0x4d, 0x23, 0x8c, 0x8e]; // addValidator(address)
    input.extend([0u8; 12]);
    input.extend(fifth.as_slice());
    let tx = TxEip1559 {
        chain_id: 1338,
        nonce: 0,
        gas_limit: 200_000,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(CONTRACT.parse().unwrap()),
        value: U256::ZERO,
        input: input.into(),
        ..Default::default()
    };
    let r = rpc(
        &url,
        "eth_sendRawTransaction",
        json!([sign_eip1559(&admin, tx)]),
    );
    assert!(r["result"].is_string(), "{r}");
    wait_for(
        "the contract's new validator was not seen",
        Duration::from_secs(60),
        || validators(&url, "latest").contains(&fifth),
    );
    wait_for(
        "the contract's new validator never proposed",
        Duration::from_secs(60),
        || proposed_by(&url, fifth) > 0,
    );
}
