//! Local allowlists: `nodes-allowlist` and `accounts-allowlist` of Besu's
//! `permissions_config.toml`, changed over `perm_*` and written back atomically.
//!
//! Besu's behaviour, messages and validation order are kept. Where Besu loses data it is not
//! copied: loading never writes the file (Besu rewrites it at start-up, so a read-only file broke
//! the account list), a change rewrites only the changed key's array (comments, formatting and
//! other keys stay) through a temporary file renamed over the original, and a failed reload keeps
//! both previous lists.

use alloy_primitives::Address;
use consort_network::{Enode, EnodeError};
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use toml_edit::{Array, Decor, DocumentMut, Item, Value};

/// The key of the node allowlist in the file.
pub const NODES_ALLOWLIST_KEY: &str = "nodes-allowlist";
/// The key of the account allowlist in the file.
pub const ACCOUNTS_ALLOWLIST_KEY: &str = "accounts-allowlist";

/// Which local allowlists are enabled, and their files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalConfig {
    /// `--permissions-nodes-config-file` when `--permissions-nodes-config-file-enabled`.
    pub nodes_file: Option<PathBuf>,
    /// `--permissions-accounts-config-file` when `--permissions-accounts-config-file-enabled`.
    /// May be the same file as `nodes_file`.
    pub accounts_file: Option<PathBuf>,
}

/// Why the allowlists could not be loaded at start-up. The messages are Besu's.
#[derive(Debug, thiserror::Error)]
pub enum LocalConfigError {
    /// The file does not exist.
    #[error("Unable to read permissioning TOML config file : {} Configuration file does not exist: {}", .path.display(), .path.display())]
    FileMissing {
        /// The file.
        path: PathBuf,
    },
    /// The file exists but may not be read.
    #[error("Unable to read permissioning TOML config file : {} Read access denied for file at: {}", .path.display(), .path.display())]
    ReadDenied {
        /// The file.
        path: PathBuf,
    },
    /// Reading the file failed otherwise.
    #[error("Unable to read permissioning TOML config file : {} {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// The file is not valid TOML.
    #[error("Unable to read permissioning TOML config file : {} Invalid TOML configuration: \n{message}", .path.display())]
    InvalidToml {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The file holds no key at all.
    #[error("Unable to read permissioning TOML config file : {} Empty TOML result: {content}", .path.display())]
    EmptyToml {
        /// The file.
        path: PathBuf,
        /// What the file holds (whitespace or comments).
        content: String,
    },
    /// The list is enabled but its key is absent (a misspelled key ends here too).
    #[error("{key} config option missing in TOML config file {}", .path.display())]
    MissingKey {
        /// `nodes-allowlist` or `accounts-allowlist`.
        key: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The key holds something other than an array (consort's message; Besu fails on a type
    /// error here too).
    #[error("{key} in TOML config file {} must be an array of strings", .path.display())]
    NotAnArray {
        /// `nodes-allowlist` or `accounts-allowlist`.
        key: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// An account is not lower-case `0x` followed by 40 hex digits.
    #[error("Invalid account {account}")]
    InvalidAccount {
        /// The entry as written.
        account: String,
    },
    /// An account is listed twice (compared case-insensitively).
    #[error("Error reloading permissions file. Invalid accounts allowlist, validation failed due to \"ERROR_DUPLICATED_ENTRY\"")]
    DuplicateAccount {
        /// The account listed twice, lower-case.
        account: String,
    },
    /// A node entry is not an enode URL.
    #[error("Invalid enode URL syntax '{url}'. Enode URL should have the following format 'enode://<node_id>@<ip>:<listening_port>[?discport=<discovery_port>]'. {reason}")]
    InvalidEnode {
        /// The entry as written.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Bootnodes or static nodes that no `nodes-allowlist` entry names.
    #[error("Specified node(s) not in nodes-allowlist [{}]", .nodes.join(", "))]
    FixedNodesNotAllowed {
        /// Their enode URLs, without discovery port.
        nodes: Vec<String>,
    },
}

/// Why a `perm_*` call failed: one variant per row of Besu's `RpcErrorType` that these methods
/// return. `Display` is Besu's message, [`AllowlistError::code`] its JSON-RPC code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowlistError {
    /// `ACCOUNT_ALLOWLIST_NOT_ENABLED`
    #[error("Account allowlist has not been enabled")]
    AccountAllowlistNotEnabled,
    /// `ACCOUNT_ALLOWLIST_EMPTY_ENTRY`
    #[error("Request contains an empty list of accounts")]
    AccountEmptyEntry,
    /// `ACCOUNT_ALLOWLIST_INVALID_ENTRY`
    #[error("Request contains an invalid account")]
    AccountInvalidEntry,
    /// `ACCOUNT_ALLOWLIST_DUPLICATED_ENTRY`
    #[error("Request contains duplicate accounts")]
    AccountDuplicatedEntry,
    /// `ACCOUNT_ALLOWLIST_EXISTING_ENTRY`
    #[error("Cannot add an existing account to allowlist")]
    AccountExistingEntry,
    /// `ACCOUNT_ALLOWLIST_ABSENT_ENTRY`
    #[error("Cannot remove an absent account from allowlist")]
    AccountAbsentEntry,
    /// `NODE_ALLOWLIST_NOT_ENABLED`
    #[error("Node allowlist has not been enabled")]
    NodeAllowlistNotEnabled,
    /// `NODE_ALLOWLIST_EMPTY_ENTRY`
    #[error("Request contains an empty list of nodes")]
    NodeEmptyEntry,
    /// `NODE_ALLOWLIST_INVALID_ENTRY`
    #[error("Request contains an invalid node")]
    NodeInvalidEntry,
    /// `NODE_ALLOWLIST_DUPLICATED_ENTRY`
    #[error("Request contains duplicate nodes")]
    NodeDuplicatedEntry,
    /// `NODE_ALLOWLIST_EXISTING_ENTRY`
    #[error("Cannot add an existing node to allowlist")]
    NodeExistingEntry,
    /// `NODE_ALLOWLIST_MISSING_ENTRY`
    #[error("Cannot remove an absent node from allowlist")]
    NodeMissingEntry,
    /// `NODE_ALLOWLIST_FIXED_NODE_CANNOT_BE_REMOVED`
    #[error("Cannot remove a fixed node (bootnode or static node) from allowlist")]
    NodeFixedNodeCannotBeRemoved,
    /// `ALLOWLIST_PERSIST_FAILURE`: the file could not be written; the change was not applied.
    #[error("Unable to persist changes to allowlist configuration file. Changes reverted")]
    PersistFailure {
        /// The I/O failure (logged; not part of Besu's message).
        reason: String,
    },
    /// `ALLOWLIST_FILE_SYNC`: the file was changed behind our back; the change was applied in
    /// memory and the file left alone.
    #[error("The permissioning allowlist configuration file is out of sync.  The changes have been applied, but not persisted to disk")]
    FileSync {
        /// What differs (logged; not part of Besu's message).
        reason: String,
    },
    /// `ALLOWLIST_RELOAD_ERROR`: the files could not be read again; the lists are unchanged.
    #[error("Error reloading permissions file. Please use perm_getAccountsAllowlist and perm_getNodesAllowlist to review the current state of the allowlists")]
    ReloadError {
        /// The start-up error the files now give (logged; not part of Besu's message).
        reason: String,
    },
    /// `PERMISSIONING_NOT_ENABLED`
    #[error("Node/Account allowlist has not been enabled")]
    PermissioningNotEnabled,
    /// `P2P_DISABLED`
    #[error("P2P has been disabled. This functionality is not available")]
    P2pDisabled,
    /// `INVALID_ACCOUNT_PARAMS`: param 0 is missing or not an array of strings.
    #[error("Invalid account params")]
    InvalidAccountParams,
    /// `INVALID_ENODE_PARAMS`: param 0 is missing or not an array of strings.
    #[error("Invalid enode params")]
    InvalidEnodeParams,
}

impl AllowlistError {
    /// The JSON-RPC error code Besu answers with.
    pub fn code(&self) -> i32 {
        match self {
            AllowlistError::InvalidAccountParams | AllowlistError::InvalidEnodeParams => -32602,
            _ => -32000,
        }
    }

    /// Besu's `RpcErrorType` name.
    pub fn kind(&self) -> &'static str {
        match self {
            AllowlistError::AccountAllowlistNotEnabled => "ACCOUNT_ALLOWLIST_NOT_ENABLED",
            AllowlistError::AccountEmptyEntry => "ACCOUNT_ALLOWLIST_EMPTY_ENTRY",
            AllowlistError::AccountInvalidEntry => "ACCOUNT_ALLOWLIST_INVALID_ENTRY",
            AllowlistError::AccountDuplicatedEntry => "ACCOUNT_ALLOWLIST_DUPLICATED_ENTRY",
            AllowlistError::AccountExistingEntry => "ACCOUNT_ALLOWLIST_EXISTING_ENTRY",
            AllowlistError::AccountAbsentEntry => "ACCOUNT_ALLOWLIST_ABSENT_ENTRY",
            AllowlistError::NodeAllowlistNotEnabled => "NODE_ALLOWLIST_NOT_ENABLED",
            AllowlistError::NodeEmptyEntry => "NODE_ALLOWLIST_EMPTY_ENTRY",
            AllowlistError::NodeInvalidEntry => "NODE_ALLOWLIST_INVALID_ENTRY",
            AllowlistError::NodeDuplicatedEntry => "NODE_ALLOWLIST_DUPLICATED_ENTRY",
            AllowlistError::NodeExistingEntry => "NODE_ALLOWLIST_EXISTING_ENTRY",
            AllowlistError::NodeMissingEntry => "NODE_ALLOWLIST_MISSING_ENTRY",
            AllowlistError::NodeFixedNodeCannotBeRemoved => {
                "NODE_ALLOWLIST_FIXED_NODE_CANNOT_BE_REMOVED"
            }
            AllowlistError::PersistFailure { .. } => "ALLOWLIST_PERSIST_FAILURE",
            AllowlistError::FileSync { .. } => "ALLOWLIST_FILE_SYNC",
            AllowlistError::ReloadError { .. } => "ALLOWLIST_RELOAD_ERROR",
            AllowlistError::PermissioningNotEnabled => "PERMISSIONING_NOT_ENABLED",
            AllowlistError::P2pDisabled => "P2P_DISABLED",
            AllowlistError::InvalidAccountParams => "INVALID_ACCOUNT_PARAMS",
            AllowlistError::InvalidEnodeParams => "INVALID_ENODE_PARAMS",
        }
    }
}

/// One `nodes-allowlist` entry: the enode and, when it differs from the TCP port, the
/// discovery port, which Besu prints and compares for equality but never for permission.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeEntry {
    enode: Enode,
    discport: Option<u16>,
}

impl NodeEntry {
    /// Parses an entry; the error is the reason for Besu's "Invalid enode URL syntax".
    fn parse(url: &str) -> Result<Self, String> {
        let enode: Enode = url.parse().map_err(|e| enode_reason(&e).to_string())?;
        let discport = discovery_port(url)?.filter(|port| *port != enode.addr.port());
        Ok(NodeEntry { enode, discport })
    }

    /// Same node ID, IP and TCP port (Besu ≤ 26.2 `sameListeningEndpoint`; discovery port
    /// ignored).
    fn listens_at(&self, node: &Enode) -> bool {
        self.enode.id == node.id
            && self.enode.addr.ip() == node.addr.ip()
            && self.enode.addr.port() == node.addr.port()
    }
}

impl fmt::Display for NodeEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.enode)?;
        if let Some(port) = self.discport {
            write!(f, "?discport={port}")?;
        }
        Ok(())
    }
}

fn enode_reason(e: &EnodeError) -> &'static str {
    match e {
        EnodeError::Format(_) => {
            "Expected 'enode://' followed by a 128 hexadecimal character node ID (no '0x'), '@', an IP address, ':' and a TCP port."
        }
        EnodeError::Key(_) => "Invalid node ID: it is not a secp256k1 public key.",
        EnodeError::Host(_) => {
            "Invalid IP address: DNS names are not supported, give the node's IP address."
        }
    }
}

/// The `discport` of an enode URL's query string. (The URL itself is parsed by [`Enode`], which
/// drops the query.)
fn discovery_port(url: &str) -> Result<Option<u16>, String> {
    let Some((_, query)) = url.trim().split_once('?') else {
        return Ok(None);
    };
    for pair in query.split('&') {
        if let Some(port) = pair.strip_prefix("discport=") {
            return port
                .parse()
                .map(Some)
                .map_err(|_| format!("Invalid discovery port: '{port}'."));
        }
    }
    Ok(None)
}

/// `0x` (lower-case, as Besu checks the raw string) and 40 hex digits.
fn parse_account(s: &str) -> Option<Address> {
    let digits = s.strip_prefix("0x")?;
    if digits.len() != 40 {
        return None;
    }
    let bytes: [u8; 20] = hex::decode(digits).ok()?.try_into().ok()?;
    Some(Address::from(bytes))
}

fn account_string(a: &Address) -> String {
    format!("0x{}", hex::encode(a))
}

/// What the two lists share for persistence.
trait Entry: Clone + PartialEq {
    const KEY: &'static str;
    /// An entry as found in the file when checking it; `None` if it names nothing (it then
    /// matches no in-memory entry).
    fn from_file(raw: &str) -> Option<Self>;
    /// The entry as written to the file.
    fn to_file(&self) -> String;
}

impl Entry for NodeEntry {
    const KEY: &'static str = NODES_ALLOWLIST_KEY;

    fn from_file(raw: &str) -> Option<Self> {
        NodeEntry::parse(raw).ok()
    }

    fn to_file(&self) -> String {
        self.to_string()
    }
}

impl Entry for Address {
    const KEY: &'static str = ACCOUNTS_ALLOWLIST_KEY;

    fn from_file(raw: &str) -> Option<Self> {
        parse_account(&raw.to_lowercase())
    }

    fn to_file(&self) -> String {
        account_string(self)
    }
}

/// An enabled list and its file.
#[derive(Debug)]
struct List<T> {
    path: PathBuf,
    entries: RwLock<Vec<T>>,
}

impl<T: Entry> List<T> {
    fn new(path: &Path, entries: Vec<T>) -> Self {
        List {
            path: path.to_path_buf(),
            entries: RwLock::new(entries),
        }
    }

    fn snapshot(&self) -> Vec<T> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn replace(&self, entries: Vec<T>) {
        *self.entries.write().unwrap_or_else(PoisonError::into_inner) = entries;
    }

    /// Writes `new` to the file, then makes it the list. The caller holds the change lock.
    fn commit(&self, old: &[T], new: Vec<T>) -> Result<(), AllowlistError> {
        match persist(&self.path, old, &new) {
            Ok(()) => {
                self.replace(new);
                Ok(())
            }
            Err(PersistError::OutOfSync(reason)) => {
                tracing::warn!(
                    file = %self.path.display(),
                    "{} changed in memory but not written: the file is out of sync ({reason})",
                    T::KEY
                );
                self.replace(new);
                Err(AllowlistError::FileSync { reason })
            }
            Err(PersistError::Io(e)) => {
                tracing::warn!(
                    file = %self.path.display(),
                    "{} change reverted: the file could not be written ({e})",
                    T::KEY
                );
                Err(AllowlistError::PersistFailure {
                    reason: e.to_string(),
                })
            }
        }
    }
}

/// The local node and account allowlists. A disabled list permits everything.
#[derive(Debug)]
pub struct LocalAllowlists {
    nodes: Option<List<NodeEntry>>,
    accounts: Option<List<Address>>,
    /// Bootnodes and static nodes: they must be listed and cannot be removed.
    fixed: Vec<Enode>,
    /// Serialises changes and reloads, which read and write the files.
    changes: Mutex<()>,
}

impl LocalAllowlists {
    /// Both lists disabled.
    pub fn disabled() -> Self {
        LocalAllowlists {
            nodes: None,
            accounts: None,
            fixed: Vec::new(),
            changes: Mutex::new(()),
        }
    }

    /// Reads the enabled lists (never writing the files) and checks that every fixed node
    /// (bootnode or static node) is allowed when the node list is enabled.
    pub fn load(config: &LocalConfig, fixed_nodes: &[Enode]) -> Result<Self, LocalConfigError> {
        let nodes = config
            .nodes_file
            .as_deref()
            .map(|path| read_nodes(path).map(|entries| List::new(path, entries)))
            .transpose()?;
        let accounts = config
            .accounts_file
            .as_deref()
            .map(|path| read_accounts(path).map(|entries| List::new(path, entries)))
            .transpose()?;
        if let Some(list) = &nodes {
            let entries = list.snapshot();
            let missing: Vec<String> = fixed_nodes
                .iter()
                .filter(|f| !entries.iter().any(|e| e.listens_at(f)))
                .map(ToString::to_string)
                .collect();
            if !missing.is_empty() {
                return Err(LocalConfigError::FixedNodesNotAllowed { nodes: missing });
            }
        }
        Ok(LocalAllowlists {
            nodes,
            accounts,
            fixed: fixed_nodes.to_vec(),
            changes: Mutex::new(()),
        })
    }

    /// Whether `--permissions-nodes-config-file-enabled`.
    pub fn nodes_enabled(&self) -> bool {
        self.nodes.is_some()
    }

    /// Whether `--permissions-accounts-config-file-enabled`.
    pub fn accounts_enabled(&self) -> bool {
        self.accounts.is_some()
    }

    /// The listed enodes with node ID `id` (none when the list is disabled).
    pub fn nodes_with_id(&self, id: &[u8; 64]) -> Vec<Enode> {
        self.nodes.as_ref().map_or_else(Vec::new, |list| {
            list.entries
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .filter(|e| e.enode.id == *id)
                .map(|e| e.enode.clone())
                .collect()
        })
    }

    /// Whether `node` may be connected to: an entry has its node ID, IP and TCP port. The local
    /// node is the caller's to allow.
    pub fn node_permitted(&self, node: &Enode) -> bool {
        self.nodes.as_ref().is_none_or(|list| {
            list.entries
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .any(|e| e.listens_at(node))
        })
    }

    /// Whether `sender` may transact.
    pub fn account_permitted(&self, sender: &Address) -> bool {
        self.accounts.as_ref().is_none_or(|list| {
            list.entries
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(sender)
        })
    }

    /// `perm_getNodesAllowlist`: enode URLs in insertion order.
    pub fn nodes(&self) -> Result<Vec<String>, AllowlistError> {
        let list = self.node_list()?;
        Ok(list.snapshot().iter().map(ToString::to_string).collect())
    }

    /// `perm_getAccountsAllowlist`: lower-case `0x` addresses in insertion order.
    pub fn accounts(&self) -> Result<Vec<String>, AllowlistError> {
        let list = self.account_list()?;
        Ok(list.snapshot().iter().map(account_string).collect())
    }

    /// `perm_addNodesToAllowlist`.
    pub fn add_nodes(&self, entries: &[String]) -> Result<(), AllowlistError> {
        let list = self.node_list()?;
        let batch = node_batch(entries)?;
        let _change = self.change_lock();
        let old = list.snapshot();
        if batch.iter().any(|e| old.contains(e)) {
            return Err(AllowlistError::NodeExistingEntry);
        }
        let mut new = old.clone();
        new.extend(batch);
        list.commit(&old, new)
    }

    /// `perm_removeNodesFromAllowlist`. Bootnodes and static nodes cannot be removed.
    pub fn remove_nodes(&self, entries: &[String]) -> Result<(), AllowlistError> {
        let list = self.node_list()?;
        let batch = node_batch(entries)?;
        if batch
            .iter()
            .any(|e| self.fixed.iter().any(|f| e.listens_at(f)))
        {
            return Err(AllowlistError::NodeFixedNodeCannotBeRemoved);
        }
        let _change = self.change_lock();
        let old = list.snapshot();
        if batch.iter().any(|e| !old.contains(e)) {
            return Err(AllowlistError::NodeMissingEntry);
        }
        let new = old.iter().filter(|e| !batch.contains(e)).cloned().collect();
        list.commit(&old, new)
    }

    /// `perm_addAccountsToAllowlist`.
    pub fn add_accounts(&self, entries: &[String]) -> Result<(), AllowlistError> {
        let list = self.account_list()?;
        let batch = account_batch(entries)?;
        let _change = self.change_lock();
        let old = list.snapshot();
        if batch.iter().any(|a| old.contains(a)) {
            return Err(AllowlistError::AccountExistingEntry);
        }
        let mut new = old.clone();
        new.extend(batch);
        list.commit(&old, new)
    }

    /// `perm_removeAccountsFromAllowlist`.
    pub fn remove_accounts(&self, entries: &[String]) -> Result<(), AllowlistError> {
        let list = self.account_list()?;
        let batch = account_batch(entries)?;
        let _change = self.change_lock();
        let old = list.snapshot();
        if batch.iter().any(|a| !old.contains(a)) {
            return Err(AllowlistError::AccountAbsentEntry);
        }
        let new = old.iter().filter(|a| !batch.contains(a)).copied().collect();
        list.commit(&old, new)
    }

    /// `perm_reloadPermissionsFromFile`: reads the enabled lists again, as at start-up. On any
    /// error both lists stay as they were (Besu keeps a reloaded account list when the node list
    /// then fails).
    pub fn reload(&self) -> Result<(), AllowlistError> {
        if self.nodes.is_none() && self.accounts.is_none() {
            return Err(AllowlistError::PermissioningNotEnabled);
        }
        let _change = self.change_lock();
        let read = || -> Result<_, LocalConfigError> {
            let accounts = self
                .accounts
                .as_ref()
                .map(|l| read_accounts(&l.path))
                .transpose()?;
            let nodes = self
                .nodes
                .as_ref()
                .map(|l| read_nodes(&l.path))
                .transpose()?;
            Ok((accounts, nodes))
        };
        match read() {
            Ok((accounts, nodes)) => {
                if let (Some(list), Some(entries)) = (&self.accounts, accounts) {
                    list.replace(entries);
                }
                if let (Some(list), Some(entries)) = (&self.nodes, nodes) {
                    list.replace(entries);
                }
                tracing::info!("permissions allowlists reloaded from file");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(
                    "Error reloading permissions file. In-memory allowlists kept. Details: {e}"
                );
                Err(AllowlistError::ReloadError {
                    reason: e.to_string(),
                })
            }
        }
    }

    fn node_list(&self) -> Result<&List<NodeEntry>, AllowlistError> {
        self.nodes
            .as_ref()
            .ok_or(AllowlistError::NodeAllowlistNotEnabled)
    }

    fn account_list(&self) -> Result<&List<Address>, AllowlistError> {
        self.accounts
            .as_ref()
            .ok_or(AllowlistError::AccountAllowlistNotEnabled)
    }

    fn change_lock(&self) -> MutexGuard<'_, ()> {
        self.changes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A node batch checked in Besu's order: empty, duplicate strings, unparsable. Two strings
/// naming the same entry (upper-case hex, say) are duplicates too.
fn node_batch(entries: &[String]) -> Result<Vec<NodeEntry>, AllowlistError> {
    if entries.is_empty() {
        return Err(AllowlistError::NodeEmptyEntry);
    }
    if has_duplicates(entries) {
        return Err(AllowlistError::NodeDuplicatedEntry);
    }
    let batch = entries
        .iter()
        .map(|e| NodeEntry::parse(e).map_err(|_| AllowlistError::NodeInvalidEntry))
        .collect::<Result<Vec<_>, _>>()?;
    if has_duplicates(&batch) {
        return Err(AllowlistError::NodeDuplicatedEntry);
    }
    Ok(batch)
}

/// An account batch checked in Besu's order after lower-casing: empty, invalid, duplicates.
fn account_batch(entries: &[String]) -> Result<Vec<Address>, AllowlistError> {
    if entries.is_empty() {
        return Err(AllowlistError::AccountEmptyEntry);
    }
    let batch = entries
        .iter()
        .map(|e| parse_account(&e.to_lowercase()).ok_or(AllowlistError::AccountInvalidEntry))
        .collect::<Result<Vec<_>, _>>()?;
    if has_duplicates(&batch) {
        return Err(AllowlistError::AccountDuplicatedEntry);
    }
    Ok(batch)
}

fn has_duplicates<T: PartialEq>(items: &[T]) -> bool {
    items
        .iter()
        .enumerate()
        .any(|(i, a)| items.iter().skip(i + 1).any(|b| a == b))
}

fn read_document(path: &Path) -> Result<DocumentMut, LocalConfigError> {
    let text = fs::read_to_string(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => LocalConfigError::FileMissing {
            path: path.to_path_buf(),
        },
        io::ErrorKind::PermissionDenied => LocalConfigError::ReadDenied {
            path: path.to_path_buf(),
        },
        _ => LocalConfigError::Read {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let doc: DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| LocalConfigError::InvalidToml {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
    if doc.is_empty() {
        return Err(LocalConfigError::EmptyToml {
            path: path.to_path_buf(),
            content: text,
        });
    }
    Ok(doc)
}

/// The strings of `key`'s array; a non-string element is taken as written, so it fails as an
/// entry (as in Besu, which calls `toString` on it).
fn read_list(path: &Path, key: &'static str) -> Result<Vec<String>, LocalConfigError> {
    let doc = read_document(path)?;
    let item = doc.get(key).ok_or_else(|| LocalConfigError::MissingKey {
        key,
        path: path.to_path_buf(),
    })?;
    let array = item
        .as_array()
        .ok_or_else(|| LocalConfigError::NotAnArray {
            key,
            path: path.to_path_buf(),
        })?;
    Ok(array
        .iter()
        .map(|v| match v.as_str() {
            Some(s) => s.to_string(),
            None => {
                let mut bare = v.clone();
                bare.decor_mut().clear();
                bare.to_string()
            }
        })
        .collect())
}

fn read_nodes(path: &Path) -> Result<Vec<NodeEntry>, LocalConfigError> {
    let mut entries: Vec<NodeEntry> = Vec::new();
    for url in read_list(path, NODES_ALLOWLIST_KEY)? {
        let entry = NodeEntry::parse(&url)
            .map_err(|reason| LocalConfigError::InvalidEnode { url, reason })?;
        if entries.contains(&entry) {
            // Besu keeps both; one is enough, and the next write drops the copy.
            tracing::warn!(file = %path.display(), "{entry} is listed twice in {NODES_ALLOWLIST_KEY}");
        } else {
            entries.push(entry);
        }
    }
    Ok(entries)
}

fn read_accounts(path: &Path) -> Result<Vec<Address>, LocalConfigError> {
    let raw = read_list(path, ACCOUNTS_ALLOWLIST_KEY)?;
    let accounts = raw
        .into_iter()
        .map(|s| parse_account(&s).ok_or(LocalConfigError::InvalidAccount { account: s }))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, a) in accounts.iter().enumerate() {
        if accounts.iter().skip(i + 1).any(|b| a == b) {
            return Err(LocalConfigError::DuplicateAccount {
                account: account_string(a),
            });
        }
    }
    Ok(accounts)
}

enum PersistError {
    /// The file no longer holds every entry of the list in memory (or is no longer TOML).
    OutOfSync(String),
    /// Reading or writing failed.
    Io(io::Error),
}

/// Writes `new` as `T::KEY`'s array, after checking that the file still holds every entry of
/// `old`. Everything else in the file is kept, and so is the formatting of entries kept.
fn persist<T: Entry>(path: &Path, old: &[T], new: &[T]) -> Result<(), PersistError> {
    // A symlinked file (a Kubernetes ConfigMap, say) is replaced where it points, keeping the link.
    let target = fs::canonicalize(path).map_err(PersistError::Io)?;
    // The rename below needs only the directory to be writable; like Besu, refuse a file that
    // may not be written. Opening without truncating changes nothing.
    OpenOptions::new()
        .write(true)
        .open(&target)
        .map_err(PersistError::Io)?;
    let text = fs::read_to_string(&target).map_err(PersistError::Io)?;
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| PersistError::OutOfSync(format!("the file is no longer valid TOML: {e}")))?;
    let old_array = doc.get(T::KEY).and_then(Item::as_array).cloned();
    let in_file: Vec<(Option<T>, Value)> = old_array
        .as_ref()
        .map(|a| {
            a.iter()
                .map(|v| (v.as_str().and_then(T::from_file), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(missing) = old
        .iter()
        .find(|e| !in_file.iter().any(|(f, _)| f.as_ref() == Some(*e)))
    {
        return Err(PersistError::OutOfSync(format!(
            "{} is no longer in {}",
            missing.to_file(),
            T::KEY
        )));
    }
    let array = rebuilt(old_array.as_ref(), &in_file, new);
    match doc.get_mut(T::KEY) {
        Some(item) => {
            let mut value = Value::Array(array);
            if let Some(previous) = item.as_value() {
                *value.decor_mut() = previous.decor().clone();
            }
            *item = Item::Value(value);
        }
        None => {
            doc.insert(T::KEY, Item::Value(Value::Array(array)));
        }
    }
    write_atomically(&target, &doc.to_string()).map_err(PersistError::Io)
}

/// The array holding `new`: entries already in the file keep their formatting (and the
/// comments before them), new ones copy the last entry's.
fn rebuilt<T: Entry>(old: Option<&Array>, in_file: &[(Option<T>, Value)], new: &[T]) -> Array {
    let mut array = Array::new();
    let Some(old) = old.filter(|a| !a.is_empty()) else {
        for entry in new {
            array.push(entry.to_file());
        }
        if let Some(old) = old {
            array.set_trailing(old.trailing().clone());
        }
        return array;
    };
    let prefix_of = |v: &Value| {
        v.decor()
            .prefix()
            .and_then(|p| p.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let first_prefix = old.get(0).map(prefix_of).unwrap_or_default();
    let last = old.len().checked_sub(1).and_then(|i| old.get(i));
    let template = last.map(|last| {
        let prefix = prefix_of(last);
        let suffix = last
            .decor()
            .suffix()
            .and_then(|s| s.as_str())
            .unwrap_or_default()
            .to_string();
        // `["a"]` has no separator to copy.
        let prefix = if prefix.is_empty() {
            " ".into()
        } else {
            prefix
        };
        Decor::new(prefix, suffix)
    });
    for entry in new {
        let value = match in_file.iter().find(|(f, _)| f.as_ref() == Some(entry)) {
            Some((_, v)) => v.clone(),
            None => {
                let mut v = Value::from(entry.to_file());
                if let Some(decor) = &template {
                    *v.decor_mut() = decor.clone();
                }
                v
            }
        };
        array.push_formatted(value);
    }
    // A one-line array whose first entry was removed: the new first one sits right after `[`.
    if let Some(first) = array.get_mut(0) {
        if !prefix_of(&*first).contains('\n') {
            first.decor_mut().set_prefix(first_prefix);
        }
    }
    array.set_trailing(old.trailing().clone());
    array.set_trailing_comma(old.trailing_comma());
    array
}

/// Replaces `target` with `contents` all at once: a temporary file in the same directory,
/// flushed to disk, renamed over it. A failure leaves `target` as it was.
fn write_atomically(target: &Path, contents: &str) -> io::Result<()> {
    let dir = target
        .parent()
        .ok_or_else(|| io::Error::other("the file has no directory"))?;
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::other("the path names no file"))?;
    // One fixed name: changes are serialised, and a copy left by a crash is overwritten.
    let temp = dir.join(format!(".{}.consort-tmp", name.to_string_lossy()));
    let written = (|| {
        let permissions = fs::metadata(target)?.permissions();
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)?;
        file.write_all(contents.as_bytes())?;
        file.set_permissions(permissions)?;
        file.sync_all()?;
        fs::rename(&temp, target)
    })();
    match written {
        Ok(()) => {
            // The rename itself reaches the disk with the directory.
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secp256k1::SECP256K1;
    use std::os::unix::fs::PermissionsExt;

    /// The node ID of secret key `[n; 32]`.
    fn id(n: u8) -> String {
        let key = secp256k1::SecretKey::from_slice(&[n; 32]).unwrap();
        hex::encode(&key.public_key(SECP256K1).serialize_uncompressed()[1..])
    }

    fn url(n: u8, ip: &str, port: u16) -> String {
        format!("enode://{}@{ip}:{port}", id(n))
    }

    fn enode(n: u8, ip: &str, port: u16) -> Enode {
        url(n, ip, port).parse().unwrap()
    }

    fn acct(n: u8) -> String {
        format!("0x{}", hex::encode([n; 20]))
    }

    /// A file holding `text` in a fresh directory.
    struct Fixture {
        dir: tempfile::TempDir,
        path: PathBuf,
    }

    impl Fixture {
        fn new(text: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("permissions_config.toml");
            fs::write(&path, text).unwrap();
            Fixture { dir, path }
        }

        fn both(&self) -> LocalConfig {
            LocalConfig {
                nodes_file: Some(self.path.clone()),
                accounts_file: Some(self.path.clone()),
            }
        }

        fn load(&self) -> LocalAllowlists {
            LocalAllowlists::load(&self.both(), &[]).unwrap()
        }

        fn text(&self) -> String {
            fs::read_to_string(&self.path).unwrap()
        }
    }

    fn file_with(nodes: &[String], accounts: &[String]) -> String {
        let quote = |v: &[String]| {
            v.iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "nodes-allowlist=[{}]\naccounts-allowlist=[{}]\n",
            quote(nodes),
            quote(accounts)
        )
    }

    #[test]
    fn a_besu_file_loads_with_both_lists_in_order() {
        let text = format!(
            "# Besu's sample\naccounts-allowlist=[\"{}\", \"0x{}\"]\nnodes-allowlist=[\n \"{}\",\n \"{}?discport=30301\",\n \"{}?discport=30303\",\n]\nother-key = 1\n",
            acct(0xb9),
            hex::encode([0xABu8; 20]).to_uppercase(),
            url(1, "192.168.0.1", 30303),
            url(2, "10.0.0.2", 30303),
            url(3, "[::1]", 30303),
        );
        let f = Fixture::new(&text);
        let lists = f.load();
        assert!(lists.nodes_enabled() && lists.accounts_enabled());
        assert_eq!(
            lists.nodes().unwrap(),
            vec![
                url(1, "192.168.0.1", 30303),
                format!("{}?discport=30301", url(2, "10.0.0.2", 30303)),
                // The same discovery port as the TCP port is not printed.
                url(3, "[::1]", 30303),
            ]
        );
        assert_eq!(
            lists.accounts().unwrap(),
            vec![acct(0xb9), acct(0xab)],
            "accounts are given lower-case"
        );
        assert_eq!(f.text(), text, "loading does not write the file");
    }

    #[test]
    fn nodes_match_on_id_ip_and_tcp_port_only() {
        let f = Fixture::new(&format!(
            "nodes-allowlist=[\"{}?discport=1\"]\n",
            url(1, "10.0.0.1", 30303)
        ));
        let lists = LocalAllowlists::load(
            &LocalConfig {
                nodes_file: Some(f.path.clone()),
                accounts_file: None,
            },
            &[],
        )
        .unwrap();
        let cases = [
            ("the listed node", enode(1, "10.0.0.1", 30303), true),
            ("another node ID", enode(2, "10.0.0.1", 30303), false),
            ("another IP", enode(1, "10.0.0.2", 30303), false),
            ("another TCP port", enode(1, "10.0.0.1", 30304), false),
        ];
        for (what, node, permitted) in cases {
            assert_eq!(lists.node_permitted(&node), permitted, "{what}");
        }
        assert!(!lists.accounts_enabled());
        assert!(lists.account_permitted(&Address::repeat_byte(1)));
        assert_eq!(
            lists.accounts(),
            Err(AllowlistError::AccountAllowlistNotEnabled)
        );
    }

    #[test]
    fn disabled_lists_permit_everything_and_refuse_changes() {
        let lists = LocalAllowlists::disabled();
        assert!(!lists.nodes_enabled() && !lists.accounts_enabled());
        assert!(lists.node_permitted(&enode(1, "10.0.0.1", 1)));
        assert!(lists.account_permitted(&Address::ZERO));
        assert_eq!(lists.nodes(), Err(AllowlistError::NodeAllowlistNotEnabled));
        assert_eq!(
            lists.add_nodes(&[url(1, "10.0.0.1", 1)]),
            Err(AllowlistError::NodeAllowlistNotEnabled)
        );
        assert_eq!(
            lists.remove_accounts(&[acct(1)]),
            Err(AllowlistError::AccountAllowlistNotEnabled)
        );
        assert_eq!(lists.reload(), Err(AllowlistError::PermissioningNotEnabled));
    }

    #[test]
    fn empty_lists_deny_everyone() {
        let f = Fixture::new("nodes-allowlist=[]\naccounts-allowlist=[]\n");
        let lists = f.load();
        assert!(!lists.node_permitted(&enode(1, "127.0.0.1", 30303)));
        assert!(!lists.account_permitted(&Address::repeat_byte(1)));
        assert_eq!(lists.nodes().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn start_up_errors_carry_besus_messages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        let p = path.display().to_string();
        let bad_id = format!("enode://{}@127.0.0.1:30303", "00".repeat(64));
        let cases: Vec<(&str, Option<String>, bool, bool, String)> = vec![
            (
                "no file",
                None,
                true,
                false,
                format!("Unable to read permissioning TOML config file : {p} Configuration file does not exist: {p}"),
            ),
            (
                "bad TOML",
                Some("nodes-allowlist=[".into()),
                true,
                false,
                format!("Unable to read permissioning TOML config file : {p} Invalid TOML configuration: \n"),
            ),
            (
                "empty file",
                Some("# nothing\n".into()),
                true,
                false,
                format!("Unable to read permissioning TOML config file : {p} Empty TOML result: # nothing\n"),
            ),
            (
                "nodes key missing",
                Some("nodes-allowlst=[]\n".into()),
                true,
                false,
                format!("nodes-allowlist config option missing in TOML config file {p}"),
            ),
            (
                "accounts key missing",
                Some("nodes-allowlist=[]\n".into()),
                true,
                true,
                format!("accounts-allowlist config option missing in TOML config file {p}"),
            ),
            (
                "not an array",
                Some("nodes-allowlist=\"x\"\n".into()),
                true,
                false,
                format!("nodes-allowlist in TOML config file {p} must be an array of strings"),
            ),
            (
                "upper-case 0X",
                Some(format!("accounts-allowlist=[\"0X{}\"]\n", "ab".repeat(20))),
                false,
                true,
                format!("Invalid account 0X{}", "ab".repeat(20)),
            ),
            (
                "short account",
                Some("accounts-allowlist=[\"0x1234\"]\n".into()),
                false,
                true,
                "Invalid account 0x1234".into(),
            ),
            (
                "non-hex account",
                Some(format!("accounts-allowlist=[\"0x{}\"]\n", "zz".repeat(20))),
                false,
                true,
                format!("Invalid account 0x{}", "zz".repeat(20)),
            ),
            (
                "duplicate accounts, differing in case",
                Some(format!(
                    "accounts-allowlist=[\"{}\", \"0x{}\"]\n",
                    acct(0xab),
                    "AB".repeat(20)
                )),
                false,
                true,
                "Error reloading permissions file. Invalid accounts allowlist, validation failed due to \"ERROR_DUPLICATED_ENTRY\"".into(),
            ),
            (
                "bad enode",
                Some("nodes-allowlist=[\"enode://abc@127.0.0.1:1\"]\n".into()),
                true,
                false,
                "Invalid enode URL syntax 'enode://abc@127.0.0.1:1'. Enode URL should have the following format 'enode://<node_id>@<ip>:<listening_port>[?discport=<discovery_port>]'. Expected".into(),
            ),
            (
                "node ID off the curve",
                Some(format!("nodes-allowlist=[\"{bad_id}\"]\n")),
                true,
                false,
                format!("Invalid enode URL syntax '{bad_id}'. Enode URL should have the following format 'enode://<node_id>@<ip>:<listening_port>[?discport=<discovery_port>]'. Invalid node ID"),
            ),
            (
                "bad discovery port",
                Some(format!("nodes-allowlist=[\"{}?discport=x\"]\n", url(1, "127.0.0.1", 1))),
                true,
                false,
                "Invalid discovery port: 'x'.".into(),
            ),
        ];
        for (what, text, nodes, accounts, expected) in cases {
            let _ = fs::remove_file(&path);
            if let Some(text) = &text {
                fs::write(&path, text).unwrap();
            }
            let config = LocalConfig {
                nodes_file: nodes.then(|| path.clone()),
                accounts_file: accounts.then(|| path.clone()),
            };
            let err = LocalAllowlists::load(&config, &[]).unwrap_err().to_string();
            assert!(err.contains(&expected), "{what}: {err}");
            if let Some(text) = text {
                assert_eq!(
                    fs::read_to_string(&path).unwrap(),
                    text,
                    "{what}: file untouched"
                );
            }
        }
    }

    #[test]
    fn every_fixed_node_must_be_listed() {
        let f = Fixture::new(&format!(
            "nodes-allowlist=[\"{}?discport=30301\", \"{}\"]\n",
            url(1, "10.0.0.1", 30303),
            url(2, "10.0.0.2", 30303)
        ));
        let config = LocalConfig {
            nodes_file: Some(f.path.clone()),
            accounts_file: None,
        };
        LocalAllowlists::load(
            &config,
            &[enode(1, "10.0.0.1", 30303), enode(2, "10.0.0.2", 30303)],
        )
        .expect("the discovery port does not matter");
        let err = LocalAllowlists::load(
            &config,
            &[
                enode(1, "10.0.0.1", 30303),
                enode(3, "10.0.0.3", 30303),
                enode(2, "10.0.0.2", 30304),
            ],
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Specified node(s) not in nodes-allowlist [{}, {}]",
                url(3, "10.0.0.3", 30303),
                url(2, "10.0.0.2", 30304)
            )
        );
        // Without a node list, fixed nodes need no entry.
        LocalAllowlists::load(&LocalConfig::default(), &[enode(3, "10.0.0.3", 1)]).unwrap();
    }

    #[test]
    fn node_changes_are_validated_in_besus_order() {
        let listed = url(1, "10.0.0.1", 30303);
        let fixed = url(2, "10.0.0.2", 30303);
        let f = Fixture::new(&file_with(&[listed.clone(), fixed.clone()], &[]));
        let lists = LocalAllowlists::load(&f.both(), &[fixed.parse().unwrap()]).unwrap();
        let new = url(3, "10.0.0.3", 30303);
        let upper = format!("enode://{}@10.0.0.3:30303", id(3).to_uppercase());
        type Op = fn(&LocalAllowlists, &[String]) -> Result<(), AllowlistError>;
        let add: Op = LocalAllowlists::add_nodes;
        let remove: Op = LocalAllowlists::remove_nodes;
        let cases: Vec<(&str, Op, Vec<String>, AllowlistError)> = vec![
            ("add nothing", add, vec![], AllowlistError::NodeEmptyEntry),
            (
                "duplicates come before parsing",
                add,
                vec!["x".into(), "x".into()],
                AllowlistError::NodeDuplicatedEntry,
            ),
            (
                "one invalid entry",
                add,
                vec![new.clone(), "enode://x@1.2.3.4:1".into()],
                AllowlistError::NodeInvalidEntry,
            ),
            (
                "the same node spelled twice",
                add,
                vec![new.clone(), upper],
                AllowlistError::NodeDuplicatedEntry,
            ),
            (
                "add an existing node",
                add,
                vec![new.clone(), listed.clone()],
                AllowlistError::NodeExistingEntry,
            ),
            (
                "remove nothing",
                remove,
                vec![],
                AllowlistError::NodeEmptyEntry,
            ),
            (
                "remove a fixed node, even with a discovery port",
                remove,
                vec![listed.clone(), format!("{fixed}?discport=9")],
                AllowlistError::NodeFixedNodeCannotBeRemoved,
            ),
            (
                "fixed is checked before absent",
                remove,
                vec![new.clone(), fixed.clone()],
                AllowlistError::NodeFixedNodeCannotBeRemoved,
            ),
            (
                "remove an absent node",
                remove,
                vec![listed.clone(), new.clone()],
                AllowlistError::NodeMissingEntry,
            ),
            (
                "remove with another discovery port",
                remove,
                vec![format!("{listed}?discport=1")],
                AllowlistError::NodeMissingEntry,
            ),
        ];
        let before = f.text();
        for (what, op, batch, expected) in cases {
            assert_eq!(op(&lists, &batch), Err(expected), "{what}");
            assert_eq!(
                lists.nodes().unwrap(),
                vec![listed.clone(), fixed.clone()],
                "{what}"
            );
        }
        assert_eq!(f.text(), before, "refused batches write nothing");
        // Besu's EXISTING_ENTRY compares the discovery port too.
        let other_disc = format!("{listed}?discport=30301");
        lists.add_nodes(std::slice::from_ref(&other_disc)).unwrap();
        lists.add_nodes(std::slice::from_ref(&new)).unwrap();
        lists.remove_nodes(std::slice::from_ref(&listed)).unwrap();
        assert_eq!(lists.nodes().unwrap(), vec![fixed, other_disc, new]);
    }

    #[test]
    fn account_changes_are_validated_in_besus_order() {
        let f = Fixture::new(&file_with(&[], &[acct(1)]));
        let lists = f.load();
        type Op = fn(&LocalAllowlists, &[String]) -> Result<(), AllowlistError>;
        let add: Op = LocalAllowlists::add_accounts;
        let remove: Op = LocalAllowlists::remove_accounts;
        let cases: Vec<(&str, Op, Vec<String>, AllowlistError)> = vec![
            (
                "add nothing",
                add,
                vec![],
                AllowlistError::AccountEmptyEntry,
            ),
            (
                "invalid comes before duplicates",
                add,
                vec![acct(2), acct(2), "0x12".into()],
                AllowlistError::AccountInvalidEntry,
            ),
            (
                "no 0x",
                add,
                vec!["ab".repeat(20)],
                AllowlistError::AccountInvalidEntry,
            ),
            (
                "duplicates after lower-casing",
                add,
                vec![acct(0xab), format!("0X{}", "AB".repeat(20))],
                AllowlistError::AccountDuplicatedEntry,
            ),
            (
                "add an existing account",
                add,
                vec![acct(2), acct(1).to_uppercase()],
                AllowlistError::AccountExistingEntry,
            ),
            (
                "remove nothing",
                remove,
                vec![],
                AllowlistError::AccountEmptyEntry,
            ),
            (
                "remove an invalid account",
                remove,
                vec!["0x".into()],
                AllowlistError::AccountInvalidEntry,
            ),
            (
                "remove an absent account",
                remove,
                vec![acct(1), acct(2)],
                AllowlistError::AccountAbsentEntry,
            ),
        ];
        for (what, op, batch, expected) in cases {
            assert_eq!(op(&lists, &batch), Err(expected), "{what}");
            assert_eq!(lists.accounts().unwrap(), vec![acct(1)], "{what}");
        }
        // RPC input is lower-cased, so 0X... is accepted.
        lists
            .add_accounts(&[format!("0X{}", "AB".repeat(20)), acct(3)])
            .unwrap();
        assert!(lists.account_permitted(&Address::repeat_byte(0xab)));
        lists.remove_accounts(&[acct(1)]).unwrap();
        assert_eq!(lists.accounts().unwrap(), vec![acct(0xab), acct(3)]);
        assert!(!lists.account_permitted(&Address::repeat_byte(1)));
    }

    #[test]
    fn changes_are_written_keeping_comments_other_keys_and_formatting() {
        let rest = "# Managed by ops; do not reorder.\nname = \"validators\" # unrelated key\n\n[extra]\nx = 1\n";
        // The lists at the top, before the table, so they stay top-level keys.
        let text = format!(
            "# accounts that may transact\naccounts-allowlist = [\"{}\"] # trailing\nnodes-allowlist = [\n  # the first validator\n  \"{}\",\n  \"{}\",\n]\n{rest}",
            acct(1),
            url(1, "10.0.0.1", 30303),
            url(2, "10.0.0.2", 30303),
        );
        let f = Fixture::new(&text);
        let lists = f.load();
        lists.add_accounts(&[acct(2)]).unwrap();
        lists
            .add_nodes(&[format!("{}?discport=30301", url(3, "10.0.0.3", 30303))])
            .unwrap();
        lists.remove_nodes(&[url(2, "10.0.0.2", 30303)]).unwrap();
        let expected = format!(
            "# accounts that may transact\naccounts-allowlist = [\"{}\", \"{}\"] # trailing\nnodes-allowlist = [\n  # the first validator\n  \"{}\",\n  \"{}?discport=30301\",\n]\n# Managed by ops; do not reorder.\nname = \"validators\" # unrelated key\n\n[extra]\nx = 1\n",
            acct(1),
            acct(2),
            url(1, "10.0.0.1", 30303),
            url(3, "10.0.0.3", 30303),
        );
        assert_eq!(f.text(), expected);
        // What was written is what a restart reads.
        let again = f.load();
        assert_eq!(again.nodes().unwrap(), lists.nodes().unwrap());
        assert_eq!(again.accounts().unwrap(), lists.accounts().unwrap());
        // Removing the first entry of a one-line array keeps it tidy.
        lists.remove_accounts(&[acct(1)]).unwrap();
        assert!(
            f.text().contains(&format!(
                "accounts-allowlist = [\"{}\"] # trailing\n",
                acct(2)
            )),
            "{}",
            f.text()
        );
        assert!(
            !f.dir
                .path()
                .join(".permissions_config.toml.consort-tmp")
                .exists(),
            "no temporary file is left"
        );
    }

    #[test]
    fn an_empty_list_gets_default_formatting() {
        let f = Fixture::new("accounts-allowlist=[]\nkeep = true\n");
        let lists = LocalAllowlists::load(
            &LocalConfig {
                nodes_file: None,
                accounts_file: Some(f.path.clone()),
            },
            &[],
        )
        .unwrap();
        lists.add_accounts(&[acct(1), acct(2)]).unwrap();
        assert_eq!(
            f.text(),
            format!(
                "accounts-allowlist=[\"{}\", \"{}\"]\nkeep = true\n",
                acct(1),
                acct(2)
            )
        );
    }

    #[test]
    fn a_file_changed_behind_our_back_is_not_overwritten() {
        let f = Fixture::new(&file_with(&[url(1, "10.0.0.1", 1)], &[acct(1), acct(2)]));
        let lists = f.load();
        // An operator removes account 2 by hand without reloading.
        let edited = file_with(&[url(1, "10.0.0.1", 1)], &[acct(1)]);
        fs::write(&f.path, &edited).unwrap();
        let err = lists.add_accounts(&[acct(3)]).unwrap_err();
        assert!(matches!(err, AllowlistError::FileSync { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "The permissioning allowlist configuration file is out of sync.  The changes have been applied, but not persisted to disk"
        );
        assert_eq!(err.code(), -32000);
        assert_eq!(
            lists.accounts().unwrap(),
            vec![acct(1), acct(2), acct(3)],
            "applied in memory"
        );
        assert_eq!(f.text(), edited, "not written");
        // A file that is no longer TOML is out of sync too, not overwritten.
        fs::write(&f.path, "nodes-allowlist=[\n").unwrap();
        assert!(matches!(
            lists.add_nodes(&[url(2, "10.0.0.2", 1)]),
            Err(AllowlistError::FileSync { .. })
        ));
        assert_eq!(f.text(), "nodes-allowlist=[\n");
    }

    #[test]
    fn a_failed_write_reverts_the_change() {
        let f = Fixture::new(&file_with(&[], &[acct(1)]));
        let lists = f.load();
        // A directory where the temporary file goes: creating it fails, for root too.
        fs::create_dir(f.dir.path().join(".permissions_config.toml.consort-tmp")).unwrap();
        let err = lists.add_accounts(&[acct(2)]).unwrap_err();
        assert!(
            matches!(err, AllowlistError::PersistFailure { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "Unable to persist changes to allowlist configuration file. Changes reverted"
        );
        assert_eq!(lists.accounts().unwrap(), vec![acct(1)], "reverted");
        assert_eq!(f.text(), file_with(&[], &[acct(1)]));
        // A file that went away cannot be written either.
        fs::remove_file(&f.path).unwrap();
        assert!(matches!(
            lists.remove_accounts(&[acct(1)]),
            Err(AllowlistError::PersistFailure { .. })
        ));
        assert_eq!(lists.accounts().unwrap(), vec![acct(1)]);
    }

    #[test]
    fn a_read_only_file_loads_and_refuses_changes() {
        let text = file_with(&[url(1, "10.0.0.1", 1)], &[acct(1)]);
        let f = Fixture::new(&text);
        fs::set_permissions(&f.path, fs::Permissions::from_mode(0o444)).unwrap();
        fs::set_permissions(f.dir.path(), fs::Permissions::from_mode(0o555)).unwrap();
        let lists = f.load();
        assert_eq!(lists.accounts().unwrap(), vec![acct(1)]);
        lists.reload().unwrap();
        // Root ignores permission bits (CAP_DAC_OVERRIDE), so as root the file is writable and
        // the refusal below is forced by a directory in the temporary file's place instead:
        // what is tested as root is the revert, not the permission check.
        let privileged = OpenOptions::new().write(true).open(&f.path).is_ok();
        if privileged {
            println!(
                "running with permission override (root): blocking the temporary file instead"
            );
            fs::create_dir(f.dir.path().join(".permissions_config.toml.consort-tmp")).unwrap();
        }
        assert!(matches!(
            lists.add_accounts(&[acct(2)]),
            Err(AllowlistError::PersistFailure { .. })
        ));
        assert!(matches!(
            lists.remove_nodes(&[url(1, "10.0.0.1", 1)]),
            Err(AllowlistError::PersistFailure { .. })
        ));
        assert_eq!(lists.accounts().unwrap(), vec![acct(1)]);
        assert_eq!(lists.nodes().unwrap(), vec![url(1, "10.0.0.1", 1)]);
        assert_eq!(f.text(), text);
        fs::set_permissions(f.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn a_symlinked_file_is_written_through_the_link() {
        let f = Fixture::new(&file_with(&[], &[acct(1)]));
        let link = f.dir.path().join("link.toml");
        std::os::unix::fs::symlink(&f.path, &link).unwrap();
        let lists = LocalAllowlists::load(
            &LocalConfig {
                nodes_file: None,
                accounts_file: Some(link.clone()),
            },
            &[],
        )
        .unwrap();
        lists.add_accounts(&[acct(2)]).unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(f.text(), file_with(&[], &[acct(1), acct(2)]));
    }

    #[test]
    fn reload_reads_both_files_or_keeps_both_lists() {
        let f = Fixture::new(&file_with(&[url(1, "10.0.0.1", 1)], &[acct(1)]));
        let lists = f.load();
        let edited = file_with(&[url(2, "10.0.0.2", 2)], &[acct(2), acct(3)]);
        fs::write(&f.path, &edited).unwrap();
        lists.reload().unwrap();
        assert_eq!(lists.nodes().unwrap(), vec![url(2, "10.0.0.2", 2)]);
        assert_eq!(lists.accounts().unwrap(), vec![acct(2), acct(3)]);
        assert_eq!(f.text(), edited, "reloading does not write");
        // Good accounts but a bad node: neither list changes.
        fs::write(
            &f.path,
            file_with(&["enode://bad@1.2.3.4:1".into()], &[acct(4)]),
        )
        .unwrap();
        let err = lists.reload().unwrap_err();
        assert!(
            matches!(&err, AllowlistError::ReloadError { reason } if reason.contains("Invalid enode URL syntax")),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "Error reloading permissions file. Please use perm_getAccountsAllowlist and perm_getNodesAllowlist to review the current state of the allowlists"
        );
        assert_eq!(lists.nodes().unwrap(), vec![url(2, "10.0.0.2", 2)]);
        assert_eq!(lists.accounts().unwrap(), vec![acct(2), acct(3)]);
        fs::remove_file(&f.path).unwrap();
        assert!(matches!(
            lists.reload(),
            Err(AllowlistError::ReloadError { .. })
        ));
        assert_eq!(lists.accounts().unwrap(), vec![acct(2), acct(3)]);
    }

    #[test]
    fn error_codes_and_messages_are_besus() {
        let cases = [
            (
                AllowlistError::AccountAllowlistNotEnabled,
                -32000,
                "Account allowlist has not been enabled",
            ),
            (
                AllowlistError::AccountEmptyEntry,
                -32000,
                "Request contains an empty list of accounts",
            ),
            (
                AllowlistError::AccountInvalidEntry,
                -32000,
                "Request contains an invalid account",
            ),
            (
                AllowlistError::AccountDuplicatedEntry,
                -32000,
                "Request contains duplicate accounts",
            ),
            (
                AllowlistError::AccountExistingEntry,
                -32000,
                "Cannot add an existing account to allowlist",
            ),
            (
                AllowlistError::AccountAbsentEntry,
                -32000,
                "Cannot remove an absent account from allowlist",
            ),
            (
                AllowlistError::NodeAllowlistNotEnabled,
                -32000,
                "Node allowlist has not been enabled",
            ),
            (
                AllowlistError::NodeEmptyEntry,
                -32000,
                "Request contains an empty list of nodes",
            ),
            (
                AllowlistError::NodeInvalidEntry,
                -32000,
                "Request contains an invalid node",
            ),
            (
                AllowlistError::NodeDuplicatedEntry,
                -32000,
                "Request contains duplicate nodes",
            ),
            (
                AllowlistError::NodeExistingEntry,
                -32000,
                "Cannot add an existing node to allowlist",
            ),
            (
                AllowlistError::NodeMissingEntry,
                -32000,
                "Cannot remove an absent node from allowlist",
            ),
            (
                AllowlistError::NodeFixedNodeCannotBeRemoved,
                -32000,
                "Cannot remove a fixed node (bootnode or static node) from allowlist",
            ),
            (
                AllowlistError::PermissioningNotEnabled,
                -32000,
                "Node/Account allowlist has not been enabled",
            ),
            (
                AllowlistError::P2pDisabled,
                -32000,
                "P2P has been disabled. This functionality is not available",
            ),
            (
                AllowlistError::InvalidAccountParams,
                -32602,
                "Invalid account params",
            ),
            (
                AllowlistError::InvalidEnodeParams,
                -32602,
                "Invalid enode params",
            ),
        ];
        for (e, code, message) in cases {
            assert_eq!(
                (e.code(), e.to_string().as_str()),
                (code, message),
                "{}",
                e.kind()
            );
        }
    }
}
