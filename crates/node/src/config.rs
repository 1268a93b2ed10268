//! The node's options: Besu's flag names and defaults, environment variables `CONSORT_<FLAG>`,
//! and a TOML `--config-file` with the same keys. Precedence: flag, then environment, then file.

use alloy_primitives::Address;
use clap::parser::ValueSource;
use clap::{ArgAction, Args, CommandFactory, FromArgMatches};
use consort_permissioning::LocalConfig;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Options of the node, as flags.
#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// TOML file with options; keys are the flag names without `--`.
    #[arg(long = "config-file", env = "CONSORT_CONFIG_FILE", value_name = "FILE")]
    pub config_file: Option<PathBuf>,

    /// Built-in network: `dev` is a single-validator QBFT chain with funded development accounts.
    #[arg(long, env = "CONSORT_NETWORK", value_name = "NAME")]
    pub network: Option<String>,

    /// Genesis file in Besu's format.
    #[arg(
        long = "genesis-file",
        env = "CONSORT_GENESIS_FILE",
        value_name = "FILE"
    )]
    pub genesis_file: Option<PathBuf>,

    /// Directory for the database and the node key.
    #[arg(
        long = "data-path",
        env = "CONSORT_DATA_PATH",
        value_name = "PATH",
        default_value = "./consort-data"
    )]
    pub data_path: PathBuf,

    /// File holding the node's secp256k1 private key in hex [default: <data-path>/key, created if absent].
    #[arg(
        long = "node-private-key-file",
        env = "CONSORT_NODE_PRIVATE_KEY_FILE",
        value_name = "FILE"
    )]
    pub node_private_key_file: Option<PathBuf>,

    /// Serve JSON-RPC over HTTP.
    #[arg(long = "rpc-http-enabled", env = "CONSORT_RPC_HTTP_ENABLED", action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true", value_name = "BOOL")]
    pub rpc_http_enabled: bool,

    /// Host the HTTP JSON-RPC server listens on.
    #[arg(
        long = "rpc-http-host",
        env = "CONSORT_RPC_HTTP_HOST",
        default_value = "127.0.0.1"
    )]
    pub rpc_http_host: IpAddr,

    /// Port of the HTTP JSON-RPC server.
    #[arg(
        long = "rpc-http-port",
        env = "CONSORT_RPC_HTTP_PORT",
        default_value_t = 8545
    )]
    pub rpc_http_port: u16,

    /// API groups served over HTTP (ETH, NET, WEB3, TXPOOL, QBFT, DEBUG, ADMIN, PERM).
    #[arg(
        long = "rpc-http-api",
        alias = "rpc-http-apis",
        env = "CONSORT_RPC_HTTP_API",
        value_delimiter = ',',
        default_value = "ETH,NET,WEB3"
    )]
    pub rpc_http_api: Vec<consort_rpc::ApiGroup>,

    /// Origins allowed to call JSON-RPC from a browser (`*` for all).
    #[arg(
        long = "rpc-http-cors-origins",
        env = "CONSORT_RPC_HTTP_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub rpc_http_cors_origins: Vec<String>,

    /// Most requests in one JSON-RPC batch.
    #[arg(
        long = "rpc-http-max-batch-size",
        env = "CONSORT_RPC_HTTP_MAX_BATCH_SIZE",
        default_value_t = 1024
    )]
    pub rpc_http_max_batch_size: u32,

    /// Largest HTTP JSON-RPC request body, in bytes; a larger one is answered 413.
    #[arg(
        long = "rpc-http-max-request-content-length",
        env = "CONSORT_RPC_HTTP_MAX_REQUEST_CONTENT_LENGTH",
        default_value_t = consort_rpc::DEFAULT_MAX_REQUEST_BYTES,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub rpc_http_max_request_content_length: u32,

    /// Most open HTTP JSON-RPC connections.
    #[arg(
        long = "rpc-http-max-active-connections",
        env = "CONSORT_RPC_HTTP_MAX_ACTIVE_CONNECTIONS",
        default_value_t = 80
    )]
    pub rpc_http_max_active_connections: u32,

    /// Require a JWT on JSON-RPC over HTTP (from /login or an outside issuer).
    #[arg(long = "rpc-http-authentication-enabled", env = "CONSORT_RPC_HTTP_AUTHENTICATION_ENABLED", action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true", value_name = "BOOL")]
    pub rpc_http_authentication_enabled: bool,

    /// TOML users (bcrypt-hashed passwords, permissions) who get tokens from /login.
    #[arg(
        long = "rpc-http-authentication-credentials-file",
        env = "CONSORT_RPC_HTTP_AUTHENTICATION_CREDENTIALS_FILE",
        value_name = "FILE"
    )]
    pub rpc_http_authentication_credentials_file: Option<PathBuf>,

    /// PEM public key of the outside JWT issuer (turns /login off).
    #[arg(
        long = "rpc-http-authentication-jwt-public-key-file",
        env = "CONSORT_RPC_HTTP_AUTHENTICATION_JWT_PUBLIC_KEY_FILE",
        value_name = "FILE"
    )]
    pub rpc_http_authentication_jwt_public_key_file: Option<PathBuf>,

    /// Signature algorithm of outside JWTs: RS256, RS384, RS512, ES256 or ES384.
    #[arg(
        long = "rpc-http-authentication-jwt-algorithm",
        env = "CONSORT_RPC_HTTP_AUTHENTICATION_JWT_ALGORITHM",
        default_value = "RS256"
    )]
    pub rpc_http_authentication_jwt_algorithm: String,

    /// Methods callable without a token when authentication is on.
    #[arg(
        long = "rpc-http-api-methods-no-auth",
        env = "CONSORT_RPC_HTTP_API_METHODS_NO_AUTH",
        value_delimiter = ',',
        num_args = 0..,
        value_name = "METHOD"
    )]
    pub rpc_http_api_methods_no_auth: Vec<String>,

    /// Serve JSON-RPC over HTTPS (needs --rpc-http-tls-keystore-file).
    #[arg(long = "rpc-http-tls-enabled", env = "CONSORT_RPC_HTTP_TLS_ENABLED", action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true", value_name = "BOOL")]
    pub rpc_http_tls_enabled: bool,

    /// The server certificate and key: a PKCS#12 keystore, or PEM with the chain and the key.
    #[arg(
        long = "rpc-http-tls-keystore-file",
        env = "CONSORT_RPC_HTTP_TLS_KEYSTORE_FILE",
        value_name = "FILE"
    )]
    pub rpc_http_tls_keystore_file: Option<PathBuf>,

    /// File holding the PKCS#12 keystore's password.
    #[arg(
        long = "rpc-http-tls-keystore-password-file",
        env = "CONSORT_RPC_HTTP_TLS_KEYSTORE_PASSWORD_FILE",
        value_name = "FILE"
    )]
    pub rpc_http_tls_keystore_password_file: Option<PathBuf>,

    /// Require a client certificate, known by fingerprint or signed by a trusted CA.
    #[arg(long = "rpc-http-tls-client-auth-enabled", env = "CONSORT_RPC_HTTP_TLS_CLIENT_AUTH_ENABLED", action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true", value_name = "BOOL")]
    pub rpc_http_tls_client_auth_enabled: bool,

    /// Clients allowed by certificate: `<name> <SHA-256 fingerprint>` per line.
    #[arg(
        long = "rpc-http-tls-known-clients-file",
        env = "CONSORT_RPC_HTTP_TLS_KNOWN_CLIENTS_FILE",
        value_name = "FILE"
    )]
    pub rpc_http_tls_known_clients_file: Option<PathBuf>,

    /// Also allow clients whose certificate a trusted CA signed.
    #[arg(long = "rpc-http-tls-ca-clients-enabled", env = "CONSORT_RPC_HTTP_TLS_CA_CLIENTS_ENABLED", action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true", value_name = "BOOL")]
    pub rpc_http_tls_ca_clients_enabled: bool,

    /// PEM bundle of the CAs trusted for client certificates [default: the system's].
    #[arg(
        long = "Xrpc-http-tls-ca-clients-file",
        env = "CONSORT_XRPC_HTTP_TLS_CA_CLIENTS_FILE",
        value_name = "FILE"
    )]
    pub rpc_http_tls_ca_clients_file: Option<PathBuf>,

    /// Serve JSON-RPC over WebSocket.
    #[arg(long = "rpc-ws-enabled", env = "CONSORT_RPC_WS_ENABLED", action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true", value_name = "BOOL")]
    pub rpc_ws_enabled: bool,

    /// Host the WebSocket server listens on.
    #[arg(
        long = "rpc-ws-host",
        env = "CONSORT_RPC_WS_HOST",
        default_value = "127.0.0.1"
    )]
    pub rpc_ws_host: IpAddr,

    /// Port of the WebSocket server.
    #[arg(
        long = "rpc-ws-port",
        env = "CONSORT_RPC_WS_PORT",
        default_value_t = 8546
    )]
    pub rpc_ws_port: u16,

    /// API groups served over WebSocket.
    #[arg(
        long = "rpc-ws-api",
        alias = "rpc-ws-apis",
        env = "CONSORT_RPC_WS_API",
        value_delimiter = ',',
        default_value = "ETH,NET,WEB3"
    )]
    pub rpc_ws_api: Vec<consort_rpc::ApiGroup>,

    /// Most open WebSocket connections.
    #[arg(
        long = "rpc-ws-max-active-connections",
        env = "CONSORT_RPC_WS_MAX_ACTIVE_CONNECTIONS",
        default_value_t = 80
    )]
    pub rpc_ws_max_active_connections: u32,

    /// Largest WebSocket JSON-RPC message, in bytes; a larger one closes the connection.
    #[arg(
        long = "rpc-ws-max-frame-size",
        env = "CONSORT_RPC_WS_MAX_FRAME_SIZE",
        default_value_t = 1024 * 1024,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub rpc_ws_max_frame_size: u32,

    /// Most subscriptions one WebSocket connection may hold.
    #[arg(
        long = "rpc-ws-max-subscriptions-per-connection",
        env = "CONSORT_RPC_WS_MAX_SUBSCRIPTIONS_PER_CONNECTION",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub rpc_ws_max_subscriptions_per_connection: u32,

    /// Require a JWT on JSON-RPC over WebSocket (from /login or an outside issuer).
    #[arg(long = "rpc-ws-authentication-enabled", env = "CONSORT_RPC_WS_AUTHENTICATION_ENABLED", action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true", value_name = "BOOL")]
    pub rpc_ws_authentication_enabled: bool,

    /// TOML users (bcrypt-hashed passwords, permissions) who get tokens from /login.
    #[arg(
        long = "rpc-ws-authentication-credentials-file",
        env = "CONSORT_RPC_WS_AUTHENTICATION_CREDENTIALS_FILE",
        value_name = "FILE"
    )]
    pub rpc_ws_authentication_credentials_file: Option<PathBuf>,

    /// PEM public key of the outside JWT issuer (turns /login off).
    #[arg(
        long = "rpc-ws-authentication-jwt-public-key-file",
        env = "CONSORT_RPC_WS_AUTHENTICATION_JWT_PUBLIC_KEY_FILE",
        value_name = "FILE"
    )]
    pub rpc_ws_authentication_jwt_public_key_file: Option<PathBuf>,

    /// Signature algorithm of outside JWTs: RS256, RS384, RS512, ES256 or ES384.
    #[arg(
        long = "rpc-ws-authentication-jwt-algorithm",
        env = "CONSORT_RPC_WS_AUTHENTICATION_JWT_ALGORITHM",
        default_value = "RS256"
    )]
    pub rpc_ws_authentication_jwt_algorithm: String,

    /// Methods callable without a token when authentication is on.
    #[arg(
        long = "rpc-ws-api-methods-no-auth",
        env = "CONSORT_RPC_WS_API_METHODS_NO_AUTH",
        value_delimiter = ',',
        num_args = 0..,
        value_name = "METHOD"
    )]
    pub rpc_ws_api_methods_no_auth: Vec<String>,

    /// Host names allowed in the Host header of JSON-RPC and metrics requests (`*` for all).
    #[arg(
        long = "host-allowlist",
        env = "CONSORT_HOST_ALLOWLIST",
        value_delimiter = ',',
        default_value = "localhost,127.0.0.1"
    )]
    pub host_allowlist: Vec<String>,

    /// Gas cap of eth_call and eth_estimateGas.
    #[arg(
        long = "rpc-gas-cap",
        env = "CONSORT_RPC_GAS_CAP",
        default_value_t = 50_000_000
    )]
    pub rpc_gas_cap: u64,

    /// Most blocks one eth_getLogs may scan.
    #[arg(
        long = "rpc-max-logs-range",
        env = "CONSORT_RPC_MAX_LOGS_RANGE",
        default_value_t = 5_000
    )]
    pub rpc_max_logs_range: u64,

    /// Wall-clock limit of one eth_call or eth_estimateGas, in milliseconds (consort's own;
    /// geth's --rpc.evmtimeout).
    #[arg(
        long = "Xrpc-call-timeout-ms",
        env = "CONSORT_XRPC_CALL_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub rpc_call_timeout_ms: u64,

    /// Largest JSON-RPC response in bytes (a batch's responses together); a larger one is
    /// answered with an error instead.
    #[arg(
        long = "Xrpc-max-response-size",
        env = "CONSORT_XRPC_MAX_RESPONSE_SIZE",
        default_value_t = consort_rpc::DEFAULT_MAX_RESPONSE_BYTES
    )]
    pub rpc_max_response_size: u32,

    /// Least gas price (wei) a transaction must offer to enter the pool.
    #[arg(
        long = "min-gas-price",
        env = "CONSORT_MIN_GAS_PRICE",
        default_value_t = 1_000
    )]
    pub min_gas_price: u128,

    /// Most transactions in the pool.
    #[arg(
        long = "tx-pool-max-size",
        env = "CONSORT_TX_POOL_MAX_SIZE",
        default_value_t = 16_384
    )]
    pub tx_pool_max_size: usize,

    /// Price increase (percent) a replacement transaction must offer.
    #[arg(
        long = "tx-pool-price-bump",
        env = "CONSORT_TX_POOL_PRICE_BUMP",
        default_value_t = 10
    )]
    pub tx_pool_price_bump: u128,

    /// How far past a sender's next nonce a transaction may be queued.
    #[arg(
        long = "tx-pool-max-future-by-sender",
        env = "CONSORT_TX_POOL_MAX_FUTURE_BY_SENDER",
        default_value_t = 200
    )]
    pub tx_pool_max_future_by_sender: u64,

    /// Most bytes of encoded transactions in the pool, in all.
    #[arg(
        long = "tx-pool-layer-max-capacity",
        env = "CONSORT_TX_POOL_LAYER_MAX_CAPACITY",
        default_value_t = 25_000_000
    )]
    pub tx_pool_layer_max_capacity: usize,

    /// Share of the pool, in transactions and in bytes, one sender may hold (above 0, at most 1).
    #[arg(
        long = "tx-pool-limit-by-account-percentage",
        env = "CONSORT_TX_POOL_LIMIT_BY_ACCOUNT_PERCENTAGE",
        default_value_t = 0.5,
        value_parser = account_share
    )]
    pub tx_pool_limit_by_account_percentage: f64,

    /// Blocks of history whose state stays readable (0 keeps all: archive).
    #[arg(
        long = "bonsai-historical-block-limit",
        env = "CONSORT_BONSAI_HISTORICAL_BLOCK_LIMIT",
        default_value_t = 512
    )]
    pub bonsai_historical_block_limit: u64,

    /// Serve Prometheus metrics.
    #[arg(long = "metrics-enabled", env = "CONSORT_METRICS_ENABLED", action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true", value_name = "BOOL")]
    pub metrics_enabled: bool,

    /// Host the metrics server listens on.
    #[arg(
        long = "metrics-host",
        env = "CONSORT_METRICS_HOST",
        default_value = "127.0.0.1"
    )]
    pub metrics_host: IpAddr,

    /// Port of the metrics server.
    #[arg(
        long = "metrics-port",
        env = "CONSORT_METRICS_PORT",
        default_value_t = 9545
    )]
    pub metrics_port: u16,

    /// Metric categories to export, Besu's names in any case [default: all but the KVSTORE_*
    /// RocksDB ones].
    #[arg(
        long = "metrics-category",
        visible_alias = "metrics-categories",
        env = "CONSORT_METRICS_CATEGORY",
        value_delimiter = ',',
        default_value = "BLOCKCHAIN,ETHEREUM,EXECUTORS,NETWORK,PEERS,PERMISSIONING,PRUNER,RPC,SYNCHRONIZER,TRANSACTION_POOL,BLOCK_PROCESSING,BAL,BONSAI_CACHE,QBFT,JVM,PROCESS"
    )]
    pub metrics_category: Vec<consort_metrics::Category>,

    /// How metrics leave the node: PROMETHEUS (the `/metrics` endpoint), OPENTELEMETRY (OTLP
    /// export of metrics and traces, configured by the `OTEL_*` variables) or NONE; both
    /// `PROMETHEUS,OPENTELEMETRY` to pull and push at once.
    #[arg(
        long = "metrics-protocol",
        env = "CONSORT_METRICS_PROTOCOL",
        value_enum,
        ignore_case = true,
        value_delimiter = ',',
        default_value = "PROMETHEUS"
    )]
    pub metrics_protocol: Vec<MetricsProtocol>,

    /// Push metrics to a Prometheus Pushgateway (with or without `--metrics-enabled`).
    #[arg(long = "metrics-push-enabled", env = "CONSORT_METRICS_PUSH_ENABLED", action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true", value_name = "BOOL")]
    pub metrics_push_enabled: bool,

    /// Host of the Pushgateway.
    #[arg(
        long = "metrics-push-host",
        env = "CONSORT_METRICS_PUSH_HOST",
        default_value = "127.0.0.1"
    )]
    pub metrics_push_host: String,

    /// Port of the Pushgateway.
    #[arg(
        long = "metrics-push-port",
        env = "CONSORT_METRICS_PUSH_PORT",
        default_value_t = 9001
    )]
    pub metrics_push_port: u16,

    /// Seconds between pushes (the first comes after half of it).
    #[arg(
        long = "metrics-push-interval",
        env = "CONSORT_METRICS_PUSH_INTERVAL",
        default_value_t = 15,
        value_parser = clap::value_parser!(u64).range(1..=86_400)
    )]
    pub metrics_push_interval: u64,

    /// The Pushgateway job the metrics are pushed under.
    #[arg(
        long = "metrics-push-prometheus-job",
        env = "CONSORT_METRICS_PUSH_PROMETHEUS_JOB",
        default_value = "besu-client"
    )]
    pub metrics_push_prometheus_job: String,

    /// Require a JSON-RPC HTTP token that permits `metrics:*` (a consort extension; needs
    /// `--rpc-http-authentication-enabled`, whose issuer it shares).
    #[arg(long = "metrics-authentication-enabled", env = "CONSORT_METRICS_AUTHENTICATION_ENABLED", action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true", value_name = "BOOL")]
    pub metrics_authentication_enabled: bool,

    /// Take part in the peer-to-peer network.
    #[arg(long = "p2p-enabled", env = "CONSORT_P2P_ENABLED", action = ArgAction::Set, num_args = 0..=1, default_value_t = true, default_missing_value = "true", value_name = "BOOL")]
    pub p2p_enabled: bool,

    /// Host advertised to peers in this node's enode URL.
    #[arg(
        long = "p2p-host",
        env = "CONSORT_P2P_HOST",
        default_value = "127.0.0.1"
    )]
    pub p2p_host: IpAddr,

    /// Interface P2P connections are accepted on.
    #[arg(
        long = "p2p-interface",
        env = "CONSORT_P2P_INTERFACE",
        default_value = "0.0.0.0"
    )]
    pub p2p_interface: IpAddr,

    /// TCP port of P2P connections (0: any free port).
    #[arg(long = "p2p-port", env = "CONSORT_P2P_PORT", default_value_t = 30303)]
    pub p2p_port: u16,

    /// Enode URLs of nodes to connect to at start, comma-separated.
    #[arg(long = "bootnodes", env = "CONSORT_BOOTNODES", value_delimiter = ',', num_args = 0.., value_name = "ENODE")]
    pub bootnodes: Vec<consort_network::Enode>,

    /// Besu's `static-nodes.json`: a JSON array of enode URLs kept connected [default: <data-path>/static-nodes.json if present].
    #[arg(
        long = "static-nodes-file",
        env = "CONSORT_STATIC_NODES_FILE",
        value_name = "FILE"
    )]
    pub static_nodes_file: Option<PathBuf>,

    /// Most connected peers.
    #[arg(long = "max-peers", env = "CONSORT_MAX_PEERS", default_value_t = 25)]
    pub max_peers: u32,

    /// Learn peers beyond the bootnodes from the peers themselves (Kademlia).
    #[arg(long = "discovery-enabled", env = "CONSORT_DISCOVERY_ENABLED", action = ArgAction::Set, num_args = 0..=1, default_value_t = true, default_missing_value = "true", value_name = "BOOL")]
    pub discovery_enabled: bool,

    /// QBFT's f+1 early round change: follow f+1 validators to a higher round at once.
    #[arg(long = "Xqbft-enable-early-round-change", env = "CONSORT_XQBFT_ENABLE_EARLY_ROUND_CHANGE", action = ArgAction::Set, num_args = 0..=1, default_value_t = true, default_missing_value = "true", value_name = "BOOL")]
    pub qbft_early_round_change: bool,

    /// Ceiling of the QBFT round timeout, which doubles each round from requesttimeoutseconds.
    #[arg(
        long = "qbft-round-timeout-max-seconds",
        env = "CONSORT_QBFT_ROUND_TIMEOUT_MAX_SECONDS",
        default_value_t = 30
    )]
    pub qbft_round_timeout_max_seconds: u64,

    /// Allow only the nodes in `nodes-allowlist` of --permissions-nodes-config-file to connect.
    #[arg(long = "permissions-nodes-config-file-enabled", env = "CONSORT_PERMISSIONS_NODES_CONFIG_FILE_ENABLED", action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true", value_name = "BOOL")]
    pub permissions_nodes_config_file_enabled: bool,

    /// TOML file holding `nodes-allowlist` [default: <data-path>/permissions_config.toml].
    #[arg(
        long = "permissions-nodes-config-file",
        env = "CONSORT_PERMISSIONS_NODES_CONFIG_FILE",
        value_name = "FILE"
    )]
    pub permissions_nodes_config_file: Option<PathBuf>,

    /// Allow only the senders in `accounts-allowlist` of --permissions-accounts-config-file to transact.
    #[arg(long = "permissions-accounts-config-file-enabled", env = "CONSORT_PERMISSIONS_ACCOUNTS_CONFIG_FILE_ENABLED", action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true", value_name = "BOOL")]
    pub permissions_accounts_config_file_enabled: bool,

    /// TOML file holding `accounts-allowlist`, possibly the nodes file [default: <data-path>/permissions_config.toml].
    #[arg(
        long = "permissions-accounts-config-file",
        env = "CONSORT_PERMISSIONS_ACCOUNTS_CONFIG_FILE",
        value_name = "FILE"
    )]
    pub permissions_accounts_config_file: Option<PathBuf>,

    /// Deprecated in Besu: ask the node permissioning contract which nodes may connect.
    #[arg(long = "permissions-nodes-contract-enabled", env = "CONSORT_PERMISSIONS_NODES_CONTRACT_ENABLED", action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true", value_name = "BOOL")]
    pub permissions_nodes_contract_enabled: bool,

    /// Deprecated in Besu: address of the node permissioning contract.
    #[arg(
        long = "permissions-nodes-contract-address",
        env = "CONSORT_PERMISSIONS_NODES_CONTRACT_ADDRESS",
        value_name = "ADDRESS"
    )]
    pub permissions_nodes_contract_address: Option<Address>,

    /// Deprecated in Besu: interface version of the node permissioning contract (1: EEA client
    /// spec v5, 2: v6).
    #[arg(
        long = "permissions-nodes-contract-version",
        env = "CONSORT_PERMISSIONS_NODES_CONTRACT_VERSION",
        default_value_t = 1
    )]
    pub permissions_nodes_contract_version: u32,

    /// Deprecated in Besu: ask the account permissioning contract which senders may transact.
    #[arg(long = "permissions-accounts-contract-enabled", env = "CONSORT_PERMISSIONS_ACCOUNTS_CONTRACT_ENABLED", action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true", value_name = "BOOL")]
    pub permissions_accounts_contract_enabled: bool,

    /// Deprecated in Besu: address of the account permissioning contract.
    #[arg(
        long = "permissions-accounts-contract-address",
        env = "CONSORT_PERMISSIONS_ACCOUNTS_CONTRACT_ADDRESS",
        value_name = "ADDRESS"
    )]
    pub permissions_accounts_contract_address: Option<Address>,

    /// Log level (OFF, FATAL, ERROR, WARN, INFO, DEBUG, TRACE, ALL), optionally followed by
    /// levels for single modules: `INFO,consort_qbft=DEBUG,consort_network=TRACE`.
    #[arg(
        long = "logging",
        short = 'l',
        env = "CONSORT_LOGGING",
        default_value = "INFO"
    )]
    pub logging: String,

    /// Log line format: `plain` (human-readable) or `json` (one JSON object per line, for log
    /// shippers).
    #[arg(
        long = "log-format",
        env = "CONSORT_LOG_FORMAT",
        value_name = "FORMAT",
        default_value = "plain",
        value_parser = ["plain", "json"],
        ignore_case = true
    )]
    pub log_format: String,
}

/// Besu's file name of the local allowlists, in the data path.
pub const PERMISSIONS_CONFIG_FILE: &str = "permissions_config.toml";

/// Permissioning options that cannot start a node (Besu's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermissionsConfigError {
    /// `--permissions-nodes-contract-enabled` without `--permissions-nodes-contract-address`.
    #[error("No node permissioning contract address specified. Cannot enable smart contract based node permissioning.")]
    NoNodeContractAddress,
    /// `--permissions-accounts-contract-enabled` without `--permissions-accounts-contract-address`.
    #[error("No account permissioning contract address specified. Cannot enable smart contract based account permissioning.")]
    NoAccountContractAddress,
    /// `--permissions-nodes-contract-version` other than 1 or 2.
    #[error("Invalid node Smart contract permissioning interface version")]
    InvalidNodeContractVersion {
        /// The version given.
        version: u32,
    },
}

impl NodeArgs {
    /// The local allowlists to load: each enabled list with its file, by default
    /// `<data-path>/permissions_config.toml`.
    pub fn local_permissions(&self) -> LocalConfig {
        let file = |path: &Option<PathBuf>| {
            path.clone()
                .unwrap_or_else(|| self.data_path.join(PERMISSIONS_CONFIG_FILE))
        };
        LocalConfig {
            nodes_file: self
                .permissions_nodes_config_file_enabled
                .then(|| file(&self.permissions_nodes_config_file)),
            accounts_file: self
                .permissions_accounts_config_file_enabled
                .then(|| file(&self.permissions_accounts_config_file)),
        }
    }

    /// Whether any permissioning, local or by contract, is enabled.
    pub fn permissions_enabled(&self) -> bool {
        self.permissions_nodes_config_file_enabled
            || self.permissions_accounts_config_file_enabled
            || self.permissions_nodes_contract_enabled
            || self.permissions_accounts_contract_enabled
    }

    /// Besu's start-up checks of the contract options, in its order.
    pub fn check_permissions(&self) -> Result<(), PermissionsConfigError> {
        if self.permissions_nodes_contract_enabled
            && self.permissions_nodes_contract_address.is_none()
        {
            return Err(PermissionsConfigError::NoNodeContractAddress);
        }
        if self.permissions_accounts_contract_enabled
            && self.permissions_accounts_contract_address.is_none()
        {
            return Err(PermissionsConfigError::NoAccountContractAddress);
        }
        let version = self.permissions_nodes_contract_version;
        if self.permissions_nodes_contract_enabled && !matches!(version, 1 | 2) {
            return Err(PermissionsConfigError::InvalidNodeContractVersion { version });
        }
        Ok(())
    }

    /// The warnings Besu logs for permissioning options that do nothing.
    pub fn permission_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let perm_api = self.rpc_http_api.contains(&consort_rpc::ApiGroup::Perm)
            || self.rpc_ws_api.contains(&consort_rpc::ApiGroup::Perm);
        if perm_api && !self.permissions_enabled() {
            warnings.push(
                "Permissions are disabled. Cannot enable PERM APIs when not using Permissions."
                    .to_string(),
            );
        }
        if !self.permissions_nodes_config_file_enabled
            && !self.permissions_accounts_config_file_enabled
        {
            if let Some(path) = &self.permissions_nodes_config_file {
                warnings.push(format!(
                    "Node permissioning config file set {} but no permissions enabled",
                    path.display()
                ));
            }
            if let Some(path) = &self.permissions_accounts_config_file {
                warnings.push(format!(
                    "Account permissioning config file set {} but no permissions enabled",
                    path.display()
                ));
            }
        }
        for (enabled, what) in [
            (self.permissions_nodes_contract_enabled, "node"),
            (self.permissions_accounts_contract_enabled, "account"),
        ] {
            if enabled {
                warnings.push(format!(
                    "Onchain (contract) {what} permissioning options are Deprecated. Onchain permissioning is deprecated. See CHANGELOG for alternative options."
                ));
            }
        }
        if let (false, Some(address)) = (
            self.permissions_nodes_contract_enabled,
            self.permissions_nodes_contract_address,
        ) {
            warnings.push(format!(
                "Node permissioning smart contract address set 0x{} but smart contract node permissioning is disabled.",
                hex::encode(address)
            ));
        }
        if let (false, Some(address)) = (
            self.permissions_accounts_contract_enabled,
            self.permissions_accounts_contract_address,
        ) {
            warnings.push(format!(
                "Account permissioning smart contract address set 0x{} but smart contract account permissioning is disabled.",
                hex::encode(address)
            ));
        }
        warnings
    }

    /// Logs [`NodeArgs::permission_warnings`].
    pub fn warn_about_permissions(&self) {
        for warning in self.permission_warnings() {
            tracing::warn!("{warning}");
        }
    }
}

/// Why the options could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A flag or environment variable is unknown or malformed (clap's message).
    #[error("{0}")]
    Cli(#[from] clap::Error),
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The config file names an option that does not exist.
    #[error("unknown option '{key}' in config file {path}")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// A value in the config file has a type no option takes.
    #[error("option '{key}' in config file {path} has an unsupported value: {value}")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The value as written.
        value: String,
    },
}

fn toml_value(path: &Path, key: &str, value: &toml::Value) -> Result<String, ConfigError> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| toml_value(path, key, v))
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        other => {
            return Err(ConfigError::BadValue {
                path: path.to_path_buf(),
                key: key.to_string(),
                value: other.to_string(),
            })
        }
    })
}

/// `--metrics-protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MetricsProtocol {
    /// The Prometheus `/metrics` endpoint.
    #[value(name = "PROMETHEUS")]
    Prometheus,
    /// OTLP export.
    #[value(name = "OPENTELEMETRY")]
    Opentelemetry,
    /// Nothing served.
    #[value(name = "NONE")]
    None,
}

/// Besu options that change nothing consort does (features it lacks or does differently), so a
/// Besu configuration starts unchanged. Each one given is reported on stderr.
pub const IGNORED_BESU_OPTIONS: &[&str] = &[
    "profile",
    "sync-mode",
    "sync-min-peers",
    "fast-sync-min-peers",
    "nat-method",
    "data-storage-format",
    "revert-reason-enabled",
    "random-peer-priority-enabled",
    "graphql-http-enabled",
    "graphql-http-host",
    "graphql-http-port",
    "graphql-http-cors-origins",
    "tx-pool",
    "tx-pool-retention-hours",
    "tx-pool-no-local-priority",
    "Xdns-enabled",
    "Xdns-update-enabled",
];

/// Parses `--tx-pool-limit-by-account-percentage`: a fraction above 0 and at most 1, as Besu.
fn account_share(s: &str) -> Result<f64, String> {
    let share: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if share > 0.0 && share <= 1.0 {
        Ok(share)
    } else {
        Err(format!("{s} is not above 0 and at most 1"))
    }
}

/// `share` of `total`, rounded up and at least 1.
pub fn share_of(total: usize, share: f64) -> usize {
    let part = (total as f64 * share).ceil();
    if part >= total as f64 {
        total.max(1)
    } else {
        (part as usize).max(1)
    }
}

fn ignored(name: &str) -> bool {
    IGNORED_BESU_OPTIONS.contains(&name)
}

/// Removes ignored Besu options (`--name=value`, `--name value` or a bare `--name`) from `argv`.
fn strip_ignored(argv: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(argv.len());
    let mut args = argv.into_iter().peekable();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy().into_owned();
        let Some(flag) = text.strip_prefix("--") else {
            out.push(arg);
            continue;
        };
        let (name, inline_value) = match flag.split_once('=') {
            Some((n, _)) => (n, true),
            None => (flag, false),
        };
        if !ignored(name) {
            out.push(arg);
            continue;
        }
        eprintln!("warning: ignoring Besu option --{name}: consort does not use it");
        if !inline_value
            && args
                .peek()
                .is_some_and(|next| !next.to_string_lossy().starts_with('-'))
        {
            args.next();
        }
    }
    out
}

/// Parses `argv` into `P` (a command that flattens [`NodeArgs`]), filling options that neither a
/// flag nor an environment variable set from the `--config-file`.
pub fn parse<P: CommandFactory + FromArgMatches>(argv: Vec<OsString>) -> Result<P, ConfigError> {
    let argv = strip_ignored(argv);
    let matches = P::command().try_get_matches_from(argv.clone())?;
    let Some(path) = matches.get_one::<PathBuf>("config_file").cloned() else {
        return Ok(P::from_arg_matches(&matches)?);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Toml {
            path: path.clone(),
            message: e.to_string(),
        })?;
    let command = P::command();
    let mut extra = Vec::new();
    for (key, value) in &table {
        if ignored(key) {
            eprintln!(
                "warning: ignoring Besu option '{key}' in {}: consort does not use it",
                path.display()
            );
            continue;
        }
        let arg = command
            .get_arguments()
            .find(|a| {
                a.get_long() == Some(key.as_str())
                    || a.get_all_aliases()
                        .is_some_and(|al| al.contains(&key.as_str()))
            })
            .ok_or_else(|| ConfigError::UnknownKey {
                path: path.clone(),
                key: key.clone(),
            })?;
        let id = arg.get_id().as_str();
        if matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine) | Some(ValueSource::EnvVariable)
        ) {
            continue;
        }
        let long = arg.get_long().unwrap_or(key);
        extra.push(OsString::from(format!(
            "--{long}={}",
            toml_value(&path, key, value)?
        )));
    }
    let mut full = argv;
    let program = if full.is_empty() {
        OsString::from("consort")
    } else {
        full.remove(0)
    };
    let mut merged = vec![program];
    merged.extend(extra);
    merged.extend(full);
    let matches = P::command().try_get_matches_from(merged)?;
    Ok(P::from_arg_matches(&matches)?)
}
