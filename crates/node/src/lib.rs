//! The node: reads its options, opens the chain, and runs QBFT block production, the
//! transaction pool, JSON-RPC and metrics until it is told to stop.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod chain;
pub mod config;
mod driver;
pub mod keys;
mod metrics;

pub use chain::{Chain, ChainError};
pub use config::{ConfigError, NodeArgs};

use consort_chainspec::Genesis;
use consort_qbft::Qbft;
use consort_rpc::{RpcContext, RpcLimits, RpcServerConfig, RpcServerHandle, TransportConfig};
use consort_storage::{Store, StoreOptions};
use consort_txpool::{PoolConfig, TxPool};
use driver::{Driver, DriverEvent};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc};

/// The genesis file of `--network=dev`.
pub const DEV_GENESIS: &str = include_str!("../../../chainspecs/dev.json");
/// The validator key of `--network=dev`: public, for development only.
pub const DEV_VALIDATOR_KEY: &str = include_str!("../../../chainspecs/dev-validator.key");

/// `consort/v<version>/<os>-<arch>/rust-<rustc version>`, Besu's shape.
pub fn client_version() -> String {
    format!(
        "consort/v{}/{}-{}/rust-{}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH,
        env!("CONSORT_RUSTC_VERSION")
    )
}

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The options contradict each other or name something that does not exist.
    #[error("{0}")]
    Config(String),
    /// The genesis file is invalid.
    #[error(transparent)]
    Genesis(#[from] consort_chainspec::GenesisError),
    /// The database could not be opened or written.
    #[error(transparent)]
    Storage(#[from] consort_storage::StorageError),
    /// The database holds another chain, or the genesis could not be written.
    #[error(transparent)]
    GenesisInit(#[from] consort_evm::GenesisInitError),
    /// The node key could not be loaded or created.
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    /// JSON-RPC could not start.
    #[error(transparent)]
    Rpc(#[from] consort_rpc::RpcError),
    /// Metrics could not start.
    #[error(transparent)]
    Metrics(#[from] consort_metrics::MetricsError),
}

/// A running node.
#[derive(Debug)]
pub struct NodeHandle {
    /// Where HTTP JSON-RPC listens.
    pub http_addr: Option<SocketAddr>,
    /// Where WebSocket JSON-RPC listens.
    pub ws_addr: Option<SocketAddr>,
    /// Where metrics are served.
    pub metrics_addr: Option<SocketAddr>,
    rpc: RpcServerHandle,
    metrics: Option<consort_metrics::MetricsServer>,
    driver_tx: mpsc::UnboundedSender<DriverEvent>,
    driver: Option<std::thread::JoinHandle<()>>,
}

impl NodeHandle {
    /// Stops block production, then the servers. Every committed block is already durable.
    pub async fn shutdown(mut self) {
        let _ = self.driver_tx.send(DriverEvent::Stop);
        if let Some(driver) = self.driver.take() {
            let _ = tokio::task::spawn_blocking(move || driver.join()).await;
        }
        if let Some(m) = self.metrics.take() {
            m.task.abort();
        }
        self.rpc.stop().await;
    }
}

fn load_genesis(args: &NodeArgs) -> Result<(Genesis, Option<&'static str>), NodeError> {
    match (&args.network, &args.genesis_file) {
        (Some(_), Some(_)) => Err(NodeError::Config(
            "--network and --genesis-file are mutually exclusive".into(),
        )),
        (Some(n), None) if n.eq_ignore_ascii_case("dev") => {
            Ok((Genesis::from_json(DEV_GENESIS)?, Some(DEV_VALIDATOR_KEY)))
        }
        (Some(n), None) => Err(NodeError::Config(format!(
            "unknown --network '{n}' (built-in networks: dev)"
        ))),
        (None, Some(path)) => Ok((Genesis::from_file(path)?, None)),
        (None, None) => Err(NodeError::Config(
            "no chain given: use --genesis-file=<file> or --network=dev".into(),
        )),
    }
}

/// Starts the node described by `args` on the current tokio runtime.
pub async fn launch(args: NodeArgs) -> Result<NodeHandle, NodeError> {
    let (genesis, default_key) = load_genesis(&args)?;
    if genesis.qbft.is_none() {
        return Err(NodeError::Config(
            "the genesis file has no config.qbft section: consort runs QBFT chains only".into(),
        ));
    }
    std::fs::create_dir_all(&args.data_path).map_err(|e| {
        NodeError::Config(format!(
            "cannot create --data-path {}: {e}",
            args.data_path.display()
        ))
    })?;
    let key_path = args
        .node_private_key_file
        .clone()
        .unwrap_or_else(|| args.data_path.join("key"));
    let key = keys::load_or_create(&key_path, default_key)?;
    let store = Arc::new(Store::open(
        &args.data_path.join("database"),
        StoreOptions {
            history_window: (args.bonsai_historical_block_limit > 0)
                .then_some(args.bonsai_historical_block_limit),
            ..StoreOptions::default()
        },
    )?);
    consort_evm::init_genesis(&store, &genesis)?;
    let chain_id = genesis.chain_id;
    let genesis = Arc::new(genesis);

    let registry = consort_metrics::registry(&client_version())?;
    let chain_metrics = metrics::ChainMetrics::new(&registry)?;
    chain_metrics.set_min_gas_price(args.min_gas_price);
    let head = store.head_header()?;
    chain_metrics.on_new_head(&head, std::time::Duration::ZERO);

    let core = Qbft::new(key);
    let address = core.address();
    let validators = chain::validators_of(&head);
    let is_validator = validators.contains(&address);
    if !is_validator {
        tracing::warn!(
            "this node ({address}) is not a validator of the chain; it will not produce blocks"
        );
    }
    let pool = TxPool::new(
        PoolConfig {
            max_transactions: args.tx_pool_max_size,
            price_bump_percent: args.tx_pool_price_bump,
            max_future_by_sender: args.tx_pool_max_future_by_sender,
            min_gas_price: args.min_gas_price,
            ..PoolConfig::default()
        },
        driver::head_context(&genesis, &head),
    );
    let (pending_txs, _) = broadcast::channel(4096);
    let (new_blocks, _) = broadcast::channel(256);
    let ctx = Arc::new(RpcContext {
        store: store.clone(),
        chain: genesis.clone(),
        pool: Arc::new(Mutex::new(pool)),
        pending_txs,
        new_blocks,
        info: consort_rpc::NodeInfo {
            client_version: client_version(),
            coinbase: address,
            mining: is_validator,
            enode_id: keys::enode_id(&key),
            min_gas_price: args.min_gas_price,
        },
        limits: RpcLimits {
            gas_cap: args.rpc_gas_cap,
            max_logs_range: args.rpc_max_logs_range.max(1),
            ..RpcLimits::default()
        },
        filters: Mutex::new(Default::default()),
        metrics: consort_rpc::RpcMetrics::new(&registry)?,
        pool_metrics: consort_rpc::PoolMetrics::new(&registry)?,
    });

    let rpc = consort_rpc::start(
        ctx.clone(),
        RpcServerConfig {
            http: args.rpc_http_enabled.then(|| TransportConfig {
                addr: SocketAddr::new(args.rpc_http_host, args.rpc_http_port),
                apis: args.rpc_http_api.clone(),
            }),
            ws: args.rpc_ws_enabled.then(|| TransportConfig {
                addr: SocketAddr::new(args.rpc_ws_host, args.rpc_ws_port),
                apis: args.rpc_ws_api.clone(),
            }),
            host_allowlist: args.host_allowlist.clone(),
            cors_origins: args.rpc_http_cors_origins.clone(),
            max_batch: args.rpc_http_max_batch_size,
            max_connections: args
                .rpc_http_max_active_connections
                .max(args.rpc_ws_max_active_connections),
            ..RpcServerConfig::default()
        },
    )
    .await?;
    let metrics = if args.metrics_enabled {
        Some(
            consort_metrics::serve(
                &SocketAddr::new(args.metrics_host, args.metrics_port).to_string(),
                registry,
                args.host_allowlist.clone(),
            )
            .await?,
        )
    } else {
        None
    };

    let (driver_tx, driver_rx) = mpsc::unbounded_channel();
    let chain = Chain {
        store,
        genesis,
        metrics: chain_metrics,
    };
    let driver = Driver::new(
        core,
        chain,
        ctx,
        driver_tx.clone(),
        tokio::runtime::Handle::current(),
    );
    let driver = std::thread::Builder::new()
        .name("qbft".into())
        .spawn(move || driver.run(driver_rx))
        .map_err(|e| NodeError::Config(format!("cannot start the consensus thread: {e}")))?;

    let handle = NodeHandle {
        http_addr: rpc.http_addr,
        ws_addr: rpc.ws_addr,
        metrics_addr: metrics.as_ref().map(|m| m.local_addr),
        rpc,
        metrics,
        driver_tx,
        driver: Some(driver),
    };
    tracing::info!(
        client = %client_version(),
        chain_id,
        validator = %address,
        node_id = %keys::enode_id(&key),
        "node started"
    );
    if let Some(a) = handle.http_addr {
        tracing::info!("JSON-RPC HTTP on http://{a}");
    }
    if let Some(a) = handle.ws_addr {
        tracing::info!("JSON-RPC WebSocket on ws://{a}");
    }
    if let Some(a) = handle.metrics_addr {
        tracing::info!("metrics on http://{a}/metrics");
    }
    Ok(handle)
}

/// Runs a node until SIGINT or SIGTERM, then shuts it down.
pub async fn run(args: NodeArgs) -> Result<(), NodeError> {
    let node = launch(args).await?;
    wait_for_signal().await;
    tracing::info!("shutting down");
    node.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
