//! The `perm_*` methods: Besu's local node and account allowlists, read, changed and reloaded
//! over JSON-RPC, with Besu's parameters, results, error codes and messages.

use crate::server::method;
use crate::RpcContext;
use consort_permissioning::{AllowlistError, LocalAllowlists};
use jsonrpsee::server::RpcModule;
use jsonrpsee::types::Params;
use serde_json::Value;
use std::sync::Arc;

/// What the methods need of the node: the lists, whether P2P runs, whom to tell of node changes.
struct Perm<'a> {
    lists: Option<&'a LocalAllowlists>,
    p2p: bool,
    on_nodes_changed: Option<&'a (dyn Fn() + Send + Sync)>,
}

type Handler = fn(&Perm<'_>, &Params<'_>) -> Result<Value, AllowlistError>;

/// Every `perm_*` method (Besu's `PermJsonRpcMethods`).
const METHODS: [(&str, Handler); 7] = [
    ("perm_addAccountsToAllowlist", add_accounts),
    ("perm_removeAccountsFromAllowlist", remove_accounts),
    ("perm_getAccountsAllowlist", get_accounts),
    ("perm_addNodesToAllowlist", add_nodes),
    ("perm_removeNodesFromAllowlist", remove_nodes),
    ("perm_getNodesAllowlist", get_nodes),
    ("perm_reloadPermissionsFromFile", reload),
];

pub(crate) fn module(ctx: Arc<RpcContext>) -> RpcModule<Arc<RpcContext>> {
    let mut m = RpcModule::new(ctx);
    for (name, handler) in METHODS {
        method(&mut m, name, move |ctx, params| {
            let perm = Perm {
                lists: ctx.permissions.as_deref(),
                p2p: ctx.network.is_some(),
                on_nodes_changed: ctx.on_nodes_changed.as_deref(),
            };
            Ok(handler(&perm, &params)?)
        });
    }
    m
}

impl Perm<'_> {
    fn accounts(&self) -> Result<&LocalAllowlists, AllowlistError> {
        self.lists
            .filter(|l| l.accounts_enabled())
            .ok_or(AllowlistError::AccountAllowlistNotEnabled)
    }

    fn nodes(&self) -> Result<&LocalAllowlists, AllowlistError> {
        if !self.p2p {
            return Err(AllowlistError::P2pDisabled);
        }
        self.lists
            .filter(|l| l.nodes_enabled())
            .ok_or(AllowlistError::NodeAllowlistNotEnabled)
    }

    /// Tells the node of a node-list change. A file out of sync still changed the list in
    /// memory, so it counts.
    fn nodes_changed(&self, result: Result<(), AllowlistError>) -> Result<Value, AllowlistError> {
        if matches!(result, Ok(()) | Err(AllowlistError::FileSync { .. })) {
            if let Some(notify) = self.on_nodes_changed {
                notify();
            }
        }
        result.map(|()| success())
    }
}

fn success() -> Value {
    Value::String("Success".into())
}

/// Param 0 as a list of strings, else `invalid`.
fn string_list(
    params: &Params<'_>,
    invalid: AllowlistError,
) -> Result<Vec<String>, AllowlistError> {
    params.sequence().next::<Vec<String>>().map_err(|_| invalid)
}

fn add_accounts(perm: &Perm<'_>, params: &Params<'_>) -> Result<Value, AllowlistError> {
    let entries = string_list(params, AllowlistError::InvalidAccountParams)?;
    perm.accounts()?.add_accounts(&entries).map(|()| success())
}

fn remove_accounts(perm: &Perm<'_>, params: &Params<'_>) -> Result<Value, AllowlistError> {
    let entries = string_list(params, AllowlistError::InvalidAccountParams)?;
    perm.accounts()?
        .remove_accounts(&entries)
        .map(|()| success())
}

fn get_accounts(perm: &Perm<'_>, _: &Params<'_>) -> Result<Value, AllowlistError> {
    Ok(perm.accounts()?.accounts()?.into())
}

fn add_nodes(perm: &Perm<'_>, params: &Params<'_>) -> Result<Value, AllowlistError> {
    let entries = string_list(params, AllowlistError::InvalidEnodeParams)?;
    let lists = perm.nodes()?;
    perm.nodes_changed(lists.add_nodes(&entries))
}

fn remove_nodes(perm: &Perm<'_>, params: &Params<'_>) -> Result<Value, AllowlistError> {
    let entries = string_list(params, AllowlistError::InvalidEnodeParams)?;
    let lists = perm.nodes()?;
    perm.nodes_changed(lists.remove_nodes(&entries))
}

fn get_nodes(perm: &Perm<'_>, _: &Params<'_>) -> Result<Value, AllowlistError> {
    Ok(perm.nodes()?.nodes()?.into())
}

fn reload(perm: &Perm<'_>, _: &Params<'_>) -> Result<Value, AllowlistError> {
    let lists = perm.lists.ok_or(AllowlistError::PermissioningNotEnabled)?;
    let result = lists.reload();
    if lists.nodes_enabled() {
        perm.nodes_changed(result)
    } else {
        result.map(|()| success())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RpcError;
    use consort_permissioning::LocalConfig;
    use jsonrpsee::types::ErrorObjectOwned;
    use serde_json::json;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const ID_1: &str = "069a2438f21a3330a6a26d20d15cb8aa53d4ec3074f7da967e2738f99c11c824837d0223efbd4d59e83dd4da0ff32cc7d551995f18c8cbb5f8da06aff4816566";
    const ID_2: &str = "4d37361f95259ebab1d5c07a40599da398d23fef48f76cfa9c7a99c728a359a5ba9f79c132d3b6c8c4856bba5e96a73d1918b605459f8620d6e984efed822527";

    fn node(id: &str, port: u16) -> String {
        format!("enode://{id}@127.0.0.1:{port}")
    }

    fn acct(n: u8) -> String {
        format!("0x{}", hex_of(n))
    }

    fn hex_of(n: u8) -> String {
        format!("{n:02x}").repeat(20)
    }

    /// A `permissions_config.toml` holding node 1 and account 1, with node 1 also a bootnode
    /// when `fixed`.
    struct Node {
        _dir: tempfile::TempDir,
        path: PathBuf,
        lists: LocalAllowlists,
        changes: Arc<AtomicUsize>,
        notify: Arc<dyn Fn() + Send + Sync>,
    }

    impl Node {
        fn new(nodes: bool, accounts: bool, fixed: &[&str]) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("permissions_config.toml");
            std::fs::write(
                &path,
                format!(
                    "nodes-allowlist=[\"{}\"]\naccounts-allowlist=[\"{}\"]\n",
                    node(ID_1, 30303),
                    acct(1)
                ),
            )
            .unwrap();
            let config = LocalConfig {
                nodes_file: nodes.then(|| path.clone()),
                accounts_file: accounts.then(|| path.clone()),
            };
            let fixed: Vec<_> = fixed.iter().map(|e| e.parse().unwrap()).collect();
            let changes = Arc::new(AtomicUsize::new(0));
            let counter = changes.clone();
            Node {
                _dir: dir,
                path,
                lists: LocalAllowlists::load(&config, &fixed).unwrap(),
                changes,
                notify: Arc::new(move || {
                    counter.fetch_add(1, Ordering::SeqCst);
                }),
            }
        }

        fn perm(&self) -> Perm<'_> {
            Perm {
                lists: Some(&self.lists),
                p2p: true,
                on_nodes_changed: Some(self.notify.as_ref()),
            }
        }

        fn node_changes(&self) -> usize {
            self.changes.load(Ordering::SeqCst)
        }
    }

    /// Calls `name` as the server would and gives the result or the JSON-RPC error.
    fn call(perm: &Perm<'_>, name: &str, params: Option<&str>) -> Result<Value, (i32, String)> {
        let (_, handler) = METHODS.iter().find(|(n, _)| *n == name).unwrap();
        handler(perm, &Params::new(params)).map_err(|e| {
            let e = ErrorObjectOwned::from(RpcError::from(e));
            (e.code(), e.message().to_string())
        })
    }

    fn list(items: &[String]) -> String {
        json!([items]).to_string()
    }

    #[test]
    fn every_besu_perm_method_is_served() {
        let mut names: Vec<&str> = METHODS.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            vec![
                "perm_addAccountsToAllowlist",
                "perm_addNodesToAllowlist",
                "perm_getAccountsAllowlist",
                "perm_getNodesAllowlist",
                "perm_reloadPermissionsFromFile",
                "perm_removeAccountsFromAllowlist",
                "perm_removeNodesFromAllowlist",
            ]
        );
    }

    #[test]
    fn account_methods_change_read_and_persist_the_list() {
        let n = Node::new(true, true, &[]);
        let p = n.perm();
        assert_eq!(
            call(&p, "perm_getAccountsAllowlist", Some("[]")),
            Ok(json!([acct(1)]))
        );
        // Upper-case input is lower-cased, as in Besu.
        let upper = format!("0X{}", hex_of(0xab).to_uppercase());
        assert_eq!(
            call(
                &p,
                "perm_addAccountsToAllowlist",
                Some(&list(&[upper, acct(2)]))
            ),
            Ok(json!("Success"))
        );
        assert_eq!(
            call(
                &p,
                "perm_removeAccountsFromAllowlist",
                Some(&list(&[acct(1)]))
            ),
            Ok(json!("Success"))
        );
        assert_eq!(
            call(&p, "perm_getAccountsAllowlist", None),
            Ok(json!([acct(0xab), acct(2)]))
        );
        let file = std::fs::read_to_string(&n.path).unwrap();
        assert!(
            file.contains(&format!(
                "accounts-allowlist=[\"{}\", \"{}\"]",
                acct(0xab),
                acct(2)
            )),
            "{file}"
        );
        assert_eq!(n.node_changes(), 0, "account changes do not re-check peers");
    }

    #[test]
    fn node_methods_change_read_persist_and_tell_the_node() {
        let n = Node::new(true, true, &[]);
        let p = n.perm();
        assert_eq!(
            call(&p, "perm_getNodesAllowlist", Some("[]")),
            Ok(json!([node(ID_1, 30303)]))
        );
        let with_disc = format!("{}?discport=30305", node(ID_2, 30304));
        assert_eq!(
            call(
                &p,
                "perm_addNodesToAllowlist",
                Some(&list(std::slice::from_ref(&with_disc)))
            ),
            Ok(json!("Success"))
        );
        assert_eq!(n.node_changes(), 1);
        assert_eq!(
            call(&p, "perm_getNodesAllowlist", None),
            Ok(json!([node(ID_1, 30303), with_disc]))
        );
        assert_eq!(
            call(
                &p,
                "perm_removeNodesFromAllowlist",
                Some(&list(&[node(ID_1, 30303)]))
            ),
            Ok(json!("Success"))
        );
        assert_eq!(n.node_changes(), 2);
        assert!(!n.lists.node_permitted(&node(ID_1, 30303).parse().unwrap()));
        assert!(n.lists.node_permitted(&node(ID_2, 30304).parse().unwrap()));
        // The file now holds what a reload reads back.
        assert_eq!(
            call(&p, "perm_reloadPermissionsFromFile", Some("[]")),
            Ok(json!("Success"))
        );
        assert_eq!(n.node_changes(), 3);
        assert_eq!(
            call(&p, "perm_getNodesAllowlist", None),
            Ok(json!([format!("{}?discport=30305", node(ID_2, 30304))]))
        );
        // A refused change does not re-check peers.
        assert!(call(&p, "perm_addNodesToAllowlist", Some("[[]]")).is_err());
        assert_eq!(n.node_changes(), 3);
    }

    #[test]
    fn errors_have_besus_codes_and_messages() {
        let n = Node::new(true, true, &[&node(ID_1, 30303)]);
        let p = n.perm();
        let acct_1 = list(&[acct(1)]);
        let node_1 = list(&[node(ID_1, 30303)]);
        let node_2 = list(&[node(ID_2, 30303)]);
        let acct_2_twice = list(&[acct(2), acct(2)]);
        let acct_3 = list(&[acct(3)]);
        let node_twice = list(&[node(ID_2, 1), node(ID_2, 1)]);
        let cases: Vec<(&str, &str, Option<&str>, i32, &str)> = vec![
            (
                "no params",
                "perm_addAccountsToAllowlist",
                None,
                -32602,
                "Invalid account params",
            ),
            (
                "param 0 not a list",
                "perm_addAccountsToAllowlist",
                Some("[\"0x00\"]"),
                -32602,
                "Invalid account params",
            ),
            (
                "numbers",
                "perm_removeAccountsFromAllowlist",
                Some("[[1]]"),
                -32602,
                "Invalid account params",
            ),
            (
                "empty params",
                "perm_addNodesToAllowlist",
                Some("[]"),
                -32602,
                "Invalid enode params",
            ),
            (
                "enode not a string",
                "perm_removeNodesFromAllowlist",
                Some("[[{}]]"),
                -32602,
                "Invalid enode params",
            ),
            (
                "empty account list",
                "perm_addAccountsToAllowlist",
                Some("[[]]"),
                -32000,
                "Request contains an empty list of accounts",
            ),
            (
                "invalid account",
                "perm_addAccountsToAllowlist",
                Some("[[\"0x12\"]]"),
                -32000,
                "Request contains an invalid account",
            ),
            (
                "duplicate accounts",
                "perm_addAccountsToAllowlist",
                Some(&acct_2_twice),
                -32000,
                "Request contains duplicate accounts",
            ),
            (
                "existing account",
                "perm_addAccountsToAllowlist",
                Some(&acct_1),
                -32000,
                "Cannot add an existing account to allowlist",
            ),
            (
                "absent account",
                "perm_removeAccountsFromAllowlist",
                Some(&acct_3),
                -32000,
                "Cannot remove an absent account from allowlist",
            ),
            (
                "empty node list",
                "perm_addNodesToAllowlist",
                Some("[[]]"),
                -32000,
                "Request contains an empty list of nodes",
            ),
            (
                "invalid node",
                "perm_addNodesToAllowlist",
                Some("[[\"enode://x@1.2.3.4:5\"]]"),
                -32000,
                "Request contains an invalid node",
            ),
            (
                "duplicate nodes",
                "perm_addNodesToAllowlist",
                Some(&node_twice),
                -32000,
                "Request contains duplicate nodes",
            ),
            (
                "existing node",
                "perm_addNodesToAllowlist",
                Some(&node_1),
                -32000,
                "Cannot add an existing node to allowlist",
            ),
            (
                "absent node",
                "perm_removeNodesFromAllowlist",
                Some(&node_2),
                -32000,
                "Cannot remove an absent node from allowlist",
            ),
            (
                "bootnode",
                "perm_removeNodesFromAllowlist",
                Some(&node_1),
                -32000,
                "Cannot remove a fixed node (bootnode or static node) from allowlist",
            ),
        ];
        for (what, name, params, code, message) in cases {
            assert_eq!(
                call(&p, name, params),
                Err((code, message.to_string())),
                "{what}"
            );
        }
        assert_eq!(n.lists.accounts().unwrap(), vec![acct(1)]);
        assert_eq!(n.lists.nodes().unwrap(), vec![node(ID_1, 30303)]);
        assert_eq!(n.node_changes(), 0);

        // A file edited out of sync: applied, not persisted, and peers are re-checked.
        std::fs::write(&n.path, "nodes-allowlist=[]\naccounts-allowlist=[]\n").unwrap();
        assert_eq!(
            call(&p, "perm_addNodesToAllowlist", Some(&node_2)),
            Err((-32000, "The permissioning allowlist configuration file is out of sync.  The changes have been applied, but not persisted to disk".into()))
        );
        assert_eq!(n.node_changes(), 1);
        // A file that no longer parses: the reload fails and the lists stay.
        std::fs::write(
            &n.path,
            "nodes-allowlist=[\"nope\"]\naccounts-allowlist=[]\n",
        )
        .unwrap();
        assert_eq!(
            call(&p, "perm_reloadPermissionsFromFile", None),
            Err((-32000, "Error reloading permissions file. Please use perm_getAccountsAllowlist and perm_getNodesAllowlist to review the current state of the allowlists".into()))
        );
        assert_eq!(
            n.lists.nodes().unwrap(),
            vec![node(ID_1, 30303), node(ID_2, 30303)]
        );
        assert_eq!(n.node_changes(), 1);
        // The file went away: the change is reverted.
        std::fs::remove_file(&n.path).unwrap();
        assert_eq!(
            call(&p, "perm_addAccountsToAllowlist", Some(&list(&[acct(9)]))),
            Err((
                -32000,
                "Unable to persist changes to allowlist configuration file. Changes reverted"
                    .into()
            ))
        );
        assert_eq!(n.lists.accounts().unwrap(), vec![acct(1)]);
    }

    #[test]
    fn disabled_permissioning_answers_not_enabled() {
        let no_lists = Perm {
            lists: None,
            p2p: true,
            on_nodes_changed: None,
        };
        let disabled = LocalAllowlists::disabled();
        let both_off = Perm {
            lists: Some(&disabled),
            ..no_lists
        };
        let accounts_only = Node::new(false, true, &[]);
        let nodes_only = Node::new(true, false, &[]);
        let accounts_perm = accounts_only.perm();
        let nodes_perm = nodes_only.perm();
        let no_p2p = Perm {
            p2p: false,
            ..nodes_only.perm()
        };
        let accounts = "Account allowlist has not been enabled";
        let nodes = "Node allowlist has not been enabled";
        let neither = "Node/Account allowlist has not been enabled";
        let p2p = "P2P has been disabled. This functionality is not available";
        let a = list(&[acct(2)]);
        let e = list(&[node(ID_2, 1)]);
        let cases: Vec<(&str, &Perm<'_>, &str, &str, &str)> = vec![
            (
                "no lists",
                &no_lists,
                "perm_addAccountsToAllowlist",
                &a,
                accounts,
            ),
            (
                "no lists",
                &no_lists,
                "perm_removeAccountsFromAllowlist",
                &a,
                accounts,
            ),
            (
                "no lists",
                &no_lists,
                "perm_getAccountsAllowlist",
                "[]",
                accounts,
            ),
            ("no lists", &no_lists, "perm_addNodesToAllowlist", &e, nodes),
            (
                "no lists",
                &no_lists,
                "perm_removeNodesFromAllowlist",
                &e,
                nodes,
            ),
            ("no lists", &no_lists, "perm_getNodesAllowlist", "[]", nodes),
            (
                "no lists",
                &no_lists,
                "perm_reloadPermissionsFromFile",
                "[]",
                neither,
            ),
            (
                "both off",
                &both_off,
                "perm_getAccountsAllowlist",
                "[]",
                accounts,
            ),
            ("both off", &both_off, "perm_getNodesAllowlist", "[]", nodes),
            (
                "both off",
                &both_off,
                "perm_reloadPermissionsFromFile",
                "[]",
                neither,
            ),
            (
                "accounts only",
                &accounts_perm,
                "perm_getNodesAllowlist",
                "[]",
                nodes,
            ),
            (
                "accounts only",
                &accounts_perm,
                "perm_addNodesToAllowlist",
                &e,
                nodes,
            ),
            (
                "nodes only",
                &nodes_perm,
                "perm_getAccountsAllowlist",
                "[]",
                accounts,
            ),
            ("no P2P", &no_p2p, "perm_getNodesAllowlist", "[]", p2p),
            ("no P2P", &no_p2p, "perm_addNodesToAllowlist", &e, p2p),
            ("no P2P", &no_p2p, "perm_removeNodesFromAllowlist", &e, p2p),
        ];
        for (what, perm, name, params, message) in cases {
            assert_eq!(
                call(perm, name, Some(params)),
                Err((-32000, message.to_string())),
                "{what}: {name}"
            );
        }
        // One list is enough for a reload, and accounts do not need P2P.
        assert_eq!(
            call(
                &accounts_only.perm(),
                "perm_reloadPermissionsFromFile",
                None
            ),
            Ok(json!("Success"))
        );
        assert_eq!(
            call(
                &Perm {
                    p2p: false,
                    ..accounts_only.perm()
                },
                "perm_getAccountsAllowlist",
                None
            ),
            Ok(json!([acct(1)]))
        );
    }
}
