//! The rules as one answer: the local allowlists and the allowlist contracts together, with
//! Besu's bootstrap exceptions for nodes that have not synced the rules yet.

use crate::contract::{
    account_payload, decode_bool, decode_v1, node_v1_payload, node_v2_payload, ContractError,
    ContractReader, NodeContractVersion, TxFacts, NODE_PERMISSIONS_UPDATED,
};
use crate::local::{LocalAllowlists, LocalConfig, LocalConfigError};
use crate::metrics::PermissioningMetrics;
use alloy_consensus::ReceiptEnvelope;
use alloy_primitives::Address;
use consort_network::{ConnectionGate, Enode, GateContext};
use consort_primitives::Header;
use consort_storage::StateChanges;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// The enode Besu checks the node contract with at start-up: the answer does not matter, only
/// that the contract gives one.
const PROBE_ENODE: &str = "enode://6f8a80d14311c39f35f516fa664deaaaa13e85b2f7493f37f6144d86991ec012937307647bd3b9a82abe2974e1407241d54947bbb39763a4cac9f77166ad92a0@10.3.58.6:30303";

/// What the node was told to enforce.
#[derive(Debug, Clone, Default)]
pub struct PermissionsConfig {
    /// The local allowlist files.
    pub local: LocalConfig,
    /// The node rules contract (`--permissions-nodes-contract-*`).
    pub nodes_contract: Option<(Address, NodeContractVersion)>,
    /// The account rules contract (`--permissions-accounts-contract-*`).
    pub accounts_contract: Option<Address>,
    /// `--bootnodes`.
    pub bootnodes: Vec<Enode>,
    /// Static nodes.
    pub static_nodes: Vec<Enode>,
}

/// Why the rules could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PermissionsError {
    /// A local allowlist file is unusable.
    #[error(transparent)]
    Local(#[from] LocalConfigError),
    /// The node contract does not answer as its interface version says.
    #[error("Error: node permissioning contract at address {address} does not match the expected interface version {version}: {source}")]
    NodeContract {
        /// The contract.
        address: Address,
        /// Its configured version.
        version: NodeContractVersion,
        /// What went wrong.
        source: ContractError,
    },
    /// The account contract does not answer.
    #[error("Error validating onchain account permissioning smart contract configuration: {0}")]
    AccountContract(ContractError),
    /// The head could not be read.
    #[error("permissioning cannot read the chain head: {0}")]
    Head(String),
}

/// Where a transaction is being judged: the pool and block building apply every rule; block
/// import applies only the contract's, which are the chain's and the same on every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `eth_sendRawTransaction` or gossip into the pool.
    Pool,
    /// Selection for a block this node proposes.
    Build,
    /// A block from a peer, or a proposal to vote on.
    Import,
}

/// Why a transaction is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxRefusal {
    /// The sender may not transact (JSON-RPC -32007).
    #[error("Sender {sender} is not on the Account Allowlist")]
    NotPermitted {
        /// The sender.
        sender: Address,
    },
    /// The account contract gave no answer.
    #[error("the account permissioning check failed: {0}")]
    CheckFailed(ContractError),
}

/// Node and account permissioning, asked by the network, the pool, block building and import.
#[derive(Debug)]
pub struct Permissions {
    local: Arc<LocalAllowlists>,
    nodes_contract: Option<(Address, NodeContractVersion)>,
    accounts_contract: Option<Address>,
    chain: ContractReader,
    local_enode: OnceLock<Enode>,
    bootnodes: Vec<Enode>,
    fixed: Vec<Enode>,
    /// Besu's sync-status rule: until the node has caught up with a peer once, the node
    /// contract (read from a state that may predate this node's admission) is not trusted, and
    /// only fixed nodes may be dialled.
    synced: AtomicBool,
    metrics: PermissioningMetrics,
}

fn same_endpoint(a: &Enode, b: &Enode) -> bool {
    a.id == b.id && a.addr == b.addr
}

impl Permissions {
    /// Loads the local allowlists and checks that the contracts answer (Besu's start-up
    /// validation).
    pub fn new(
        config: PermissionsConfig,
        chain: ContractReader,
        metrics: PermissioningMetrics,
    ) -> Result<Self, PermissionsError> {
        let mut fixed = config.bootnodes.clone();
        fixed.extend(config.static_nodes.iter().cloned());
        let local = Arc::new(LocalAllowlists::load(&config.local, &fixed)?);
        let permissions = Permissions {
            local,
            nodes_contract: config.nodes_contract,
            accounts_contract: config.accounts_contract,
            chain,
            local_enode: OnceLock::new(),
            bootnodes: config.bootnodes,
            // Without fixed nodes there is nothing to bootstrap from: trust the rules at once.
            synced: AtomicBool::new(fixed.is_empty() || config.nodes_contract.is_none()),
            fixed,
            metrics,
        };
        permissions.validate_contracts()?;
        Ok(permissions)
    }

    fn head(&self) -> Result<Header, ContractError> {
        self.chain
            .store
            .head_header()
            .map_err(|e| ContractError::Execution {
                what: "permissioning",
                reason: e.to_string(),
            })
    }

    fn validate_contracts(&self) -> Result<(), PermissionsError> {
        let head = self
            .head()
            .map_err(|e| PermissionsError::Head(e.to_string()))?;
        if let Some((address, version)) = self.nodes_contract {
            let probe: Enode = PROBE_ENODE
                .parse()
                .map_err(|e: consort_network::EnodeError| PermissionsError::Head(e.to_string()))?;
            self.node_contract_permits(&head, address, version, &probe, &probe)
                .map_err(|source| PermissionsError::NodeContract {
                    address,
                    version,
                    source,
                })?;
        }
        if self.accounts_contract.is_some() {
            self.account_contract_permits(&head, &TxFacts::default())
                .map_err(PermissionsError::AccountContract)?;
        }
        Ok(())
    }

    /// The local allowlists (`perm_*` changes them).
    pub fn local(&self) -> &Arc<LocalAllowlists> {
        &self.local
    }

    /// Whether any node rule is enforced.
    pub fn node_rules_enabled(&self) -> bool {
        self.local.nodes_enabled() || self.nodes_contract.is_some()
    }

    /// Whether any account rule is enforced.
    pub fn account_rules_enabled(&self) -> bool {
        self.local.accounts_enabled() || self.accounts_contract.is_some()
    }

    /// Whether any account rule is enforced at block import (the contract's only).
    pub fn import_rules_enabled(&self) -> bool {
        self.accounts_contract.is_some()
    }

    /// Records that the node has caught up with a peer: from now on the node contract decides
    /// every connection. Returns whether this changed anything.
    pub fn mark_synced(&self) -> bool {
        !self.synced.swap(true, Ordering::SeqCst)
    }

    /// Whether the node has synced the rules.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::SeqCst)
    }

    fn is_fixed(&self, node: &Enode) -> bool {
        self.fixed.iter().any(|f| same_endpoint(f, node))
    }

    fn is_bootnode_or_self(&self, node: &Enode) -> bool {
        self.local_enode.get().is_some_and(|l| l.id == node.id)
            || self.bootnodes.iter().any(|b| same_endpoint(b, node))
    }

    /// Whether `source` may connect to `destination` by every enabled rule, ignoring the
    /// bootstrap exceptions: the local allowlist (self need not be listed) and the node
    /// contract (self must be listed).
    pub fn connection_permitted(&self, source: &Enode, destination: &Enode) -> bool {
        let local_id = self.local_enode.get().map(|e| e.id);
        if self.local.nodes_enabled() {
            let listed = |n: &Enode| Some(n.id) == local_id || self.local.node_permitted(n);
            let permitted = listed(source) && listed(destination);
            if !self.metrics.node_local().count(permitted) {
                return false;
            }
        }
        let Some((address, version)) = self.nodes_contract else {
            return true;
        };
        let verdict = self.head().and_then(|head| {
            self.node_contract_permits(&head, address, version, source, destination)
        });
        match verdict {
            Ok(permitted) => self.metrics.node_contract().count(permitted),
            Err(e) => {
                tracing::warn!(%source, %destination, "unable to check node permissions: {e}");
                self.metrics.node_contract().count(false)
            }
        }
    }

    fn node_contract_permits(
        &self,
        head: &Header,
        address: Address,
        version: NodeContractVersion,
        source: &Enode,
        destination: &Enode,
    ) -> Result<bool, ContractError> {
        if !self.chain.exists(head, address)? {
            return Err(ContractError::Missing(address));
        }
        match version {
            NodeContractVersion::V1 => {
                let out =
                    self.chain
                        .call("node", head, address, node_v1_payload(source, destination))?;
                decode_v1(&out)
            }
            NodeContractVersion::V2 => {
                for enode in [source, destination] {
                    let out = self
                        .chain
                        .call("node", head, address, node_v2_payload(enode))?;
                    if !decode_bool("node", &out)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
        }
    }

    fn account_contract_permits(&self, at: &Header, tx: &TxFacts) -> Result<bool, ContractError> {
        let Some(address) = self.accounts_contract else {
            return Ok(true);
        };
        if !self.chain.exists(at, address)? {
            tracing::warn!(
                "Account permissioning smart contract not found at address {address} in block {}. Any transaction will be allowed.",
                at.number
            );
            return Ok(true);
        }
        let out = self
            .chain
            .call("account", at, address, account_payload(tx))?;
        decode_bool("account", &out)
    }

    /// Judges a transaction for `purpose` on the state after `at` (the head for the pool and
    /// for building, the parent for import).
    pub fn check_transaction(
        &self,
        tx: &TxFacts,
        purpose: Purpose,
        at: &Header,
    ) -> Result<(), TxRefusal> {
        let refused = || TxRefusal::NotPermitted { sender: tx.sender };
        if purpose != Purpose::Import
            && self.local.accounts_enabled()
            && !self
                .metrics
                .account_local()
                .count(self.local.account_permitted(&tx.sender))
        {
            return Err(refused());
        }
        if self.accounts_contract.is_none() {
            return Ok(());
        }
        match self.account_contract_permits(at, tx) {
            Ok(permitted) if self.metrics.account_contract().count(permitted) => Ok(()),
            Ok(_) => Err(refused()),
            Err(e) => {
                self.metrics.account_contract().count(false);
                Err(TxRefusal::CheckFailed(e))
            }
        }
    }

    /// Whether a block (its `receipts` and state `changes`, on top of `parent`) may have
    /// changed the node rules: the node ingress announced it (`NodePermissionsUpdated`), or the
    /// block wrote the storage of the node ingress or of the rules contract it names.
    pub fn node_rules_changed(
        &self,
        parent: &Header,
        receipts: &[ReceiptEnvelope],
        changes: &StateChanges,
    ) -> bool {
        let Some((ingress, _)) = self.nodes_contract else {
            return false;
        };
        let announced = receipts.iter().any(|r| {
            r.logs().iter().any(|log| {
                log.address == ingress && log.topics().first() == Some(&NODE_PERMISSIONS_UPDATED)
            })
        });
        if announced {
            return true;
        }
        let rules = self.chain.registered(parent, ingress, "rules");
        changes.accounts.iter().any(|(address, change)| {
            (*address == ingress || Some(*address) == rules)
                && (change.wipe_storage || !change.storage.is_empty())
        })
    }
}

impl ConnectionGate for Permissions {
    fn local_enode(&self, enode: &Enode) {
        let _ = self.local_enode.set(enode.clone());
    }

    fn listening_address(&self, seen: &Enode) -> Option<SocketAddr> {
        let ip = seen.addr.ip();
        let candidates: Vec<Enode> = self
            .local
            .nodes_with_id(&seen.id)
            .into_iter()
            .filter(|e| e.addr.ip() == ip || (ip.is_loopback() && e.addr.ip().is_loopback()))
            .collect();
        candidates
            .iter()
            .find(|e| e.addr.port() == seen.addr.port())
            .or(candidates.first())
            .map(|e| e.addr)
    }

    fn permits(&self, remote: &Enode, context: &GateContext) -> bool {
        // Besu: nothing is permitted before the local node is ready.
        let Some(local) = self.local_enode.get() else {
            return false;
        };
        let contract = self.nodes_contract.is_some();
        let synced = self.synced();
        // Not yet synced: the fixed nodes are permitted whatever the (possibly stale) rules say,
        // both ways (Besu only dials them, so validators that are each other's static nodes
        // never let each other in).
        if contract && !synced && self.is_fixed(remote) {
            return true;
        }
        // Insufficient peers: with no other peer, bootnodes are always reachable both ways.
        if context.non_bootnode_peers == 0 && self.is_bootnode_or_self(remote) {
            return true;
        }
        if contract && !synced {
            return false;
        }
        let (source, destination) = if context.inbound {
            (remote, local)
        } else {
            (local, remote)
        };
        self.connection_permitted(source, destination)
    }
}
