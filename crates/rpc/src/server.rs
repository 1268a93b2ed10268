//! The HTTP and WebSocket servers: API groups per transport, host allowlist, CORS, batch, body,
//! response and connection limits, and the wrapper that times every method.

use crate::auth::{Auth, AuthLayer, AuthRpcLayer};
use crate::error::{RpcError, RpcResult};
use crate::RpcContext;
use jsonrpsee::core::middleware::RpcServiceBuilder;
use jsonrpsee::server::middleware::http::HostFilterLayer;
use jsonrpsee::server::{
    serve_with_graceful_shutdown, BatchRequestConfig, Methods, RpcModule, Server, ServerConfig,
    ServerHandle,
};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::{ConnectionId, Extensions};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

/// Besu's JSON-RPC API groups (`--rpc-http-api`, `--rpc-ws-api`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ApiGroup {
    /// `eth_*`
    Eth,
    /// `net_*`
    Net,
    /// `web3_*`
    Web3,
    /// `txpool_*`
    Txpool,
    /// `qbft_*`
    Qbft,
    /// `debug_*`
    Debug,
    /// `admin_*`
    Admin,
    /// `perm_*` (the local node and account allowlists)
    Perm,
    /// A Besu group consort does not serve (`EEA`, `PRIV`, `TRACE`, ...), given by its method
    /// prefix: accepted so Besu configurations start, and reported by [`ApiGroup::unsupported`].
    Unsupported(&'static str),
}

/// Besu's groups that have no methods here, with their prefixes.
const UNSUPPORTED_GROUPS: [&str; 8] = [
    "clique_", "eea_", "ibft_", "miner_", "plugins_", "priv_", "trace_", "graphql_",
];

impl ApiGroup {
    /// Every group, in Besu's order.
    pub const ALL: [ApiGroup; 8] = [
        ApiGroup::Eth,
        ApiGroup::Net,
        ApiGroup::Web3,
        ApiGroup::Txpool,
        ApiGroup::Qbft,
        ApiGroup::Debug,
        ApiGroup::Admin,
        ApiGroup::Perm,
    ];

    /// The method prefix of the group.
    pub fn prefix(self) -> &'static str {
        match self {
            ApiGroup::Eth => "eth_",
            ApiGroup::Net => "net_",
            ApiGroup::Web3 => "web3_",
            ApiGroup::Txpool => "txpool_",
            ApiGroup::Qbft => "qbft_",
            ApiGroup::Debug => "debug_",
            ApiGroup::Admin => "admin_",
            ApiGroup::Perm => "perm_",
            ApiGroup::Unsupported(prefix) => prefix,
        }
    }

    /// The name of a Besu group consort does not serve, upper-case as in Besu's flags.
    pub fn unsupported(self) -> Option<String> {
        match self {
            ApiGroup::Unsupported(prefix) => {
                Some(prefix.trim_end_matches('_').to_ascii_uppercase())
            }
            _ => None,
        }
    }
}

impl std::str::FromStr for ApiGroup {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let matches = |prefix: &str| prefix.trim_end_matches('_').eq_ignore_ascii_case(s.trim());
        ApiGroup::ALL
            .into_iter()
            .find(|g| matches(g.prefix()))
            .or_else(|| {
                UNSUPPORTED_GROUPS
                    .into_iter()
                    .find(|p| matches(p))
                    .map(ApiGroup::Unsupported)
            })
            .ok_or_else(|| {
                format!("unknown JSON-RPC API group '{s}' (expected ETH, NET, WEB3, TXPOOL, QBFT, DEBUG, ADMIN or PERM)")
            })
    }
}

/// One transport's settings.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// Groups served.
    pub apis: Vec<ApiGroup>,
    /// Authentication (`--rpc-http-authentication-enabled`), if on.
    pub auth: Option<Arc<Auth>>,
    /// TLS (`--rpc-http-tls-enabled`), if on.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

/// How long a client has to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of both servers.
#[derive(Debug, Clone)]
pub struct RpcServerConfig {
    /// HTTP (`--rpc-http-enabled`), if enabled.
    pub http: Option<TransportConfig>,
    /// WebSocket (`--rpc-ws-enabled`), if enabled.
    pub ws: Option<TransportConfig>,
    /// `--host-allowlist`: host names, `*` or `all`.
    pub host_allowlist: Vec<String>,
    /// `--rpc-http-cors-origins`: origins, `*` or `all`; empty denies cross-origin requests.
    pub cors_origins: Vec<String>,
    /// Most requests in one batch (Besu `--rpc-http-max-batch-size`).
    pub max_batch: u32,
    /// Largest HTTP request body in bytes (`--rpc-http-max-request-content-length`);
    /// larger ones are answered `413 Payload Too Large`.
    pub max_request_bytes: u32,
    /// Largest WebSocket message in bytes (Besu `--rpc-ws-max-frame-size`); a larger one
    /// closes the connection, as in Besu.
    pub max_ws_message_bytes: u32,
    /// Most subscriptions one WebSocket connection holds; more are refused with an error.
    pub max_ws_subscriptions: u32,
    /// Largest response in bytes, a batch's responses together; a larger one is replaced by
    /// a JSON-RPC error (-32008 for one call, -32011 for a batch) (`--Xrpc-max-response-size`).
    pub max_response_bytes: u32,
    /// Most HTTP requests served at once (Besu `--rpc-http-max-active-connections`); more are
    /// answered `429 Too Many Requests`.
    pub max_http_connections: u32,
    /// Most open WebSocket connections (Besu `--rpc-ws-max-active-connections`); more are
    /// refused the upgrade with `429 Too Many Requests`.
    pub max_ws_connections: u32,
}

/// Default of [`RpcServerConfig::max_request_bytes`]: 5 MiB (Besu's is 128 MiB; with 80
/// connections that would let requests alone hold 10 GiB).
pub const DEFAULT_MAX_REQUEST_BYTES: u32 = 5 * 1024 * 1024;

/// Default of [`RpcServerConfig::max_response_bytes`]: 32 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u32 = 32 * 1024 * 1024;

impl Default for RpcServerConfig {
    fn default() -> Self {
        RpcServerConfig {
            http: None,
            ws: None,
            host_allowlist: vec!["localhost".into(), "127.0.0.1".into()],
            cors_origins: vec![],
            max_batch: 1_024,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            max_ws_message_bytes: 1024 * 1024,
            max_ws_subscriptions: 1024,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_http_connections: 80,
            max_ws_connections: 80,
        }
    }
}

/// The running servers and where they listen.
#[derive(Debug)]
pub struct RpcServerHandle {
    /// HTTP address, if enabled.
    pub http_addr: Option<SocketAddr>,
    /// WebSocket address, if enabled.
    pub ws_addr: Option<SocketAddr>,
    handles: Vec<ServerHandle>,
}

impl RpcServerHandle {
    /// Stops both servers and waits for them.
    pub async fn stop(self) {
        for h in self.handles {
            let _ = h.stop();
            h.stopped().await;
        }
    }
}

/// The transport a request arrived over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Transport {
    Http,
    Ws,
}

/// One client connection: its transport and jsonrpsee's id for it (each server counts its own
/// connections, so the id alone is not unique). Over HTTP, one TCP connection (keep-alive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Connection {
    transport: Transport,
    id: usize,
}

/// Registers a method, timed and counted under its name. It runs where [`on_pool`] says. Its
/// answer is serialized once, straight into the response: a method that returns a typed
/// value (logs, a block) skips building a `serde_json::Value` tree of it first.
pub(crate) fn method<F, R>(module: &mut RpcModule<Arc<RpcContext>>, name: &'static str, f: F)
where
    F: Fn(&RpcContext, Params<'_>) -> RpcResult<R> + Clone + Send + Sync + 'static,
    R: Answer,
{
    register(module, name, move |ctx, params, _| f(ctx, params));
}

/// Like [`method`], for a method that needs to know the connection it was called on.
pub(crate) fn connection_method<F, R>(
    module: &mut RpcModule<Arc<RpcContext>>,
    name: &'static str,
    transport: Transport,
    f: F,
) where
    F: Fn(&RpcContext, Params<'_>, Connection) -> RpcResult<R> + Clone + Send + Sync + 'static,
    R: Answer,
{
    register(module, name, move |ctx, params, extensions| {
        let id = extensions
            .get::<ConnectionId>()
            .ok_or_else(|| RpcError::Internal("request carries no connection id".into()))?;
        f(
            ctx,
            params,
            Connection {
                transport,
                id: id.0,
            },
        )
    });
}

/// The methods that run on the JSON-RPC workers ([`workers`]), besides every `perm_` method:
/// they execute the EVM, scan ranges of blocks or write files. The rest (an in-memory answer,
/// a few point reads through the caches, a pool submission) answer in microseconds and run on
/// the connection's task, which spares each call two thread hand-offs.
pub const BLOCKING_METHODS: &[&str] = &[
    "eth_call",
    "eth_estimateGas",
    "eth_getLogs",
    "eth_getFilterLogs",
    "eth_getFilterChanges",
    "eth_getProof",
    "eth_feeHistory",
    "eth_getBlockReceipts",
    "txpool_content",
    "qbft_getSignerMetrics",
    "admin_createSnapshot",
    "debug_getRawReceipts",
];

/// Whether `name` runs on the JSON-RPC workers ([`BLOCKING_METHODS`]).
fn on_pool(name: &str) -> bool {
    BLOCKING_METHODS.contains(&name) || name.starts_with("perm_")
}

/// The JSON-RPC workers: one thread per core, shared by every server of the process. Slow
/// methods queue here rather than on tokio's blocking pool, which would start a thread for
/// each call in flight (up to 512: at 64 concurrent `eth_call`s on two cores it ran 64 threads
/// and spent its time switching between them) and which the node's own work (serving sync
/// requests, shutting down) shares; a flood of slow calls waits here without taking either.
fn workers() -> Option<&'static rayon::ThreadPool> {
    static WORKERS: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    WORKERS
        .get_or_init(|| {
            let threads = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("rpc-worker-{i}"))
                // A method that panics fails its call (its answer channel drops), not the node.
                .panic_handler(|_| tracing::error!("a JSON-RPC method panicked"))
                .build()
                .inspect_err(|e| tracing::error!("cannot start the JSON-RPC workers: {e}"))
                .ok()
        })
        .as_ref()
}

/// Runs `job` on the JSON-RPC workers (rayon's shared pool if they could not start).
fn on_workers(job: impl FnOnce() + Send + 'static) {
    match workers() {
        Some(pool) => pool.spawn(job),
        None => rayon::spawn(job),
    }
}

/// What a method may answer: anything serializable that can cross to the workers.
pub(crate) trait Answer: serde::Serialize + Clone + Send + Sync + 'static {}
impl<T: serde::Serialize + Clone + Send + Sync + 'static> Answer for T {}

fn register<F, R>(module: &mut RpcModule<Arc<RpcContext>>, name: &'static str, f: F)
where
    F: Fn(&RpcContext, Params<'_>, &Extensions) -> RpcResult<R> + Clone + Send + Sync + 'static,
    R: Answer,
{
    // The method's summary, looked up once rather than by label on every call.
    let timer: Arc<std::sync::OnceLock<consort_metrics::Summary>> = Arc::default();
    let call = move |ctx: &RpcContext, params: Params<'_>, extensions: &Extensions| {
        let start = Instant::now();
        let mut span = crate::traced::method_span(name, extensions);
        let result = f(ctx, params, extensions);
        if let Err(e) = &result {
            span.fail(crate::traced::failure_description(e.kind()));
        }
        drop(span);
        timer
            .get_or_init(|| ctx.metrics.request_time.with_label_values(&[name]))
            .observe_duration(start.elapsed());
        if let Err(e) = &result {
            ctx.metrics
                .errors
                .with_label_values(&[name, e.kind()])
                .inc();
        }
        result.map_err(ErrorObjectOwned::from)
    };
    let registered = if on_pool(name) {
        module
            .register_async_method(name, move |params, ctx, extensions| {
                let call = call.clone();
                async move {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    on_workers(move || {
                        let _ = tx.send(call(&ctx, params, &extensions));
                    });
                    rx.await.unwrap_or_else(|_| {
                        Err(ErrorObjectOwned::from(RpcError::Internal(format!(
                            "{name} stopped before answering"
                        ))))
                    })
                }
            })
            .map(drop)
    } else {
        module
            .register_method(name, move |params, ctx, extensions| {
                call(ctx, params, extensions)
            })
            .map(drop)
    };
    if let Err(e) = registered {
        tracing::error!("JSON-RPC method {name} registered twice: {e}");
    }
}

/// Every method served over `transport`, by group.
fn modules(
    ctx: &Arc<RpcContext>,
    transport: Transport,
) -> Vec<(ApiGroup, RpcModule<Arc<RpcContext>>)> {
    vec![
        (ApiGroup::Eth, crate::eth::module(ctx.clone(), transport)),
        (ApiGroup::Net, crate::misc::net(ctx.clone())),
        (ApiGroup::Web3, crate::misc::web3(ctx.clone())),
        (ApiGroup::Txpool, crate::misc::txpool(ctx.clone())),
        (ApiGroup::Qbft, crate::misc::qbft(ctx.clone())),
        (ApiGroup::Debug, crate::misc::debug(ctx.clone())),
        (ApiGroup::Admin, crate::misc::admin(ctx.clone())),
        (ApiGroup::Perm, crate::perm::module(ctx.clone())),
    ]
}

/// Every method of `apis` as the HTTP server serves them, for callers that run requests
/// in process (the JSON-RPC fuzz target).
pub fn http_methods(ctx: &Arc<RpcContext>, apis: &[ApiGroup]) -> RpcResult<RpcModule<()>> {
    module_for(ctx, apis, Transport::Http)
}

fn module_for(
    ctx: &Arc<RpcContext>,
    apis: &[ApiGroup],
    transport: Transport,
) -> RpcResult<RpcModule<()>> {
    let mut out = RpcModule::new(());
    for (group, module) in modules(ctx, transport) {
        if apis.contains(&group) {
            out.merge(module)
                .map_err(|e| RpcError::Internal(e.to_string()))?;
        }
    }
    let names: Vec<String> = apis
        .iter()
        .filter(|g| !matches!(g, ApiGroup::Unsupported(_)))
        .map(|g| g.prefix().trim_end_matches('_').to_string())
        .collect();
    out.register_method("rpc_modules", move |_, _, _| {
        Value::Object(
            names
                .iter()
                .map(|n| (n.clone(), Value::from("1.0")))
                .collect(),
        )
    })
    .map_err(|e| RpcError::Internal(e.to_string()))?;
    Ok(out)
}

fn cors(origins: &[String]) -> CorsLayer {
    let any = origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case("all"));
    let layer = CorsLayer::new().allow_methods(Any).allow_headers(Any);
    if any {
        layer.allow_origin(Any)
    } else {
        let list: Vec<_> = origins.iter().filter_map(|o| o.parse().ok()).collect();
        layer.allow_origin(AllowOrigin::list(list))
    }
}

/// Starts the enabled servers.
pub async fn start(ctx: Arc<RpcContext>, config: RpcServerConfig) -> RpcResult<RpcServerHandle> {
    // Pending-transaction filters hear of new pool transactions.
    let mut pending = ctx.pending_txs.subscribe();
    let feeder = ctx.clone();
    tokio::spawn(async move {
        loop {
            match pending.recv().await {
                Ok(hash) => {
                    if let Ok(mut f) = feeder.filters.lock() {
                        f.on_pending_transaction(hash);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
        }
    });
    let mut handle = RpcServerHandle {
        http_addr: None,
        ws_addr: None,
        handles: vec![],
    };
    let any_host = config
        .host_allowlist
        .iter()
        .any(|h| h == "*" || h.eq_ignore_ascii_case("all"));
    for (transport, is_ws) in [(&config.http, false), (&config.ws, true)] {
        let Some(t) = transport else { continue };
        let (kind, max_connections, max_request) = if is_ws {
            (
                Transport::Ws,
                config.max_ws_connections,
                config.max_ws_message_bytes,
            )
        } else {
            (
                Transport::Http,
                config.max_http_connections,
                config.max_request_bytes,
            )
        };
        let hosts: Vec<String> = if any_host {
            vec![]
        } else {
            config
                .host_allowlist
                .iter()
                .flat_map(|h| [h.clone(), format!("{h}:*")])
                .collect()
        };
        let host_filter = (!any_host)
            .then(|| HostFilterLayer::new(hosts))
            .transpose()
            .map_err(|e| RpcError::InvalidParams(format!("invalid --host-allowlist: {e}")))?;
        let middleware = tower::ServiceBuilder::new()
            .option_layer(host_filter)
            .layer(cors(&config.cors_origins))
            .layer(crate::traced::TraceLayer)
            .layer(AuthLayer {
                auth: t.auth.clone(),
            });
        let settings = ServerConfig::builder()
            .max_request_body_size(max_request)
            .max_response_body_size(config.max_response_bytes)
            .max_connections(max_connections)
            .max_subscriptions_per_connection(config.max_ws_subscriptions)
            .set_batch_request_config(BatchRequestConfig::Limit(config.max_batch))
            .set_id_provider(HexIdProvider::default());
        let settings = if is_ws {
            settings.ws_only()
        } else {
            settings.http_only()
        };
        let module = module_for(&ctx, &t.apis, kind)?;
        let rpc_middleware = RpcServiceBuilder::new().layer(AuthRpcLayer {
            auth: t.auth.clone(),
        });
        let services = Server::builder()
            .set_config(settings.build())
            .set_http_middleware(middleware)
            .set_rpc_middleware(rpc_middleware)
            .to_service_builder();
        let listener = tokio::net::TcpListener::bind(t.addr).await.map_err(|e| {
            RpcError::Internal(format!("JSON-RPC could not listen on {}: {e}", t.addr))
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| RpcError::Internal(e.to_string()))?;
        let (stop, server) = jsonrpsee::server::stop_channel();
        let methods: Methods = module.into();
        let tls = t.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let open_gauge = if is_ws {
            ctx.metrics.active_ws.clone()
        } else {
            ctx.metrics.active_http.clone()
        };
        tokio::spawn(async move {
            let shutdown = stop.clone().shutdown();
            tokio::pin!(shutdown);
            loop {
                let socket = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((socket, _)) => socket,
                        Err(e) => {
                            // Out of file descriptors, most likely: wait rather than spin.
                            tracing::debug!("JSON-RPC accept on {addr} failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                    () = &mut shutdown => break,
                };
                let _ = socket.set_nodelay(true);
                let service = crate::traced::WithPeer {
                    inner: services.clone().build(methods.clone(), stop.clone()),
                    peer: socket
                        .peer_addr()
                        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
                };
                let stopped = stop.clone().shutdown();
                let open = crate::metrics::OpenConnection::new(&open_gauge);
                match &tls {
                    None => {
                        tokio::spawn(async move {
                            let _open = open;
                            serve_with_graceful_shutdown(socket, service, stopped).await
                        });
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            let _open = open;
                            match tokio::time::timeout(
                                TLS_HANDSHAKE_TIMEOUT,
                                acceptor.accept(socket),
                            )
                            .await
                            {
                                Ok(Ok(stream)) => {
                                    let _ = serve_with_graceful_shutdown(stream, service, stopped)
                                        .await;
                                }
                                Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                                Err(_) => tracing::debug!("TLS handshake timed out"),
                            }
                        });
                    }
                }
            }
        });
        handle.handles.push(server);
        if is_ws {
            handle.ws_addr = Some(addr);
        } else {
            handle.http_addr = Some(addr);
        }
    }
    Ok(handle)
}

/// Subscription ids as geth writes them: `0x` and 32 hex digits.
#[derive(Debug, Default)]
struct HexIdProvider {
    counter: std::sync::atomic::AtomicU64,
}

impl jsonrpsee::core::traits::IdProvider for HexIdProvider {
    fn next_id(&self) -> jsonrpsee::types::SubscriptionId<'static> {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut seed = n.to_be_bytes().to_vec();
        seed.extend_from_slice(&nanos.to_be_bytes());
        let hash = alloy_primitives::keccak256(seed);
        let id = alloy_primitives::hex::encode(hash.get(..16).unwrap_or_default());
        jsonrpsee::types::SubscriptionId::Str(format!("0x{}", id.trim_start_matches('0')).into())
    }
}
