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

pub mod blocks;
mod chain;
pub mod config;
mod driver;
#[doc(hidden)]
mod executors;
pub mod fuzzing;
pub mod keys;
mod metrics;
mod p2p;
mod permissions;
#[cfg(test)]
mod sim;
mod sync;
#[cfg(test)]
mod testing;
mod txgossip;
mod validators;

pub use chain::{Chain, ChainError};
pub use config::{ConfigError, MetricsProtocol, NodeArgs};

use consort_chainspec::Genesis;
use consort_network::{Enode, NetworkConfig, NetworkHandle, NetworkMetrics};
use consort_qbft::{Qbft, QbftConfig};
use consort_rpc::{RpcContext, RpcLimits, RpcServerConfig, RpcServerHandle, TransportConfig};
use consort_storage::{Store, StoreOptions};
use consort_txpool::{PoolConfig, TxPool};
use driver::{Driver, DriverEvent, DriverSender};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use sync::SyncStatus;
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
    /// The peer-to-peer network could not start.
    #[error(transparent)]
    Network(#[from] consort_network::NetworkError),
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
    /// This node's enode URL, if P2P is enabled.
    pub enode: Option<Enode>,
    network: Option<NetworkHandle>,
    rpc: RpcServerHandle,
    metrics: Option<consort_metrics::MetricsServer>,
    pusher: Option<consort_metrics::Pusher>,
    otlp: Option<consort_metrics::otlp::OtlpExporter>,
    driver_tx: DriverSender,
    driver: Option<std::thread::JoinHandle<()>>,
}

impl NodeHandle {
    /// Stops block production, then the servers. Every committed block is already durable.
    pub async fn shutdown(mut self) {
        self.driver_tx.send(DriverEvent::Stop).await;
        if let Some(driver) = self.driver.take() {
            let _ = tokio::task::spawn_blocking(move || driver.join()).await;
        }
        if let Some(network) = self.network.take() {
            network.stop();
        }
        if let Some(m) = self.metrics.take() {
            m.task.abort();
        }
        if let Some(pusher) = self.pusher.take() {
            pusher.stop().await;
        }
        if let Some(otlp) = self.otlp.take() {
            otlp.shutdown().await;
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

/// The chain database of `args.data_path`, with `genesis` written into it if it is new.
fn open_store(
    args: &NodeArgs,
    genesis: &Genesis,
    metrics: Option<&consort_metrics::Registry>,
) -> Result<Arc<Store>, NodeError> {
    let path = args.data_path.join("database");
    let store = Store::open(
        &path,
        StoreOptions {
            history_window: (args.bonsai_historical_block_limit > 0)
                .then_some(args.bonsai_historical_block_limit),
            metrics: metrics.cloned(),
            ..StoreOptions::default()
        },
    )
    .map_err(|e| match e {
        consort_storage::StorageError::Db(ref db) if db.to_string().contains("LOCK") => {
            NodeError::Config(format!(
                "the database {} is in use by another process (is a node running on this \
                 --data-path?): {e}",
                path.display()
            ))
        }
        other => other.into(),
    })?;
    consort_evm::init_genesis(&store, genesis)?;
    Ok(Arc::new(store))
}

/// Like [`open_chain`], for a tool that reads a chain: the database must already exist.
pub fn open_existing_chain(args: &NodeArgs) -> Result<(Arc<Store>, Arc<Genesis>), NodeError> {
    let path = args.data_path.join("database");
    if !path.join("CURRENT").is_file() {
        return Err(NodeError::Config(format!(
            "--data-path {} holds no chain database ({} is missing or not a database)",
            args.data_path.display(),
            path.display()
        )));
    }
    open_chain(args)
}

/// The chain of `args` (its genesis and database) for a tool that runs instead of the node.
pub fn open_chain(args: &NodeArgs) -> Result<(Arc<Store>, Arc<Genesis>), NodeError> {
    let (genesis, _) = load_genesis(args)?;
    check_validator_mode(&genesis)?;
    std::fs::create_dir_all(&args.data_path).map_err(|e| {
        NodeError::Config(format!(
            "cannot create --data-path {}: {e}",
            args.data_path.display()
        ))
    })?;
    let store = open_store(args, &genesis, None)?;
    Ok((store, Arc::new(genesis)))
}

/// Starts the node described by `args` on the current tokio runtime.
pub async fn launch(args: NodeArgs) -> Result<NodeHandle, NodeError> {
    let (genesis, default_key) = load_genesis(&args)?;
    check_validator_mode(&genesis)?;
    let rpc_security = RpcSecurity::from_args(&args)?;
    let protocols = &args.metrics_protocol;
    if protocols.contains(&MetricsProtocol::None) && protocols.len() > 1 {
        return Err(NodeError::Config(
            "--metrics-protocol=NONE cannot be combined with another protocol".into(),
        ));
    }
    let otlp_config = if args.metrics_enabled && protocols.contains(&MetricsProtocol::Opentelemetry)
    {
        consort_metrics::otlp::OtlpConfig::from_env(
            |name| std::env::var(name).ok(),
            &args.metrics_push_prometheus_job,
            &client_version(),
        )
        .map_err(|e| NodeError::Config(format!("--metrics-protocol=OPENTELEMETRY: {e}")))?
    } else {
        None
    };
    if args.metrics_push_prometheus_job.trim().is_empty() {
        return Err(NodeError::Config(
            "--metrics-push-prometheus-job must not be empty".into(),
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
    let registry = consort_metrics::Registry::with_categories(
        &client_version(),
        consort_metrics::Categories::only(args.metrics_category.iter().copied()),
    )?;
    let store = open_store(&args, &genesis, Some(&registry))?;
    let chain_id = genesis.chain_id;
    let genesis = Arc::new(genesis);

    let chain_metrics = metrics::ChainMetrics::new(&registry)?;
    chain_metrics.set_min_gas_price(args.min_gas_price);
    let head = store.head_header()?;
    chain_metrics.set_head(&head);

    let mut core = Qbft::with_config(
        key,
        QbftConfig {
            early_round_change: args.qbft_early_round_change,
            round_timeout_max_ms: args.qbft_round_timeout_max_seconds.saturating_mul(1000),
        },
    );
    let restored = driver::restore_consensus_state(&mut core, &store).map_err(|e| {
        NodeError::Config(format!(
            "the persisted consensus state in {} (meta/qbft) cannot be read: {e}. \
             Restore the data directory from a backup; or, only if this validator has not \
             voted at height {} and above, delete the database and resync",
            args.data_path.join("database").display(),
            head.number.saturating_add(1)
        ))
    })?;
    if let Some(state) = restored {
        tracing::info!(
            height = state.height,
            round = state.round,
            "resuming consensus above the round acted in before the restart"
        );
    }
    let address = core.address();
    let sets = Arc::new(validators::ValidatorSets::new(
        store.clone(),
        genesis.clone(),
    ));
    let voting = validators::NodeVoting::open(store.clone(), sets.clone()).map_err(|e| {
        NodeError::Config(format!(
            "the saved validator votes in {} (meta/validator_votes) cannot be read: {e}",
            args.data_path.join("database").display()
        ))
    })?;
    let validators = sets
        .after(&head)
        .map_err(|e| {
            NodeError::Config(format!(
                "the validators after block {} cannot be found: {e}",
                head.number
            ))
        })?
        .validators();
    let is_validator = validators.contains(&address);
    let genesis_hash = store.canonical_hash(0)?.unwrap_or_default();
    let static_nodes = static_nodes(&args)?;
    let permissions = permissions::setup(&args, &store, &genesis, &registry, &static_nodes)?;
    let mut pool = TxPool::new(
        PoolConfig {
            max_transactions: args.tx_pool_max_size,
            max_per_sender: config::share_of(
                args.tx_pool_max_size,
                args.tx_pool_limit_by_account_percentage,
            ),
            max_pool_bytes: args.tx_pool_layer_max_capacity,
            max_bytes_per_sender: config::share_of(
                args.tx_pool_layer_max_capacity,
                args.tx_pool_limit_by_account_percentage,
            ),
            price_bump_percent: args.tx_pool_price_bump,
            max_future_by_sender: args.tx_pool_max_future_by_sender,
            min_gas_price: args.min_gas_price,
            ..PoolConfig::default()
        },
        driver::head_context(&genesis, &head),
    );
    if let Some(p) = permissions.as_ref().filter(|p| p.account_rules_enabled()) {
        pool = pool.with_admission(Arc::new(permissions::PoolAdmission {
            permissions: p.clone(),
            store: store.clone(),
        }));
    }
    for group in args.rpc_http_api.iter().chain(&args.rpc_ws_api) {
        if let Some(name) = group.unsupported() {
            tracing::warn!("JSON-RPC API group {name} is not available in consort; ignored");
        }
    }
    let network_metrics = NetworkMetrics::new(&registry)?;
    let network = if args.p2p_enabled {
        let config = NetworkConfig {
            key,
            listen: SocketAddr::new(args.p2p_interface, args.p2p_port),
            bootnodes: args.bootnodes.clone(),
            static_nodes,
            max_peers: args.max_peers,
            discovery: args.discovery_enabled,
            network_id: format!(
                "{chain_id}-{}",
                hex::encode(genesis_hash.get(..4).unwrap_or_default())
            ),
            client_version: client_version(),
            redial_interval: std::time::Duration::from_secs(3),
            advertised_host: Some(args.p2p_host),
            gate: permissions
                .as_ref()
                .filter(|p| p.node_rules_enabled())
                .map(|p| p.clone() as Arc<dyn consort_network::ConnectionGate>),
        };
        let inbound = network_metrics.events.clone();
        let (handle, events) = consort_network::start(config, network_metrics).await?;
        Some((handle, events, inbound))
    } else {
        None
    };
    // Peers are told the advertised host, on the port actually bound.
    let enode = network.as_ref().map(|(h, _, _)| Enode {
        id: h.enode().id,
        addr: SocketAddr::new(args.p2p_host, h.enode().addr.port()),
    });
    let sync_status = Arc::new(SyncStatus::default());
    let qbft_metrics = metrics::QbftMetrics::new(&registry)?;
    let queue_metrics = executors::Executors::new(&registry)?.consensus;
    executors::RuntimeMetrics::new(&registry)?
        .sample_on_scrape(&registry, tokio::runtime::Handle::current());
    let (pending_txs, _) = broadcast::channel(4096);
    let (new_blocks, _) = broadcast::channel(256);
    let tx_batch = Arc::new(txgossip::TxBatch::default());
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
            snapshots_dir: Some(args.data_path.join("snapshots")),
        },
        limits: RpcLimits {
            gas_cap: args.rpc_gas_cap,
            call_timeout: std::time::Duration::from_millis(args.rpc_call_timeout_ms),
            max_logs_range: args.rpc_max_logs_range.max(1),
            ..RpcLimits::default()
        },
        filters: Mutex::new(Default::default()),
        metrics: consort_rpc::RpcMetrics::new(&registry)?,
        pool_metrics: consort_txpool::PoolMetrics::new(&registry)?,
        network: network
            .as_ref()
            .zip(enode.clone())
            .map(|((h, _, _), enode)| {
                Arc::new(p2p::RpcNetwork(h.clone(), enode, tx_batch.clone()))
                    as Arc<dyn consort_rpc::PeerNetwork>
            }),
        sync: sync_status.clone(),
        permissions: permissions.as_ref().map(|p| p.local().clone()),
        validators: Some(Arc::new(voting.clone())),
        on_nodes_changed: network.as_ref().map(|(h, _, _)| {
            let handle = h.clone();
            Arc::new(move || handle.recheck_peers()) as Arc<dyn Fn() + Send + Sync>
        }),
    });

    let rpc = consort_rpc::start(
        ctx.clone(),
        RpcServerConfig {
            http: args.rpc_http_enabled.then(|| TransportConfig {
                addr: SocketAddr::new(args.rpc_http_host, args.rpc_http_port),
                apis: args.rpc_http_api.clone(),
                auth: rpc_security.http_auth.clone(),
                tls: rpc_security.tls.clone(),
            }),
            ws: args.rpc_ws_enabled.then(|| TransportConfig {
                addr: SocketAddr::new(args.rpc_ws_host, args.rpc_ws_port),
                apis: args.rpc_ws_api.clone(),
                auth: rpc_security.ws_auth.clone(),
                tls: None,
            }),
            host_allowlist: args.host_allowlist.clone(),
            cors_origins: args.rpc_http_cors_origins.clone(),
            max_batch: args.rpc_http_max_batch_size,
            max_response_bytes: args.rpc_max_response_size,
            max_http_connections: args.rpc_http_max_active_connections,
            max_ws_connections: args.rpc_ws_max_active_connections,
            max_request_bytes: args.rpc_http_max_request_content_length,
            max_ws_message_bytes: args.rpc_ws_max_frame_size,
            max_ws_subscriptions: args.rpc_ws_max_subscriptions_per_connection,
        },
    )
    .await?;
    let otlp =
        otlp_config.map(|config| consort_metrics::otlp::start_otlp(registry.clone(), config));
    let pusher = args.metrics_push_enabled.then(|| {
        consort_metrics::start_push(
            registry.clone(),
            consort_metrics::PushConfig {
                host: args.metrics_push_host.clone(),
                port: args.metrics_push_port,
                interval: std::time::Duration::from_secs(args.metrics_push_interval),
                job: args.metrics_push_prometheus_job.clone(),
            },
        )
    });
    let metrics = if args.metrics_enabled && protocols.contains(&MetricsProtocol::Prometheus) {
        Some(
            consort_metrics::serve(
                &SocketAddr::new(args.metrics_host, args.metrics_port).to_string(),
                registry,
                args.host_allowlist.clone(),
                rpc_security.metrics_auth.clone(),
            )
            .await?,
        )
    } else {
        None
    };

    // Besu's `messagequeuelimit` bounds the events waiting for the consensus thread.
    let queue_limit = chain_genesis_queue_limit(&genesis);
    let (driver_tx, driver_rx) = DriverSender::channel(
        queue_limit,
        qbft_metrics.queue_dropped.clone(),
        queue_metrics.clone(),
    );
    let chain = Chain {
        store,
        genesis,
        metrics: chain_metrics,
        permissions: permissions.clone(),
        validators: sets,
        votes: voting.votes.clone(),
        known_senders: Some(ctx.pool.clone()),
    };
    let handle_of_network = network.as_ref().map(|(h, _, _)| h.clone());
    if let Some((handle, events, executor)) = network {
        let (hints_tx, hints_rx) = mpsc::channel(256);
        let inbound = p2p::Inbound {
            network: handle.clone(),
            judge: p2p::GossipJudge::new(
                ctx.clone(),
                chain.clone(),
                qbft_metrics.clone(),
                sync_status.clone(),
            ),
            driver: driver_tx.clone(),
            hints: hints_tx,
            executor,
            txs: tx_batch,
        };
        tokio::spawn(inbound.run(events));
        let syncer = sync::Syncer {
            network: handle,
            chain: chain.clone(),
            driver: driver_tx.clone(),
            status: sync_status.clone(),
            metrics: qbft_metrics.clone(),
            one_behind: None,
            sync_started: None,
        };
        tokio::spawn(syncer.run(hints_rx));
    }
    let host = driver::TokioHost {
        runtime: tokio::runtime::Handle::current(),
        events: driver_tx.clone(),
        network: handle_of_network.clone(),
    };
    let driver = Driver::new(core, chain, ctx, host, sync_status, qbft_metrics);
    let driver = std::thread::Builder::new()
        .name("qbft".into())
        .spawn(move || driver.run(driver_rx, &queue_metrics))
        .map_err(|e| NodeError::Config(format!("cannot start the consensus thread: {e}")))?;

    let handle = NodeHandle {
        http_addr: rpc.http_addr,
        ws_addr: rpc.ws_addr,
        metrics_addr: metrics.as_ref().map(|m| m.local_addr),
        enode: enode.clone(),
        network: handle_of_network,
        rpc,
        metrics,
        pusher,
        otlp,
        driver_tx,
        driver: Some(driver),
    };
    tracing::info!(
        client = %client_version(),
        chain_id,
        genesis_hash = %genesis_hash,
        head = head.number,
        data_path = %args.data_path.display(),
        node_id = %keys::enode_id(&key),
        "node started"
    );
    if is_validator {
        tracing::info!("validator {address:#x}");
    } else {
        tracing::info!("not a validator (node address {address:#x})");
    }
    if let Some(a) = handle.http_addr {
        let scheme = if args.rpc_http_tls_enabled {
            "https"
        } else {
            "http"
        };
        tracing::info!("JSON-RPC HTTP on {scheme}://{a}");
    }
    if let Some(a) = handle.ws_addr {
        tracing::info!("JSON-RPC WebSocket on ws://{a}");
    }
    if let Some(a) = handle.metrics_addr {
        tracing::info!("metrics on http://{a}/metrics");
    }
    if let Some(e) = &handle.enode {
        tracing::info!("P2P on {e}");
    }
    Ok(handle)
}

/// `config.qbft.messagequeuelimit` (Besu's default 1000).
fn chain_genesis_queue_limit(genesis: &Genesis) -> usize {
    genesis
        .qbft
        .as_ref()
        .map_or(1000, |q| {
            usize::try_from(q.message_queue_limit).unwrap_or(usize::MAX)
        })
        .clamp(16, 1 << 20)
}

/// JSON-RPC authentication and TLS from their flags, read before anything starts so that a
/// wrong file or flag stops start-up naming it.
struct RpcSecurity {
    http_auth: Option<Arc<consort_rpc::auth::Auth>>,
    ws_auth: Option<Arc<consort_rpc::auth::Auth>>,
    tls: Option<Arc<consort_rpc::tls::ServerTlsConfig>>,
    metrics_auth: Option<consort_metrics::Authorizer>,
}

impl RpcSecurity {
    fn from_args(args: &NodeArgs) -> Result<RpcSecurity, NodeError> {
        use consort_rpc::auth::{Auth, AuthSettings};
        let auth = |enabled: bool, prefix: &str, settings: AuthSettings| {
            enabled
                .then(|| Auth::from_settings(prefix, &settings).map(Arc::new))
                .transpose()
                .map_err(|e| NodeError::Config(e.to_string()))
        };
        let http_auth = auth(
            args.rpc_http_authentication_enabled,
            "rpc-http",
            AuthSettings {
                credentials_file: args.rpc_http_authentication_credentials_file.clone(),
                jwt_public_key_file: args.rpc_http_authentication_jwt_public_key_file.clone(),
                jwt_algorithm: Some(args.rpc_http_authentication_jwt_algorithm.clone()),
                no_auth_methods: args.rpc_http_api_methods_no_auth.clone(),
            },
        )?;
        let ws_auth = auth(
            args.rpc_ws_authentication_enabled,
            "rpc-ws",
            AuthSettings {
                credentials_file: args.rpc_ws_authentication_credentials_file.clone(),
                jwt_public_key_file: args.rpc_ws_authentication_jwt_public_key_file.clone(),
                jwt_algorithm: Some(args.rpc_ws_authentication_jwt_algorithm.clone()),
                no_auth_methods: args.rpc_ws_api_methods_no_auth.clone(),
            },
        )?;
        let tls = if args.rpc_http_tls_enabled {
            let keystore_file = args.rpc_http_tls_keystore_file.clone().ok_or_else(|| {
                NodeError::Config(
                    "--rpc-http-tls-enabled needs --rpc-http-tls-keystore-file".into(),
                )
            })?;
            let settings = consort_rpc::tls::TlsSettings {
                keystore_file,
                keystore_password_file: args.rpc_http_tls_keystore_password_file.clone(),
                client_auth: args.rpc_http_tls_client_auth_enabled,
                known_clients_file: args.rpc_http_tls_known_clients_file.clone(),
                ca_clients: args.rpc_http_tls_ca_clients_enabled,
                ca_clients_file: args.rpc_http_tls_ca_clients_file.clone(),
            };
            Some(
                consort_rpc::tls::server_config(&settings)
                    .map_err(|e| NodeError::Config(e.to_string()))?,
            )
        } else {
            None
        };
        let metrics_auth = if args.metrics_authentication_enabled {
            let auth = http_auth.clone().ok_or_else(|| {
                NodeError::Config(
                    "--metrics-authentication-enabled needs --rpc-http-authentication-enabled (the tokens are its)".into(),
                )
            })?;
            let authorize: consort_metrics::Authorizer =
                Arc::new(move |token: &str| auth.token_permits(token, "metrics_scrape"));
            Some(authorize)
        } else {
            None
        };
        Ok(RpcSecurity {
            http_auth,
            ws_auth,
            tls,
            metrics_auth,
        })
    }
}

/// Refuses a genesis whose validators consort cannot determine: no `config.qbft`, no
/// validators in `extraData`, or validators read from a contract (not implemented yet).
fn check_validator_mode(genesis: &Genesis) -> Result<(), NodeError> {
    let Some(qbft) = genesis.qbft.as_ref() else {
        return Err(NodeError::Config(
            "the genesis file has no config.qbft section: consort runs QBFT chains only".into(),
        ));
    };
    // Contract mode reads the validators from the contract; the node checks at start-up
    // that it answers.
    if matches!(
        qbft.genesis.validator_selection,
        consort_chainspec::ValidatorSelection::Contract(_)
    ) {
        return Ok(());
    }
    let validators = consort_primitives::QbftExtraData::decode(&genesis.extra_data)
        .map_err(|e| NodeError::Config(format!("genesis field extraData: {e}")))?
        .validators;
    if validators.is_empty() {
        return Err(NodeError::Config(
            "genesis field extraData lists no validators: a QBFT chain needs at least one \
             (RLP [vanity, [validator addresses], [], 0x80, []])"
                .into(),
        ));
    }
    Ok(())
}

/// The static nodes: `--static-nodes-file`, else `<data-path>/static-nodes.json` if present.
fn static_nodes(args: &NodeArgs) -> Result<Vec<Enode>, NodeError> {
    let (path, required) = match &args.static_nodes_file {
        Some(p) => (p.clone(), true),
        None => (args.data_path.join("static-nodes.json"), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(vec![]),
        Err(e) => {
            return Err(NodeError::Config(format!(
                "cannot read static nodes file {}: {e}",
                path.display()
            )))
        }
    };
    let urls: Vec<String> = serde_json::from_str(&text).map_err(|e| {
        NodeError::Config(format!(
            "static nodes file {} is not a JSON array of enode URLs: {e}",
            path.display()
        ))
    })?;
    urls.iter()
        .map(|u| {
            u.parse()
                .map_err(|e| NodeError::Config(format!("{}: {e}", path.display())))
        })
        .collect()
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
