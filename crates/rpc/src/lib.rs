//! Web3 JSON-RPC over HTTP and WebSocket (jsonrpsee): the `eth_`, `net_`, `web3_`, `txpool_`,
//! `debug_`, `qbft_`, `admin_` and `perm_` methods with geth/Besu result shapes and error codes, API
//! groups chosen per transport, filters and subscriptions, and per-method metrics.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod auth;
mod convert;
mod error;
mod eth;
mod filters;
mod metrics;
mod misc;
mod perm;
mod server;
pub mod tls;
mod traced;

pub use error::{revert_reason, RpcError, RpcResult};
pub use filters::Filters;
pub use metrics::RpcMetrics;
pub use server::{
    http_methods, start, ApiGroup, RpcServerConfig, RpcServerHandle, TransportConfig,
    BLOCKING_METHODS, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_RESPONSE_BYTES,
};

use alloy_primitives::{Address, B256};
use consort_chainspec::Genesis;
use consort_storage::{NewBlock, Store};
use consort_txpool::{PoolMetrics, TxPool};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// A connected peer as `admin_peers` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSummary {
    /// 128 hex characters: the peer's public key.
    pub id: String,
    /// Its enode URL, when its address is known.
    pub enode: Option<String>,
    /// Its client version.
    pub name: Option<String>,
    /// Our end of the connection.
    pub local_address: Option<String>,
    /// Its end of the connection.
    pub remote_address: Option<String>,
    /// Whether it dialled us.
    pub inbound: bool,
}

/// Why `admin_addPeer` / `admin_removePeer` refused.
pub type PeerControlError = String;

/// The peer-to-peer network as RPC sees it (implemented by the node over libp2p).
pub trait PeerNetwork: Send + Sync + std::fmt::Debug {
    /// Our enode URL.
    fn enode(&self) -> String;
    /// The TCP port peers connect to.
    fn listen_port(&self) -> u16;
    /// The connected peers.
    fn peers(&self) -> Vec<PeerSummary>;
    /// How many peers are connected.
    fn peer_count(&self) -> usize;
    /// Keeps the peer named by an enode URL connected.
    fn add_peer(&self, enode: &str) -> Result<bool, PeerControlError>;
    /// Disconnects the peer named by an enode URL and refuses it until added again.
    fn remove_peer(&self, enode: &str) -> Result<bool, PeerControlError>;
    /// Gossips a transaction this node accepted from a local client.
    fn broadcast_transaction(&self, raw: Vec<u8>);
}

/// Sync progress as `eth_syncing` reads it (implemented by the node's syncer status).
pub trait SyncReader: Send + Sync + std::fmt::Debug {
    /// `(startingBlock, highestBlock)` while catching up, `None` when in sync.
    fn progress(&self) -> Option<(u64, u64)>;
}

/// Bounds on what one request may cost.
#[derive(Debug, Clone)]
pub struct RpcLimits {
    /// Gas of `eth_call` / `eth_estimateGas` (Besu `--rpc-gas-cap`).
    pub gas_cap: u64,
    /// Wall-clock time of one `eth_call` / `eth_estimateGas` (`--Xrpc-call-timeout-ms`).
    pub call_timeout: Duration,
    /// Most blocks one `eth_getLogs` may scan (Besu `--rpc-max-logs-range`).
    pub max_logs_range: u64,
    /// Most logs one `eth_getLogs` may return.
    pub max_logs: usize,
    /// Most installed filters, all connections together.
    pub max_filters: usize,
    /// Most installed filters one connection may own (the connection that installed a filter
    /// owns it), so one client cannot take the whole of `max_filters`.
    pub max_filters_per_connection: usize,
    /// Filters not polled for this long are removed.
    pub filter_timeout: Duration,
    /// Most blocks `eth_feeHistory` covers.
    pub max_fee_history: u64,
}

impl Default for RpcLimits {
    fn default() -> Self {
        RpcLimits {
            gas_cap: 50_000_000,
            call_timeout: Duration::from_secs(5),
            max_logs_range: 5_000,
            max_logs: 10_000,
            max_filters: 1_024,
            max_filters_per_connection: 256,
            filter_timeout: Duration::from_secs(300),
            max_fee_history: 1_024,
        }
    }
}

/// What the node tells RPC about itself.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// `web3_clientVersion`: `consort/v<version>/<os>-<arch>/<rustc>`.
    pub client_version: String,
    /// This node's validator address (`eth_coinbase`).
    pub coinbase: Address,
    /// Whether this node is a validator producing blocks (`eth_mining`).
    pub mining: bool,
    /// The node's public key as an enode id (128 hex characters).
    pub enode_id: String,
    /// The node's minimum gas price, the floor of the fee suggestions.
    pub min_gas_price: u128,
    /// Where `admin_createSnapshot` writes snapshots (`<data-path>/snapshots`); `None` serves
    /// no snapshots.
    pub snapshots_dir: Option<std::path::PathBuf>,
}

/// Everything the methods read and write. Shared by every connection.
pub struct RpcContext {
    /// The chain database.
    pub store: Arc<Store>,
    /// The chain's genesis configuration.
    pub chain: Arc<Genesis>,
    /// The transaction pool.
    pub pool: Arc<Mutex<TxPool>>,
    /// New pending transaction hashes.
    pub pending_txs: broadcast::Sender<B256>,
    /// New chain heads.
    pub new_blocks: broadcast::Sender<Arc<NewBlock>>,
    /// Node identity and settings.
    pub info: NodeInfo,
    /// Request bounds.
    pub limits: RpcLimits,
    /// Installed filters.
    pub filters: Mutex<Filters>,
    /// JSON-RPC metrics.
    pub metrics: RpcMetrics,
    /// Transaction pool metrics.
    pub pool_metrics: PoolMetrics,
    /// The peer-to-peer network, unless `--p2p-enabled=false`.
    pub network: Option<Arc<dyn PeerNetwork>>,
    /// Sync progress.
    pub sync: Arc<dyn SyncReader>,
    /// The local allowlists `perm_*` reads and changes; `None` when permissioning is off.
    pub permissions: Option<Arc<consort_permissioning::LocalAllowlists>>,
    /// Called after the node allowlist changed over `perm_*` (an add, a remove or a reload), so
    /// the node can re-check its connected peers.
    pub on_nodes_changed: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Validator sets and votes for `qbft_*`; read from extraData when `None`.
    pub validators: Option<Arc<dyn ValidatorVoting>>,
}

/// The validator sets and this validator's pending votes, as the `qbft_*` methods see them
/// (the node implements it over its chain).
pub trait ValidatorVoting: Send + Sync {
    /// Besu's "validators for block": in block-header mode those listed in the block (the set
    /// that sealed it), in contract mode `getValidators()` on its state (the next block's);
    /// `None` for an unknown block.
    fn validators_of_block(&self, hash: B256) -> Result<Option<Vec<Address>>, String>;
    /// The validators of the block after the block `hash`, in either mode; `None` for an
    /// unknown block.
    fn validators_after(&self, hash: B256) -> Result<Option<Vec<Address>>, String>;
    /// Whether votes go in block headers (false in validator-contract mode).
    fn header_voting(&self) -> bool;
    /// Asks this validator to vote to add (`true`) or drop `subject`, durably.
    fn propose(&self, subject: Address, add: bool) -> Result<(), String>;
    /// Withdraws the request for `subject`, durably.
    fn discard(&self, subject: Address) -> Result<(), String>;
    /// The requests, by address: `true` to add.
    fn pending(&self) -> std::collections::BTreeMap<Address, bool>;
}

impl std::fmt::Debug for RpcContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcContext")
            .field("store", &self.store)
            .field("chain", &self.chain)
            .field("pool", &self.pool)
            .field("pending_txs", &self.pending_txs)
            .field("new_blocks", &self.new_blocks)
            .field("info", &self.info)
            .field("limits", &self.limits)
            .field("filters", &self.filters)
            .field("metrics", &self.metrics)
            .field("pool_metrics", &self.pool_metrics)
            .field("network", &self.network)
            .field("sync", &self.sync)
            .field("permissions", &self.permissions)
            .field("on_nodes_changed", &self.on_nodes_changed.is_some())
            .field("validators", &self.validators.is_some())
            .finish()
    }
}

impl RpcContext {
    /// The transaction pool, locked.
    pub fn pool(&self) -> RpcResult<std::sync::MutexGuard<'_, TxPool>> {
        self.pool
            .lock()
            .map_err(|_| RpcError::Internal("transaction pool lock poisoned".into()))
    }
}
