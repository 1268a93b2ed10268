//! The allowlist contracts of `genesis/permissioning`, preloaded into a genesis by
//! `genesis::preload` and asked through `Permissions` exactly as the node asks them: node rules
//! v2, account rules, what a missing contract means, and which state changes count as a change
//! of the node rules.

use alloy_primitives::{Address, Bytes, U256};
use consort_chainspec::Genesis;
use consort_network::{ConnectionGate, Enode, GateContext};
use consort_permissioning::contract::{DEFAULT_ACCOUNT_INGRESS, DEFAULT_NODE_INGRESS};
use consort_permissioning::genesis::{preload, AllowlistGenesis};
use consort_permissioning::{
    ContractReader, NodeContractVersion, PermissioningMetrics, Permissions, PermissionsConfig,
    Purpose, TxFacts, TxRefusal,
};
use consort_storage::{AccountChange, StateChanges, Store, StoreOptions};
use std::sync::Arc;

const ADMIN: Address = Address::repeat_byte(0xad);
const MEMBER: Address = Address::repeat_byte(0x11);
const STRANGER: Address = Address::repeat_byte(0x22);

fn enode(seed: u8, ip: &str, port: u16) -> Enode {
    let secret = secp256k1::SecretKey::from_slice(&[seed; 32]).unwrap();
    let public = secp256k1::PublicKey::from_secret_key(secp256k1::SECP256K1, &secret);
    let id = hex::encode(&public.serialize_uncompressed()[1..]);
    format!("enode://{id}@{ip}:{port}").parse().unwrap()
}

struct Setup {
    _dir: tempfile::TempDir,
    reader: ContractReader,
}

/// A chain whose genesis holds the contracts, with `nodes` and `MEMBER` allowed.
fn chain(nodes: &[Enode], with_contracts: bool) -> Setup {
    let mut json = serde_json::json!({
        "config": { "chainId": 1337, "berlinBlock": 0, "londonBlock": 0, "shanghaiTime": 0,
                    "cancunTime": 0, "qbft": { "blockperiodseconds": 1 } },
        "gasLimit": "0x1c9c380", "difficulty": "0x1",
        "extraData": "0xe5a00000000000000000000000000000000000000000000000000000000000000000c0c080c0",
        "alloc": {}
    });
    if with_contracts {
        preload(
            &mut json,
            &AllowlistGenesis {
                admin: ADMIN,
                admins: vec![],
                nodes: nodes.to_vec(),
                accounts: vec![MEMBER],
            },
        )
        .unwrap();
    }
    let genesis = Genesis::from_json(&json.to_string()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    consort_evm::init_genesis(&store, &genesis).unwrap();
    Setup {
        _dir: dir,
        reader: ContractReader {
            store: Arc::new(store),
            genesis: Arc::new(genesis),
        },
    }
}

fn permissions(setup: &Setup, nodes: bool, accounts: bool) -> Result<Permissions, String> {
    let config = PermissionsConfig {
        nodes_contract: nodes.then_some((DEFAULT_NODE_INGRESS, NodeContractVersion::V2)),
        accounts_contract: accounts.then_some(DEFAULT_ACCOUNT_INGRESS),
        ..PermissionsConfig::default()
    };
    let metrics = PermissioningMetrics::new(&consort_metrics::Registry::default()).unwrap();
    Permissions::new(config, setup.reader.clone(), metrics).map_err(|e| e.to_string())
}

fn facts(sender: Address) -> TxFacts {
    TxFacts {
        sender,
        to: Some(Address::repeat_byte(0x42)),
        value: U256::from(1),
        gas_price: 0,
        gas_limit: 21_000,
        input: Bytes::new(),
    }
}

const OUTBOUND: GateContext = GateContext {
    inbound: false,
    non_bootnode_peers: 1,
};

#[test]
fn the_node_contract_permits_listed_enodes_exactly() {
    let me = enode(1, "10.0.0.1", 30303);
    let member = enode(2, "10.0.0.2", 30303);
    let setup = chain(&[me.clone(), member.clone()], true);
    let p = permissions(&setup, true, false).unwrap();
    p.local_enode(&me);
    assert!(p.permits(&member, &OUTBOUND));
    assert!(p.permits(
        &member,
        &GateContext {
            inbound: true,
            ..OUTBOUND
        }
    ));
    // Same key elsewhere, another port, another key: not listed.
    assert!(!p.permits(&enode(2, "10.0.0.3", 30303), &OUTBOUND));
    assert!(!p.permits(&enode(2, "10.0.0.2", 30304), &OUTBOUND));
    assert!(!p.permits(&enode(3, "10.0.0.2", 30303), &OUTBOUND));
    // With a contract, the node itself must be listed too.
    let outsider = enode(9, "10.0.0.9", 30303);
    let p = permissions(&setup, true, false).unwrap();
    p.local_enode(&outsider);
    assert!(!p.permits(&member, &OUTBOUND));
}

#[test]
fn account_rules_permit_the_admin_and_the_listed_only_at_the_pool_and_at_import() {
    let setup = chain(&[], true);
    let p = permissions(&setup, false, true).unwrap();
    let head = setup.reader.store.head_header().unwrap();
    for purpose in [Purpose::Pool, Purpose::Build, Purpose::Import] {
        assert_eq!(p.check_transaction(&facts(MEMBER), purpose, &head), Ok(()));
        assert_eq!(p.check_transaction(&facts(ADMIN), purpose, &head), Ok(()));
        assert_eq!(
            p.check_transaction(&facts(STRANGER), purpose, &head),
            Err(TxRefusal::NotPermitted { sender: STRANGER })
        );
    }
    // A contract creation with a payload whose length is a multiple of 32.
    let create = TxFacts {
        to: None,
        input: Bytes::from(vec![0x60; 64]),
        ..facts(MEMBER)
    };
    assert_eq!(p.check_transaction(&create, Purpose::Pool, &head), Ok(()));
}

#[test]
fn a_missing_account_contract_allows_all_and_a_missing_node_contract_is_refused_at_start() {
    let setup = chain(&[], false);
    let p = permissions(&setup, false, true).unwrap();
    let head = setup.reader.store.head_header().unwrap();
    assert_eq!(
        p.check_transaction(&facts(STRANGER), Purpose::Pool, &head),
        Ok(())
    );
    let err = permissions(&setup, true, false).unwrap_err();
    assert!(
        err.contains("does not match the expected interface version 2"),
        "{err}"
    );
}

#[test]
fn the_node_rules_change_with_ingress_or_rules_storage_or_the_event() {
    let me = enode(1, "10.0.0.1", 30303);
    let setup = chain(std::slice::from_ref(&me), true);
    let p = permissions(&setup, true, false).unwrap();
    let head = setup.reader.store.head_header().unwrap();
    let writes = |address: Address| StateChanges {
        accounts: [(
            address,
            AccountChange {
                storage: [(U256::from(1), U256::from(1))].into(),
                ..AccountChange::default()
            },
        )]
        .into(),
        ..StateChanges::default()
    };
    assert!(!p.node_rules_changed(&head, &[], &StateChanges::default()));
    assert!(!p.node_rules_changed(&head, &[], &writes(STRANGER)));
    assert!(p.node_rules_changed(&head, &[], &writes(DEFAULT_NODE_INGRESS)));
    let rules = setup
        .reader
        .registered(&head, DEFAULT_NODE_INGRESS, "rules")
        .expect("rules registered");
    assert!(p.node_rules_changed(&head, &[], &writes(rules)));
}
