//! `consort perm`: the allowlist contracts from the command line. `genesis` preloads them into
//! a genesis file; the other subcommands change them by transaction, signed by an admin, and
//! then read the rules back to confirm the change took effect.

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, Bytes};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use consort_network::Enode;
use consort_permissioning::contract::{
    account_payload, address_call, decode_bool, enode_call, get_contract_address_call,
    node_v2_payload, TxFacts, ADD_ACCOUNT_SELECTOR, ADD_ADMIN_SELECTOR, ADD_ENODE_SELECTOR,
    DEFAULT_ACCOUNT_INGRESS, DEFAULT_NODE_INGRESS, REMOVE_ACCOUNT_SELECTOR, REMOVE_ADMIN_SELECTOR,
    REMOVE_ENODE_SELECTOR,
};
use consort_permissioning::genesis::{preload, AllowlistGenesis};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `isAuthorized(address)` of the admin list.
const IS_AUTHORIZED_SELECTOR: [u8; 4] = [0xfe, 0x9f, 0xbb, 0x80];
/// How long to wait for a change to be mined.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(clap::Subcommand, Debug)]
pub enum PermCommand {
    /// Writes a genesis file with the allowlist contracts preloaded: ingress contracts at
    /// 0x…9999 (nodes) and 0x…8888 (accounts), the rules and the admin list, with a first admin.
    Genesis {
        /// The genesis file to add the contracts to.
        #[arg(long = "genesis-file", value_name = "FILE")]
        genesis_file: PathBuf,
        /// Where to write the result [default: standard output].
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// The first admin (also a permitted account).
        #[arg(long)]
        admin: Address,
        /// More admins.
        #[arg(long = "extra-admin", value_name = "ADDRESS")]
        admins: Vec<Address>,
        /// A node allowed to connect (repeatable).
        #[arg(long = "node", value_name = "ENODE")]
        nodes: Vec<Enode>,
        /// An account allowed to transact (repeatable).
        #[arg(long = "account", value_name = "ADDRESS")]
        accounts: Vec<Address>,
    },
    /// Allows a node to connect.
    AddNode {
        /// Its enode URL, as its peers see it.
        enode: Enode,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Stops a node from connecting (connected peers drop it within a block).
    RemoveNode {
        /// Its enode URL.
        enode: Enode,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Allows an account to transact.
    AddAccount {
        /// The account.
        address: Address,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Stops an account from transacting.
    RemoveAccount {
        /// The account.
        address: Address,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Makes an account an admin of the allowlists.
    AddAdmin {
        /// The account.
        address: Address,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Removes an admin (an admin cannot remove itself).
    RemoveAdmin {
        /// The account.
        address: Address,
        #[command(flatten)]
        tx: TxArgs,
    },
}

/// Where and as whom a change is sent.
#[derive(clap::Args, Debug)]
pub struct TxArgs {
    /// JSON-RPC endpoint of a node.
    #[arg(long = "rpc-url", default_value = "http://127.0.0.1:8545")]
    rpc_url: String,
    /// The admin's private key, hex.
    #[arg(
        long = "private-key",
        env = "CONSORT_PERM_PRIVATE_KEY",
        hide_env_values = true
    )]
    private_key: Option<String>,
    /// A file holding the admin's private key, hex (as a node's `key` file).
    #[arg(long = "key-file", value_name = "FILE", conflicts_with = "private_key")]
    key_file: Option<PathBuf>,
    /// The node ingress contract.
    #[arg(long = "node-ingress", default_value_t = DEFAULT_NODE_INGRESS)]
    node_ingress: Address,
    /// The account ingress contract.
    #[arg(long = "account-ingress", default_value_t = DEFAULT_ACCOUNT_INGRESS)]
    account_ingress: Address,
}

pub fn run(command: PermCommand) -> ExitCode {
    let result = match command {
        PermCommand::Genesis {
            genesis_file,
            output,
            admin,
            admins,
            nodes,
            accounts,
        } => genesis(
            genesis_file,
            output,
            AllowlistGenesis {
                admin,
                admins,
                nodes,
                accounts,
            },
        ),
        change => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))
            .and_then(|rt| rt.block_on(send_change(change))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn genesis(input: PathBuf, output: Option<PathBuf>, spec: AllowlistGenesis) -> Result<(), String> {
    let text = std::fs::read_to_string(&input)
        .map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    let mut genesis: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", input.display()))?;
    let addresses = preload(&mut genesis, &spec)?;
    let mut out = serde_json::to_string_pretty(&genesis).map_err(|e| e.to_string())?;
    out.push('\n');
    match output {
        Some(path) => {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, out)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        None => print!("{out}"),
    }
    eprintln!(
        "node ingress {}, account ingress {}, admin list {}, node rules {}, account rules {}",
        addresses.node_ingress,
        addresses.account_ingress,
        addresses.admin,
        addresses.node_rules,
        addresses.account_rules
    );
    Ok(())
}

fn signer(tx: &TxArgs) -> Result<PrivateKeySigner, String> {
    let text = match (&tx.private_key, &tx.key_file) {
        (Some(k), _) => k.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        (None, None) => {
            return Err(
                "an admin key is needed: --private-key, CONSORT_PERM_PRIVATE_KEY or --key-file"
                    .into(),
            )
        }
    };
    text.trim()
        .parse()
        .map_err(|e| format!("the admin key is not a secp256k1 private key in hex: {e}"))
}

/// Which contract an ingress names, which call changes it, and how to read back the result.
struct Change {
    what: String,
    ingress: Address,
    registry_name: &'static str,
    data: Vec<u8>,
    check_at: CheckAt,
    expect: bool,
}

enum CheckAt {
    Node(Enode),
    Account(Address),
    Admin(Address),
}

fn change_of(command: &PermCommand) -> Option<(Change, &TxArgs)> {
    let node = |enode: &Enode, selector, expect, tx: &TxArgs| Change {
        what: format!("node {enode}"),
        ingress: tx.node_ingress,
        registry_name: "rules",
        data: enode_call(selector, enode),
        check_at: CheckAt::Node(enode.clone()),
        expect,
    };
    let account = |a: Address, selector, expect, tx: &TxArgs| Change {
        what: format!("account {a}"),
        ingress: tx.account_ingress,
        registry_name: "rules",
        data: address_call(selector, a),
        check_at: CheckAt::Account(a),
        expect,
    };
    let admin = |a: Address, selector, expect, tx: &TxArgs| Change {
        what: format!("admin {a}"),
        ingress: tx.node_ingress,
        registry_name: "administration",
        data: address_call(selector, a),
        check_at: CheckAt::Admin(a),
        expect,
    };
    Some(match command {
        PermCommand::Genesis { .. } => return None,
        PermCommand::AddNode { enode, tx } => (node(enode, ADD_ENODE_SELECTOR, true, tx), tx),
        PermCommand::RemoveNode { enode, tx } => {
            (node(enode, REMOVE_ENODE_SELECTOR, false, tx), tx)
        }
        PermCommand::AddAccount { address, tx } => {
            (account(*address, ADD_ACCOUNT_SELECTOR, true, tx), tx)
        }
        PermCommand::RemoveAccount { address, tx } => {
            (account(*address, REMOVE_ACCOUNT_SELECTOR, false, tx), tx)
        }
        PermCommand::AddAdmin { address, tx } => {
            (admin(*address, ADD_ADMIN_SELECTOR, true, tx), tx)
        }
        PermCommand::RemoveAdmin { address, tx } => {
            (admin(*address, REMOVE_ADMIN_SELECTOR, false, tx), tx)
        }
    })
}

async fn call<P: Provider>(provider: &P, to: Address, data: Vec<u8>) -> Result<Bytes, String> {
    let req = TransactionRequest::default()
        .to(to)
        .input(Bytes::from(data).into());
    provider
        .call(req)
        .await
        .map_err(|e| format!("eth_call to {to} failed: {e}"))
}

async fn send_change(command: PermCommand) -> Result<(), String> {
    let Some((change, tx)) = change_of(&command) else {
        return Err("not a change".into());
    };
    let admin = signer(tx)?;
    let url = tx
        .rpc_url
        .parse()
        .map_err(|e| format!("--rpc-url {}: {e}", tx.rpc_url))?;
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(admin.clone()))
        .connect_http(url);
    let registered = call(
        &provider,
        change.ingress,
        get_contract_address_call(change.registry_name),
    )
    .await?;
    let target = registered
        .get(12..32)
        .map(Address::from_slice)
        .filter(|a| !a.is_zero())
        .ok_or_else(|| {
            format!(
                "the ingress at {} has no {} contract registered",
                change.ingress, change.registry_name
            )
        })?;
    let request = TransactionRequest::default()
        .from(admin.address())
        .to(target)
        .input(Bytes::from(change.data.clone()).into());
    let pending = provider
        .send_transaction(request)
        .await
        .map_err(|e| format!("sending the change of {} failed: {e}", change.what))?;
    let hash = *pending.tx_hash();
    let receipt = tokio::time::timeout(RECEIPT_TIMEOUT, pending.get_receipt())
        .await
        .map_err(|_| format!("transaction {hash} was not mined within {RECEIPT_TIMEOUT:?}"))?
        .map_err(|e| format!("waiting for transaction {hash}: {e}"))?;
    if !receipt.status() {
        return Err(format!(
            "transaction {hash} failed (is {} an admin?)",
            admin.address()
        ));
    }
    let (to, data) = match &change.check_at {
        CheckAt::Node(enode) => (change.ingress, node_v2_payload(enode)),
        CheckAt::Account(a) => (
            change.ingress,
            account_payload(&TxFacts {
                sender: *a,
                ..TxFacts::default()
            }),
        ),
        CheckAt::Admin(a) => (target, address_call(IS_AUTHORIZED_SELECTOR, *a)),
    };
    let now =
        decode_bool("allowlist", &call(&provider, to, data).await?).map_err(|e| e.to_string())?;
    if now != change.expect {
        return Err(format!(
            "transaction {hash} was mined but {} is {} (already so, or refused by the contract)",
            change.what,
            if now {
                "still allowed"
            } else {
                "still not allowed"
            }
        ));
    }
    println!(
        "Success: {} {} in transaction {hash}",
        change.what,
        if change.expect { "added" } else { "removed" }
    );
    Ok(())
}
