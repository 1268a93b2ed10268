//! Changing the validator set on a live network of `consort` processes: a fifth validator voted
//! in over `qbft_proposeValidatorVote` (it then proposes and seals) and one voted out (the chain
//! goes on without it), votes that outlive a restart, and the same through the validator
//! contract with a transaction; and a chain through mode, reward and period transitions.
//! Uses `genesis/qbft-4` with a 250 ms block period.

mod support;

use alloy::consensus::TxEip1559;
use alloy::primitives::{Address, TxKind, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy_rlp::Decodable;
use consort_primitives::{
    bft_onchain_hash, commit_seal_digest, keccak256, recover_commit_seal_signer,
};
use consort_primitives::{Header, QbftExtraData};
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

/// The node keys of `genesis/qbft-4`'s four validators.
fn validator_keys() -> Vec<PathBuf> {
    (1..=4)
        .map(|i| repo().join(format!("genesis/qbft-4/validator{i}/key")))
        .collect()
}

/// Four validators of `genesis/qbft-4` and a fifth node, all running, on `base`.1-5.
fn network(dir: &Path, genesis: &Path, base: &str) -> (Vec<Node>, PathBuf) {
    let fifth_key = dir.join("fifth.key");
    std::fs::write(&fifth_key, FIFTH_KEY).unwrap();
    let keys: Vec<PathBuf> = validator_keys().into_iter().chain([fifth_key]).collect();
    (start_all(dir, genesis, base, &keys), keys[4].clone())
}

/// A node for each of `keys` on `base`.1, `base`.2, …, the first the others' bootnode,
/// once each has made a few blocks.
fn start_all(dir: &Path, genesis: &Path, base: &str, keys: &[PathBuf]) -> Vec<Node> {
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
    nodes
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

/// Like [`wait_for`], but a failure reports each node's head, peers, pending votes and
/// validators, so a failure under load says which node fell behind.
fn wait_on(nodes: &[Node], what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    if poll(timeout, || f().then_some(())).is_some() {
        return;
    }
    let state: Vec<String> = nodes
        .iter()
        .map(|n| {
            format!(
                "{}: head {} peers {} pending {} validators {}",
                n.http,
                block_number(&n.http),
                rpc(&n.http, "net_peerCount", json!([]))["result"],
                rpc(&n.http, "qbft_getPendingVotes", json!([]))["result"],
                rpc(
                    &n.http,
                    "qbft_getValidatorsByBlockNumber",
                    json!(["latest"])
                )["result"],
            )
        })
        .collect();
    panic!("{what}\n{}", state.join("\n"));
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
    // It catches up with the others before they vote, so that its vote is cast.
    let head = block_number(&url(&nodes, 1));
    wait_on(
        &nodes,
        "the restarted validator1 did not catch up",
        Duration::from_secs(60),
        || block_number(&url(&nodes, 0)) >= head,
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
    wait_on(
        &nodes,
        "the fifth validator was not voted in",
        Duration::from_secs(60),
        || validators(&url(&nodes, 4), "latest").contains(&fifth),
    );
    assert_eq!(validators(&url(&nodes, 4), "pending").len(), 5);
    wait_on(
        &nodes,
        "the fifth validator never proposed",
        Duration::from_secs(60),
        || proposed_by(&url(&nodes, 0), fifth) > 0,
    );

    // Three of five vote validator4 out; then it stops and the chain goes on without it.
    let fourth = key_address(&repo().join("genesis/qbft-4/validator4/key"));
    for i in [0, 1, 4] {
        vote(&url(&nodes, i), fourth, false);
    }
    wait_on(
        &nodes,
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
    wait_on(
        &nodes,
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

/// The header of block `n` as `url` stores it (with the commit seals that node gathered).
fn raw_header(url: &str, n: u64) -> Header {
    let r = rpc(url, "debug_getRawHeader", json!([format!("{n:#x}")]));
    let hex = r["result"].as_str().unwrap_or_else(|| panic!("{r}"));
    let bytes = alloy::primitives::hex::decode(hex).unwrap();
    Header::decode(&mut bytes.as_slice()).unwrap()
}

/// The distinct signers of `header`'s commit seals, recovered from the seals themselves.
fn seal_signers(header: &Header) -> Vec<Address> {
    let extra = QbftExtraData::decode(&header.extra_data).unwrap();
    let digest = commit_seal_digest(header).unwrap();
    let mut signers: Vec<Address> = extra
        .seals
        .iter()
        .map(|s| recover_commit_seal_signer(digest, s).expect("a recoverable seal"))
        .collect();
    let n = signers.len();
    signers.sort();
    signers.dedup();
    assert_eq!(signers.len(), n, "block {}: a seal twice", header.number);
    signers
}

fn balance_at(url: &str, who: Address, n: u64) -> U256 {
    let r = rpc(url, "eth_getBalance", json!([who, format!("{n:#x}")]));
    serde_json::from_value(r["result"].clone()).unwrap_or_else(|_| panic!("{r}"))
}

/// One chain through every kind of transition, on four validators: block-header validators
/// until block 8, then Besu's example validator contract (MinimalValidatorSet, preloaded
/// with three of the four) until block 16, then block-header mode again from a `validators`
/// list; a block reward to a fixed beneficiary from block 20; and from block 24 a 2 s block
/// period (from 250 ms) with a 3 s round timeout. Every block's seals are checked against
/// the set the rules give it, on every node.
#[test]
fn transitions_change_the_validator_mode_the_reward_and_the_period_at_their_blocks() {
    const TO_CONTRACT: u64 = 8;
    const TO_HEADER: u64 = 16;
    const REWARD_FROM: u64 = 20;
    const SLOWER_FROM: u64 = 24;
    const LAST: u64 = 27;
    let dir = tempfile::tempdir().unwrap();
    let mut genesis = support::fast_qbft4_genesis();
    let besu_style: Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo().join("genesis/qbft-4/besu-validator-contract-genesis.json"),
        )
        .unwrap(),
    )
    .unwrap();
    // The example contract as Besu's genesis has it, listing only its first three validators.
    let key = CONTRACT.trim_start_matches("0x");
    let mut contract = besu_style["alloc"][key].clone();
    let slot = |i: u64| {
        format!(
            "{:#x}",
            U256::from_be_bytes(keccak256([0u8; 32]).0) + U256::from(i)
        )
    };
    let element = |i: u64| -> Address {
        let word = contract["storage"][slot(i).as_str()]
            .as_str()
            .unwrap_or_else(|| panic!("no element {i} in {contract}"));
        word[word.len() - 40..].parse().unwrap()
    };
    let mut contract_set: Vec<Address> = (0..3).map(element).collect();
    contract_set.sort();
    contract["storage"][format!("0x{}", "00".repeat(32))] = json!(format!("0x{:064x}", 3));
    genesis["alloc"][key] = contract;
    let all: Vec<Address> = {
        let mut v: Vec<Address> = validator_keys().iter().map(|k| key_address(k)).collect();
        v.sort();
        v
    };
    let left_out = *all.iter().find(|a| !contract_set.contains(a)).unwrap();
    let beneficiary: Address = "0x000000000000000000000000000000000000beef"
        .parse()
        .unwrap();
    genesis["config"]["transitions"] = json!({ "qbft": [
        { "block": TO_CONTRACT, "validatorselectionmode": "contract",
          "validatorcontractaddress": CONTRACT },
        { "block": TO_HEADER, "validatorselectionmode": "blockheader", "validators": all },
        { "block": REWARD_FROM, "blockreward": "0x1000", "miningbeneficiary": beneficiary },
        { "block": SLOWER_FROM, "blockperiodseconds": 2, "xblockperiodmilliseconds": 0,
          "requesttimeoutseconds": 3 },
    ]});
    let path = dir.path().join("genesis.json");
    std::fs::write(&path, genesis.to_string()).unwrap();
    let nodes = start_all(dir.path(), &path, "127.0.0.8", &validator_keys());
    wait_for(
        "the chain did not get through its transitions",
        Duration::from_secs(90),
        || nodes.iter().all(|n| block_number(&n.http) >= LAST),
    );

    let url = nodes[0].http.clone();
    let mut shared_second = false;
    for n in 1..=LAST {
        // The same block on every node, each with a quorum of seals it gathered itself.
        let copies: Vec<Header> = nodes.iter().map(|node| raw_header(&node.http, n)).collect();
        let header = copies[0].clone();
        let hash = bft_onchain_hash(&header).unwrap();
        for copy in &copies[1..] {
            assert_eq!(bft_onchain_hash(copy).unwrap(), hash, "block {n} differs");
        }
        let extra = QbftExtraData::decode(&header.extra_data).unwrap();
        let contract_mode = (TO_CONTRACT..TO_HEADER).contains(&n);
        let sealers = if contract_mode {
            assert!(extra.validators.is_empty(), "block {n} lists validators");
            assert!(extra.vote.is_none(), "block {n} carries a vote");
            &contract_set
        } else {
            assert_eq!(extra.validators, all, "block {n}'s validators");
            &all
        };
        assert!(
            sealers.contains(&header.beneficiary),
            "block {n} proposed by {} outside {sealers:?}",
            header.beneficiary
        );
        for copy in &copies {
            let signers = seal_signers(copy);
            assert!(
                signers.iter().all(|s| sealers.contains(s)),
                "block {n} sealed by {signers:?}, not all of {sealers:?}"
            );
            let quorum = (2 * sealers.len()).div_ceil(3);
            assert!(
                signers.len() >= quorum,
                "block {n}: {} seals",
                signers.len()
            );
        }
        let parent = raw_header(&url, n - 1);
        let gap = header.timestamp - parent.timestamp;
        if n >= SLOWER_FROM {
            assert!(gap >= 2, "block {n} came {gap}s after its parent");
        } else if gap == 0 {
            shared_second = true;
        }
    }
    assert!(shared_second, "no two 250 ms blocks shared a second");
    // The contract-mode block ten: the set answered is the contract's; later, all four again.
    assert_eq!(validators(&url, "0xa"), contract_set);
    assert_eq!(validators(&url, &format!("{REWARD_FROM:#x}")), all);
    // The validator the contract left out proposes again once block-header mode is back.
    assert!(
        (TO_HEADER..=LAST).any(|n| raw_header(&url, n).beneficiary == left_out),
        "{left_out} proposed none of blocks {TO_HEADER}..={LAST}"
    );
    // The reward: nothing before its block, 0x1000 a block from it on.
    let reward = |n: u64| balance_at(&url, beneficiary, n);
    assert_eq!(reward(REWARD_FROM - 1), U256::ZERO);
    assert_eq!(reward(LAST), U256::from(0x1000 * (LAST - REWARD_FROM + 1)),);
    let r = rpc(&url, "qbft_getRequestTimeoutSeconds", json!([]));
    assert_eq!(r["result"], json!(3), "{r}");
}
