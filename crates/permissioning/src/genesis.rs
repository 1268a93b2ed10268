//! The allowlist contracts preloaded into a genesis file: deployed on a scratch chain so their
//! constructors run, the ingress contracts moved to Besu's addresses, the rules registered with
//! them and filled with the first nodes, accounts and admins.

use crate::contract::{
    address_call, enode_call, set_contract_address_call, ADD_ACCOUNT_SELECTOR, ADD_ADMIN_SELECTOR,
    ADD_ENODE_SELECTOR, DEFAULT_ACCOUNT_INGRESS, DEFAULT_NODE_INGRESS,
};
use alloy_primitives::{Address, Bytes, U256};
use consort_evm::{Scratch, ScratchAccount};
use consort_network::Enode;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The compiled contracts (`genesis/permissioning/artifacts`, rebuilt by
/// `node genesis/permissioning/compile.mjs`).
const ARTIFACTS: [(&str, &str); 5] = [
    (
        "NodeIngress",
        include_str!("../../../genesis/permissioning/artifacts/NodeIngress.json"),
    ),
    (
        "AccountIngress",
        include_str!("../../../genesis/permissioning/artifacts/AccountIngress.json"),
    ),
    (
        "Admin",
        include_str!("../../../genesis/permissioning/artifacts/Admin.json"),
    ),
    (
        "NodeRules",
        include_str!("../../../genesis/permissioning/artifacts/NodeRules.json"),
    ),
    (
        "AccountRules",
        include_str!("../../../genesis/permissioning/artifacts/AccountRules.json"),
    ),
];

/// Who the preloaded contracts allow at genesis.
#[derive(Debug, Clone, Default)]
pub struct AllowlistGenesis {
    /// The first admin: deploys the contracts, so it is an admin and a permitted account.
    pub admin: Address,
    /// Further admins.
    pub admins: Vec<Address>,
    /// Nodes allowed to connect.
    pub nodes: Vec<Enode>,
    /// Further accounts allowed to transact.
    pub accounts: Vec<Address>,
}

/// The contracts' addresses in a preloaded genesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowlistAddresses {
    /// The node ingress (`0x…9999`).
    pub node_ingress: Address,
    /// The account ingress (`0x…8888`).
    pub account_ingress: Address,
    /// The admin list.
    pub admin: Address,
    /// The node rules.
    pub node_rules: Address,
    /// The account rules.
    pub account_rules: Address,
}

fn creation_code(name: &str) -> Result<Vec<u8>, String> {
    let (_, text) = ARTIFACTS
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| format!("no artifact for {name}"))?;
    let artifact: Value =
        serde_json::from_str(text).map_err(|e| format!("artifact {name}: {e}"))?;
    let hex_code = artifact
        .get("bytecode")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("artifact {name} has no bytecode"))?;
    hex::decode(hex_code.trim_start_matches("0x")).map_err(|e| format!("artifact {name}: {e}"))
}

fn with_address_argument(mut code: Vec<u8>, argument: Address) -> Bytes {
    code.extend_from_slice(&[0u8; 12]);
    code.extend_from_slice(argument.as_slice());
    code.into()
}

/// Deploys and fills the allowlist contracts; returns the accounts to put in `alloc`.
pub fn allowlist_accounts(
    spec: &AllowlistGenesis,
) -> Result<(AllowlistAddresses, BTreeMap<Address, ScratchAccount>), String> {
    let mut chain = Scratch::new();
    let admin = spec.admin;
    let step = |what: &str, e: String| format!("{what}: {e}");
    let node_ingress = chain
        .create(admin, creation_code("NodeIngress")?.into())
        .map_err(|e| step("deploying NodeIngress", e))?;
    chain.relocate(node_ingress, DEFAULT_NODE_INGRESS)?;
    let account_ingress = chain
        .create(admin, creation_code("AccountIngress")?.into())
        .map_err(|e| step("deploying AccountIngress", e))?;
    chain.relocate(account_ingress, DEFAULT_ACCOUNT_INGRESS)?;
    let admin_list = chain
        .create(admin, creation_code("Admin")?.into())
        .map_err(|e| step("deploying Admin", e))?;
    let node_rules = chain
        .create(
            admin,
            with_address_argument(creation_code("NodeRules")?, DEFAULT_NODE_INGRESS),
        )
        .map_err(|e| step("deploying NodeRules", e))?;
    let account_rules = chain
        .create(
            admin,
            with_address_argument(creation_code("AccountRules")?, DEFAULT_ACCOUNT_INGRESS),
        )
        .map_err(|e| step("deploying AccountRules", e))?;
    for (ingress, rules) in [
        (DEFAULT_NODE_INGRESS, node_rules),
        (DEFAULT_ACCOUNT_INGRESS, account_rules),
    ] {
        chain
            .call(
                admin,
                ingress,
                set_contract_address_call("rules", rules).into(),
            )
            .map_err(|e| step("registering the rules", e))?;
        chain
            .call(
                admin,
                ingress,
                set_contract_address_call("administration", admin_list).into(),
            )
            .map_err(|e| step("registering the admin list", e))?;
    }
    for a in spec.admins.iter().filter(|a| **a != admin) {
        chain
            .call(
                admin,
                admin_list,
                address_call(ADD_ADMIN_SELECTOR, *a).into(),
            )
            .map_err(|e| step(&format!("adding admin {a}"), e))?;
    }
    for node in &spec.nodes {
        chain
            .call(
                admin,
                node_rules,
                enode_call(ADD_ENODE_SELECTOR, node).into(),
            )
            .map_err(|e| step(&format!("adding node {node}"), e))?;
    }
    for a in spec.accounts.iter().filter(|a| **a != admin) {
        chain
            .call(
                admin,
                account_rules,
                address_call(ADD_ACCOUNT_SELECTOR, *a).into(),
            )
            .map_err(|e| step(&format!("adding account {a}"), e))?;
    }
    let addresses = AllowlistAddresses {
        node_ingress: DEFAULT_NODE_INGRESS,
        account_ingress: DEFAULT_ACCOUNT_INGRESS,
        admin: admin_list,
        node_rules,
        account_rules,
    };
    Ok((addresses, chain.contracts()))
}

fn word(v: U256) -> String {
    format!("0x{}", hex::encode(v.to_be_bytes::<32>()))
}

/// Adds the allowlist contracts to the `alloc` of a genesis file (JSON), replacing accounts at
/// the same addresses.
pub fn preload(genesis: &mut Value, spec: &AllowlistGenesis) -> Result<AllowlistAddresses, String> {
    let (addresses, accounts) = allowlist_accounts(spec)?;
    let object = genesis
        .as_object_mut()
        .ok_or("the genesis file is not a JSON object")?;
    let alloc = object
        .entry("alloc")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or("the genesis `alloc` is not a JSON object")?;
    for (address, account) in accounts {
        let storage: Map<String, Value> = account
            .storage
            .iter()
            .map(|(k, v)| (word(*k), Value::String(word(*v))))
            .collect();
        alloc.insert(
            hex::encode(address),
            json!({
                "balance": "0x0",
                "nonce": format!("{:#x}", account.nonce),
                "code": format!("0x{}", hex::encode(&account.code)),
                "storage": storage,
            }),
        );
    }
    Ok(addresses)
}
