//! Web3 JSON-RPC over HTTP and WebSocket (jsonrpsee): the `eth_`, `net_`, `web3_`, `txpool_`,
//! `debug_`, `qbft_` and `admin_` methods with geth/Besu result shapes and error codes, API
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

mod convert;
mod error;
mod eth;
mod filters;
mod metrics;
mod misc;
mod server;

pub use convert::block_logs;
pub use error::{revert_reason, RpcError, RpcResult};
pub use eth::HeadState;
pub use filters::Filters;
pub use metrics::{PoolMetrics, RpcMetrics};
pub use server::{start, ApiGroup, RpcServerConfig, RpcServerHandle, TransportConfig};

use alloy_primitives::{Address, B256};
use alloy_rpc_types_eth::Log as RpcLog;
use consort_chainspec::Genesis;
use consort_primitives::Header;
use consort_storage::Store;
use consort_txpool::TxPool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// Bounds on what one request may cost.
#[derive(Debug, Clone)]
pub struct RpcLimits {
    /// Gas of `eth_call` / `eth_estimateGas` (Besu `--rpc-gas-cap`).
    pub gas_cap: u64,
    /// Most blocks one `eth_getLogs` may scan (Besu `--rpc-max-logs-range`).
    pub max_logs_range: u64,
    /// Most logs one `eth_getLogs` may return.
    pub max_logs: usize,
    /// Most installed filters.
    pub max_filters: usize,
    /// Filters not polled for this long are removed.
    pub filter_timeout: Duration,
    /// Most blocks `eth_feeHistory` covers.
    pub max_fee_history: u64,
}

impl Default for RpcLimits {
    fn default() -> Self {
        RpcLimits {
            gas_cap: 50_000_000,
            max_logs_range: 5_000,
            max_logs: 10_000,
            max_filters: 1_024,
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
}

/// A block that became the chain head, for subscriptions and filters.
#[derive(Debug, Clone)]
pub struct NewBlock {
    /// Its header.
    pub header: Header,
    /// Its (BFT on-chain) hash.
    pub hash: B256,
    /// Its logs with positions.
    pub logs: Vec<RpcLog>,
}

/// Everything the methods read and write. Shared by every connection.
#[derive(Debug)]
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
}

impl RpcContext {
    /// The transaction pool, locked.
    pub fn pool(&self) -> RpcResult<std::sync::MutexGuard<'_, TxPool>> {
        self.pool
            .lock()
            .map_err(|_| RpcError::Internal("transaction pool lock poisoned".into()))
    }
}
