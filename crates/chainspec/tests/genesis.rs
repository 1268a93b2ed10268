//! Genesis parsing and the genesis block, against known hashes and Besu's rules.

use alloy_primitives::{address, b256, keccak256, Address, B256, U256};
use consort_chainspec::{Genesis, GenesisError, Hardfork, ValidatorSelection};
#[path = "../../../tests/support/conformance.rs"]
mod conformance;

#[test]
fn sepolia_genesis_hash_and_state_root() {
    let Some(path) = conformance::find("genesis/sepolia.json") else {
        return;
    };
    let genesis = Genesis::from_file(&path).unwrap();
    assert_eq!(genesis.chain_id, 11_155_111);
    assert_eq!(genesis.genesis_fork(), Hardfork::London);
    let header = genesis.header();
    assert_eq!(
        header.state_root,
        b256!("5eb6e371a698b8d68f665192350ffcecbbbf322916f4b51bd79bb6887da3f494")
    );
    assert_eq!(
        header.hash_slow(),
        b256!("25a5cc106eea7138acab33231d7160d69cb777ee0c2c553fcddf5138993e6dd9")
    );
}

const DOCS_EXTRA_DATA: &str = "0xf87aa00000000000000000000000000000000000000000000000000000000000000000f8549464a702e6263b7297a96638cac6ae65e6541f4169943923390ad55e90c237593b3b0e401f3b08a0318594aefdb9a738c9f433e5b6b212a6d62f6370c2f69294c7eeb9a4e00ce683cf93039b212648e01c6c6b78c080c0";

fn besu_template() -> Option<String> {
    let path = conformance::find("genesis/besu-qbft-london-template.json")?;
    Some(
        std::fs::read_to_string(path)
            .unwrap()
            .replace("%extraData%", DOCS_EXTRA_DATA),
    )
}

#[test]
fn besu_qbft_template_boots_with_london_from_block_two() {
    let Some(template) = besu_template() else {
        return;
    };
    let genesis = Genesis::from_json(&template).unwrap();
    let qbft = genesis.qbft.as_ref().unwrap();
    assert_eq!(qbft.genesis.block_period_seconds, 1);
    assert_eq!(qbft.genesis.request_timeout_seconds, 5);
    assert_eq!(qbft.epoch_length, 30_000);
    assert_eq!(
        qbft.genesis.block_reward,
        U256::from(5_000_000_000_000_000_000u128)
    );
    assert_eq!(
        qbft.genesis.validator_selection,
        ValidatorSelection::BlockHeader
    );
    assert_eq!(genesis.qbft_validators().unwrap().len(), 4);
    assert_eq!(genesis.forks.active_at(0, 0), Hardfork::Berlin);
    assert_eq!(genesis.forks.active_at(1, 0), Hardfork::Berlin);
    assert_eq!(genesis.forks.active_at(2, 0), Hardfork::London);
    // Berlin at genesis: no base fee in the header; the alloc is checked against alloy-trie.
    let header = genesis.header();
    assert_eq!(header.base_fee_per_gas, None);
    assert_eq!(header.state_root, reference_state_root(&genesis));
    assert_eq!(genesis.alloc.len(), 3);
    // privateKey and comment are ignored; mixed-case addresses parse.
    assert!(genesis
        .alloc
        .contains_key(&address!("627306090abaB3A6e1400e9345bC60c78a8BEf57")));
}

/// The state root computed independently with alloy-trie's HashBuilder.
fn reference_state_root(genesis: &Genesis) -> B256 {
    let mut leaves: Vec<(B256, Vec<u8>)> = genesis
        .alloc
        .iter()
        .map(|(address, account)| {
            let mut storage: Vec<(B256, U256)> = account
                .storage
                .iter()
                .map(|(k, v)| (keccak256(k), *v))
                .collect();
            storage.sort();
            let mut hb = alloy_trie::HashBuilder::default();
            for (k, v) in &storage {
                hb.add_leaf(alloy_trie::Nibbles::unpack(k), &alloy_rlp::encode(v));
            }
            let leaf = alloy_trie::TrieAccount {
                nonce: account.nonce,
                balance: account.balance,
                storage_root: hb.root(),
                code_hash: if account.code.is_empty() {
                    alloy_trie::KECCAK_EMPTY
                } else {
                    keccak256(&account.code)
                },
            };
            (keccak256(address), alloy_rlp::encode(leaf))
        })
        .collect();
    leaves.sort();
    let mut hb = alloy_trie::HashBuilder::default();
    for (k, v) in &leaves {
        hb.add_leaf(alloy_trie::Nibbles::unpack(k), v);
    }
    hb.root()
}

#[test]
fn keys_are_case_insensitive_and_numbers_take_every_form() {
    let json = r#"{
        "CONFIG": { "ChainID": "0x7e6", "LondonBlock": 0, "ShanghaiTime": "0", "CancunTime": 0, "ZeroBaseFee": true,
                    "ContractSizeLimit": 49152, "QBFT": { "BlockPeriodSeconds": "2", "EmptyBlockPeriodSeconds": 30 } },
        "GasLimit": "30000000", "Difficulty": "0x1", "Timestamp": 100, "ExtraData": "0xe5a00000000000000000000000000000000000000000000000000000000000000000c0c080c0",
        "ALLOC": {
            "0000000000000000000000000000000000000001": { "Balance": "1000", "Nonce": "0x2" },
            "0x0000000000000000000000000000000000000002": { "balance": "0xff", "code": "0x6001", "storage": { "0x01": "0x02", "0x02": "0x00" } }
        }
    }"#;
    let genesis = Genesis::from_json(json).unwrap();
    assert_eq!(genesis.chain_id, 2022);
    assert_eq!(genesis.gas_limit, 30_000_000);
    assert!(genesis.zero_base_fee);
    assert_eq!(genesis.contract_size_limit, Some(49_152));
    assert_eq!(
        genesis.qbft.as_ref().unwrap().genesis.block_period_seconds,
        2
    );
    assert_eq!(
        genesis
            .qbft
            .as_ref()
            .unwrap()
            .genesis
            .empty_block_period_seconds,
        30
    );
    let one = &genesis.alloc[&Address::with_last_byte(1)];
    assert_eq!((one.balance, one.nonce), (U256::from(1000), 2));
    let two = &genesis.alloc[&Address::with_last_byte(2)];
    assert_eq!(two.storage.len(), 1, "zero-valued slots are dropped");
    // Cancun at genesis: zero base fee, withdrawals root, blob fields, beacon root.
    let header = genesis.header();
    assert_eq!(genesis.genesis_fork(), Hardfork::Cancun);
    assert_eq!(header.base_fee_per_gas, Some(0));
    assert_eq!(
        header.withdrawals_root,
        Some(consort_primitives::EMPTY_ROOT_HASH)
    );
    assert_eq!(
        (header.blob_gas_used, header.excess_blob_gas),
        (Some(0), Some(0))
    );
    assert_eq!(header.parent_beacon_block_root, Some(B256::ZERO));
    assert_eq!(header.requests_hash, None);
    assert_eq!(header.state_root, reference_state_root(&genesis));
}

#[test]
fn prague_at_genesis_adds_the_requests_hash_and_default_base_fee() {
    let json = r#"{ "config": { "chainId": 1, "londonBlock": 0, "shanghaiTime": 0, "cancunTime": 0, "pragueTime": 0 },
                    "gasLimit": "0x1c9c380", "alloc": {} }"#;
    let header = Genesis::from_json(json).unwrap().header();
    assert_eq!(
        header.requests_hash,
        Some(consort_primitives::EMPTY_REQUESTS_HASH)
    );
    assert_eq!(header.base_fee_per_gas, Some(1_000_000_000));
    assert_eq!(header.state_root, consort_primitives::EMPTY_ROOT_HASH);
}

#[test]
fn transitions_override_parameters_from_their_block() {
    let json = r#"{ "config": { "chainId": 5, "berlinBlock": 0, "qbft": { "blockperiodseconds": 5, "blockreward": "0x10", "miningbeneficiary": "0x00000000000000000000000000000000000000aa" },
                    "transitions": { "qbft": [
                        { "block": 20, "blockperiodseconds": 1, "miningbeneficiary": "", "requesttimeoutseconds": 7 },
                        { "block": 10, "validatorselectionmode": "contract", "validatorcontractaddress": "0x0000000000000000000000000000000000008888" } ] } },
                    "gasLimit": 1000000, "extraData": "0xe5a00000000000000000000000000000000000000000000000000000000000000000c0c080c0" }"#;
    let genesis = Genesis::from_json(json).unwrap();
    let qbft = genesis.qbft.unwrap();
    let at = |n| qbft.params_at(n);
    assert_eq!(at(9).block_period_seconds, 5);
    assert_eq!(at(9).validator_selection, ValidatorSelection::BlockHeader);
    assert_eq!(
        at(10).validator_selection,
        ValidatorSelection::Contract(address!("0000000000000000000000000000000000008888"))
    );
    assert_eq!(
        at(19).mining_beneficiary,
        Some(Address::with_last_byte(0xaa))
    );
    assert_eq!(at(20).block_period_seconds, 1);
    assert_eq!(at(20).mining_beneficiary, None);
    assert_eq!(at(20).block_reward, U256::from(16));
    assert_eq!(at(19).request_timeout_seconds, 1);
    assert_eq!(at(20).request_timeout_seconds, 7);
}

fn field_error(json: &str) -> (String, String) {
    match Genesis::from_json(json) {
        Err(GenesisError::Field { field, reason }) => (field, reason),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn bad_files_get_errors_that_name_the_field() {
    let cases: &[(&str, &str, &str)] = &[
        ("missing gas limit", r#"{"config":{}}"#, "gaslimit"),
        (
            "gas limit not a number",
            r#"{"gasLimit":"lots"}"#,
            "gaslimit",
        ),
        (
            "negative chain id",
            r#"{"config":{"chainId":-1},"gasLimit":1}"#,
            "config.chainid",
        ),
        (
            "fork block is an object",
            r#"{"config":{"londonBlock":{}},"gasLimit":1}"#,
            "config.londonblock",
        ),
        (
            "bad alloc address",
            r#"{"gasLimit":1,"alloc":{"0x12":{"balance":"1"}}}"#,
            "alloc.0x12",
        ),
        (
            "bad balance",
            r#"{"gasLimit":1,"alloc":{"0x0000000000000000000000000000000000000001":{"balance":"1.5"}}}"#,
            "alloc.0x0000000000000000000000000000000000000001.balance",
        ),
        (
            "bad code hex",
            r#"{"gasLimit":1,"alloc":{"0x0000000000000000000000000000000000000001":{"code":"0xzz"}}}"#,
            "alloc.0x0000000000000000000000000000000000000001.code",
        ),
        (
            "zero block period",
            r#"{"gasLimit":1,"config":{"qbft":{"blockperiodseconds":0}},"extraData":"0xe5a00000000000000000000000000000000000000000000000000000000000000000c0c080c0"}"#,
            "config.qbft.blockperiodseconds",
        ),
        (
            "bad qbft extraData",
            r#"{"gasLimit":1,"config":{"qbft":{}},"extraData":"0x1234"}"#,
            "extradata",
        ),
        (
            "transition at block 0",
            r#"{"gasLimit":1,"config":{"qbft":{},"transitions":{"qbft":[{"block":0}]}},"extraData":"0xe5a00000000000000000000000000000000000000000000000000000000000000000c0c080c0"}"#,
            "config.transitions.qbft[0].block",
        ),
        (
            "blockheader mode without validators",
            r#"{"gasLimit":1,"config":{"qbft":{},"transitions":{"qbft":[{"block":3,"validatorselectionmode":"blockheader"}]}},"extraData":"0xe5a00000000000000000000000000000000000000000000000000000000000000000c0c080c0"}"#,
            "config.transitions.qbft[0].validators",
        ),
        ("huge JSON number", r#"{"gasLimit":1e30}"#, "gaslimit"),
    ];
    for (what, json, field) in cases {
        let (got, reason) = field_error(json);
        assert_eq!(&got, field, "{what}: {reason}");
        assert!(!reason.is_empty(), "{what}");
    }
    assert!(matches!(
        Genesis::from_json("{ not json"),
        Err(GenesisError::Json(_))
    ));
    assert!(matches!(
        Genesis::from_file(std::path::Path::new("/nonexistent/genesis.json")),
        Err(GenesisError::Io { .. })
    ));
}

#[test]
fn a_large_allocation_loads_and_matches_an_independent_root() {
    let mut alloc = serde_json::Map::new();
    for i in 0..5_000u64 {
        let mut account = serde_json::json!({ "balance": format!("{}", i * 1_000_000_007) });
        if i % 100 == 0 {
            account["code"] = "0x600160005500".into();
            account["storage"] = serde_json::json!({ format!("0x{:x}", i): "0x01", "0x00": format!("0x{:x}", i + 1) });
        }
        alloc.insert(format!("{:040x}", i * 7919 + 1), account);
    }
    let json = serde_json::json!({ "config": { "chainId": 1337, "londonBlock": 0 }, "gasLimit": "0x1fffffffffffff", "alloc": alloc });
    let genesis = Genesis::from_json(&json.to_string()).unwrap();
    assert_eq!(genesis.alloc.len(), 5_000);
    assert_eq!(genesis.state_root(), reference_state_root(&genesis));
}

#[test]
fn child_base_fee_follows_eip1559_and_zero_base_fee() {
    let Some(template) = besu_template() else {
        return;
    };
    let genesis = Genesis::from_json(&template).unwrap();
    let g = genesis.header();
    // London activates at block 2: block 1 has no base fee, block 2 starts at 1 gwei.
    assert_eq!(genesis.child_base_fee(&g, 1), None);
    let one = consort_primitives::Header {
        number: 1,
        gas_limit: g.gas_limit,
        ..Default::default()
    };
    assert_eq!(genesis.child_base_fee(&one, 2), Some(1_000_000_000));
    // After that: an empty parent lowers it by 1/8, a full one raises it by 1/8, half-full keeps it.
    let two = consort_primitives::Header {
        number: 2,
        gas_limit: 30_000_000,
        base_fee_per_gas: Some(1_000_000_000),
        ..Default::default()
    };
    assert_eq!(genesis.child_base_fee(&two, 3), Some(875_000_000));
    let full = consort_primitives::Header {
        gas_used: 30_000_000,
        ..two.clone()
    };
    assert_eq!(genesis.child_base_fee(&full, 3), Some(1_125_000_000));
    let half = consort_primitives::Header {
        gas_used: 15_000_000,
        ..two.clone()
    };
    assert_eq!(genesis.child_base_fee(&half, 3), Some(1_000_000_000));
    let zero = Genesis::from_json(&template.replace(
        "\"londonBlock\": 2,",
        "\"londonBlock\": 2, \"zeroBaseFee\": true,",
    ))
    .unwrap();
    assert!(zero.zero_base_fee);
    assert_eq!(zero.child_base_fee(&full, 3), Some(0));
}
