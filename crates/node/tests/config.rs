//! Option parsing: Besu flag names, the TOML config file and its precedence, and errors that
//! name what is wrong. (Environment variables are covered by the binary's end-to-end tests,
//! which set them per process.)

use alloy_primitives::Address;
use clap::Parser;
use consort_node::config::PermissionsConfigError;
use consort_node::{config, ConfigError, NodeArgs};
use consort_permissioning::LocalConfig;
use consort_rpc::ApiGroup;
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Parser, Debug)]
struct Cli {
    #[command(flatten)]
    node: NodeArgs,
}

fn parse(args: &[&str]) -> Result<NodeArgs, ConfigError> {
    let argv: Vec<OsString> = std::iter::once("consort")
        .chain(args.iter().copied())
        .map(OsString::from)
        .collect();
    config::parse::<Cli>(argv).map(|c| c.node)
}

#[test]
fn defaults_are_besus() {
    let a = parse(&[]).unwrap();
    assert_eq!(a.rpc_http_port, 8545);
    assert_eq!(a.rpc_ws_port, 8546);
    assert_eq!(a.metrics_port, 9545);
    assert!(!a.rpc_http_enabled && !a.rpc_ws_enabled && !a.metrics_enabled);
    assert_eq!(
        a.rpc_http_api,
        vec![ApiGroup::Eth, ApiGroup::Net, ApiGroup::Web3]
    );
    assert_eq!(a.host_allowlist, vec!["localhost", "127.0.0.1"]);
    assert_eq!(a.min_gas_price, 1000);
}

#[test]
fn boolean_flags_take_an_optional_value() {
    assert!(parse(&["--rpc-http-enabled"]).unwrap().rpc_http_enabled);
    assert!(
        parse(&["--rpc-http-enabled=true"])
            .unwrap()
            .rpc_http_enabled
    );
    assert!(
        !parse(&["--rpc-http-enabled=false"])
            .unwrap()
            .rpc_http_enabled
    );
    assert!(parse(&["--rpc-http-enabled=maybe"]).is_err());
}

#[test]
fn the_config_file_fills_what_flags_do_not_set() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        "rpc-http-enabled = true\nrpc-http-port = 1234\nrpc-http-api = [\"ETH\", \"QBFT\"]\nhost-allowlist = \"a.example,b.example\"\nmin-gas-price = 5\n",
    )
    .unwrap();
    let config = format!("--config-file={}", file.display());
    let a = parse(&[&config, "--min-gas-price=7"]).unwrap();
    assert!(a.rpc_http_enabled);
    assert_eq!(a.rpc_http_port, 1234);
    assert_eq!(a.rpc_http_api, vec![ApiGroup::Eth, ApiGroup::Qbft]);
    assert_eq!(a.host_allowlist, vec!["a.example", "b.example"]);
    assert_eq!(a.min_gas_price, 7, "the flag wins over the file");
}

#[test]
fn config_file_errors_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "unknown key",
            "rpc-http-port = 1\nrpc-htp-port = 2\n",
            "unknown option 'rpc-htp-port'",
        ),
        ("bad TOML", "rpc-http-port = = 1\n", "is not valid TOML"),
        ("bad value", "rpc-http-port = \"many\"\n", "--rpc-http-port"),
        ("table value", "[rpc]\nport = 1\n", "unknown option 'rpc'"),
    ];
    for (what, text, needle) in cases {
        let file = dir.path().join("c.toml");
        std::fs::write(&file, text).unwrap();
        let err = parse(&[&format!("--config-file={}", file.display())])
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{what}: {err}");
    }
    let err = parse(&["--config-file=/no/such.toml"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("/no/such.toml"), "{err}");
}

const ENODE_1: &str = "enode://069a2438f21a3330a6a26d20d15cb8aa53d4ec3074f7da967e2738f99c11c824837d0223efbd4d59e83dd4da0ff32cc7d551995f18c8cbb5f8da06aff4816566@127.0.0.1:30303";
const ENODE_2: &str = "enode://4d37361f95259ebab1d5c07a40599da398d23fef48f76cfa9c7a99c728a359a5ba9f79c132d3b6c8c4856bba5e96a73d1918b605459f8620d6e984efed822527@127.0.0.1:30304";

#[test]
fn p2p_options_take_besus_names_and_enode_urls() {
    let a = parse(&[]).unwrap();
    assert!(a.p2p_enabled && a.discovery_enabled);
    assert_eq!(a.p2p_port, 30303);
    assert_eq!(a.max_peers, 25);
    assert!(a.bootnodes.is_empty());
    let a = parse(&[
        &format!("--bootnodes={ENODE_1},{ENODE_2}"),
        "--p2p-port=30305",
        "--max-peers=7",
        "--discovery-enabled=false",
    ])
    .unwrap();
    assert_eq!(a.bootnodes.len(), 2);
    assert_eq!(a.bootnodes[1].to_string(), ENODE_2);
    assert_eq!(
        (a.p2p_port, a.max_peers, a.discovery_enabled),
        (30305, 7, false)
    );
    let err = parse(&["--bootnodes=enode://abc@127.0.0.1:1"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--bootnodes") && err.contains("invalid enode URL"),
        "{err}"
    );
}

#[test]
fn a_besu_config_file_starts_unchanged() {
    // The shape of a Besu quick-start validator's config.toml, moved to loopback.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        format!(
            r#"
genesis-file="/config/genesis.json"
node-private-key-file="/opt/besu/keys/key"
data-path="/opt/besu/data"
logging="INFO"
profile="ENTERPRISE"
sync-mode="FULL"
host-allowlist=["*"]
min-gas-price=0
rpc-http-enabled=true
rpc-http-host="127.0.0.1"
rpc-http-port=8545
rpc-http-api=["EEA","WEB3","ETH","NET","TRACE","DEBUG","ADMIN","TXPOOL","PERM","QBFT"]
rpc-http-cors-origins=["all"]
graphql-http-enabled=true
graphql-http-port=8547
metrics-enabled=true
metrics-host="127.0.0.1"
metrics-port=9545
p2p-host="127.0.0.1"
p2p-port=30304
bootnodes=["{ENODE_1}"]
max-peers=25
revert-reason-enabled=true
"#
        ),
    )
    .unwrap();
    let a = parse(&[&format!("--config-file={}", file.display())]).unwrap();
    assert_eq!(a.p2p_port, 30304);
    assert_eq!(a.bootnodes[0].to_string(), ENODE_1);
    assert!(a.rpc_http_api.contains(&ApiGroup::Qbft));
    assert_eq!(
        a.rpc_http_api
            .iter()
            .filter_map(|g| g.unsupported())
            .collect::<Vec<_>>(),
        vec!["EEA", "TRACE"]
    );
    // The same ignored options as flags.
    let a = parse(&[
        "--profile=ENTERPRISE",
        "--sync-mode",
        "FULL",
        "--graphql-http-enabled",
        "--p2p-port=1",
    ])
    .unwrap();
    assert_eq!(a.p2p_port, 1);
    // Permissioning options are read, not dropped.
    std::fs::write(&file, "permissions-nodes-config-file-enabled=true\n").unwrap();
    let a = parse(&[&format!("--config-file={}", file.display())]).unwrap();
    assert!(a.permissions_nodes_config_file_enabled);
}

const ACCOUNT: &str = "0xb9b81ee349c3807e46bc71aa2632203c5b462032";

#[test]
fn permissioning_is_off_by_default_and_defaults_to_the_data_path_file() {
    let a = parse(&["--data-path=/var/consort"]).unwrap();
    assert!(
        !a.permissions_nodes_config_file_enabled && !a.permissions_accounts_config_file_enabled
    );
    assert!(!a.permissions_nodes_contract_enabled && !a.permissions_accounts_contract_enabled);
    assert_eq!(a.permissions_nodes_contract_version, 1);
    assert!(!a.permissions_enabled());
    assert_eq!(a.local_permissions(), LocalConfig::default());
    assert_eq!(a.check_permissions(), Ok(()));
    assert!(a.permission_warnings().is_empty());
    let a = parse(&[
        "--data-path=/var/consort",
        "--permissions-nodes-config-file-enabled",
        "--permissions-accounts-config-file-enabled=true",
    ])
    .unwrap();
    let file = PathBuf::from("/var/consort/permissions_config.toml");
    assert_eq!(
        a.local_permissions(),
        LocalConfig {
            nodes_file: Some(file.clone()),
            accounts_file: Some(file),
        }
    );
}

#[test]
fn permissioning_flags_take_besus_names_and_forms() {
    let a = parse(&[
        "--permissions-nodes-config-file-enabled=true",
        "--permissions-nodes-config-file=/etc/nodes.toml",
        "--permissions-accounts-config-file-enabled=false",
        "--permissions-accounts-config-file=/etc/accounts.toml",
        "--permissions-nodes-contract-enabled",
        "--permissions-nodes-contract-address=0x0000000000000000000000000000000000009999",
        "--permissions-nodes-contract-version=2",
        "--permissions-accounts-contract-enabled",
        &format!("--permissions-accounts-contract-address={ACCOUNT}"),
    ])
    .unwrap();
    assert_eq!(
        a.local_permissions(),
        LocalConfig {
            nodes_file: Some("/etc/nodes.toml".into()),
            accounts_file: None,
        }
    );
    assert_eq!(
        a.permissions_nodes_contract_address,
        Some(Address::left_padding_from(&[0x99, 0x99]))
    );
    assert_eq!(a.permissions_nodes_contract_version, 2);
    assert_eq!(
        a.permissions_accounts_contract_address,
        Some(ACCOUNT.parse().unwrap())
    );
    assert_eq!(a.check_permissions(), Ok(()));
    for bad in [
        "--permissions-nodes-config-file-enabled=maybe",
        "--permissions-nodes-contract-address=0x1234",
        "--permissions-nodes-contract-version=x",
    ] {
        let err = parse(&[bad]).unwrap_err().to_string();
        let flag = bad.split('=').next().unwrap();
        assert!(err.contains(flag), "{bad}: {err}");
    }
}

#[test]
fn permissioning_options_come_from_the_config_file_too() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        format!(
            "permissions-nodes-config-file-enabled=true\npermissions-nodes-config-file=\"/p/perm.toml\"\npermissions-accounts-config-file-enabled=true\npermissions-accounts-config-file=\"/p/perm.toml\"\npermissions-accounts-contract-enabled=true\npermissions-accounts-contract-address=\"{ACCOUNT}\"\npermissions-nodes-contract-version=2\n"
        ),
    )
    .unwrap();
    let config = format!("--config-file={}", file.display());
    let a = parse(&[&config]).unwrap();
    let perm = PathBuf::from("/p/perm.toml");
    assert_eq!(
        a.local_permissions(),
        LocalConfig {
            nodes_file: Some(perm.clone()),
            accounts_file: Some(perm),
        }
    );
    assert!(a.permissions_accounts_contract_enabled);
    assert_eq!(a.permissions_nodes_contract_version, 2);
    // A flag still wins over the file.
    let a = parse(&[&config, "--permissions-nodes-config-file-enabled=false"]).unwrap();
    assert_eq!(a.local_permissions().nodes_file, None);
}

#[test]
fn contract_permissioning_without_an_address_does_not_start() {
    let cases: [(&[&str], PermissionsConfigError, &str); 4] = [
        (
            &["--permissions-nodes-contract-enabled"],
            PermissionsConfigError::NoNodeContractAddress,
            "No node permissioning contract address specified. Cannot enable smart contract based node permissioning.",
        ),
        (
            &["--permissions-accounts-contract-enabled=true"],
            PermissionsConfigError::NoAccountContractAddress,
            "No account permissioning contract address specified. Cannot enable smart contract based account permissioning.",
        ),
        (
            &[
                "--permissions-nodes-contract-enabled",
                "--permissions-nodes-contract-address=0x0000000000000000000000000000000000009999",
                "--permissions-nodes-contract-version=3",
            ],
            PermissionsConfigError::InvalidNodeContractVersion { version: 3 },
            "Invalid node Smart contract permissioning interface version",
        ),
        (
            &[
                "--permissions-nodes-contract-enabled",
                "--permissions-nodes-contract-version=0",
                "--permissions-accounts-contract-enabled",
            ],
            PermissionsConfigError::NoNodeContractAddress,
            "No node permissioning contract address specified. Cannot enable smart contract based node permissioning.",
        ),
    ];
    for (args, expected, message) in cases {
        let err = parse(args).unwrap().check_permissions().unwrap_err();
        assert_eq!(
            (&err, err.to_string().as_str()),
            (&expected, message),
            "{args:?}"
        );
    }
    // The version only matters when the contract is enabled, as in Besu.
    let a = parse(&["--permissions-nodes-contract-version=3"]).unwrap();
    assert_eq!(a.check_permissions(), Ok(()));
}

#[test]
fn permissioning_options_that_do_nothing_are_warned_about() {
    let cases: [(&str, &[&str], &[&str]); 4] = [
        (
            "PERM served without permissioning",
            &["--rpc-ws-api=ETH,PERM"],
            &["Permissions are disabled. Cannot enable PERM APIs when not using Permissions."],
        ),
        (
            "files set but not enabled",
            &[
                "--permissions-nodes-config-file=/n.toml",
                "--permissions-accounts-config-file=/a.toml",
            ],
            &[
                "Node permissioning config file set /n.toml but no permissions enabled",
                "Account permissioning config file set /a.toml but no permissions enabled",
            ],
        ),
        (
            "PERM with a list enabled",
            &["--rpc-http-api=PERM", "--permissions-accounts-config-file-enabled"],
            &[],
        ),
        (
            "contract address without its flag",
            &[&format!("--permissions-accounts-contract-address={ACCOUNT}")],
            &["Account permissioning smart contract address set 0xb9b81ee349c3807e46bc71aa2632203c5b462032 but smart contract account permissioning is disabled."],
        ),
    ];
    for (what, args, expected) in cases {
        assert_eq!(
            parse(args).unwrap().permission_warnings(),
            expected,
            "{what}"
        );
    }
}

#[test]
fn metrics_protocol_and_push_flags_take_besus_names_and_defaults() {
    let a = parse(&[]).unwrap();
    assert_eq!(
        a.metrics_protocol,
        [consort_node::MetricsProtocol::Prometheus]
    );
    assert!(!a.metrics_push_enabled);
    assert_eq!(
        (
            a.metrics_push_host.as_str(),
            a.metrics_push_port,
            a.metrics_push_interval
        ),
        ("127.0.0.1", 9001, 15)
    );
    assert_eq!(a.metrics_push_prometheus_job, "besu-client");
    let a = parse(&[
        "--metrics-protocol=opentelemetry",
        "--metrics-push-enabled",
        "--metrics-push-host=gateway.example",
        "--metrics-push-port=9091",
        "--metrics-push-interval=5",
        "--metrics-push-prometheus-job=consortium",
    ])
    .unwrap();
    assert_eq!(
        a.metrics_protocol,
        [consort_node::MetricsProtocol::Opentelemetry]
    );
    let both = parse(&["--metrics-protocol=PROMETHEUS,opentelemetry"]).unwrap();
    assert_eq!(both.metrics_protocol.len(), 2);
    assert!(a.metrics_push_enabled);
    assert_eq!(a.metrics_push_port, 9091);
    assert!(parse(&["--metrics-protocol=statsd"]).is_err());
    // The categories are taken, not ignored as an unknown Besu option.
    let a = parse(&["--metrics-category=blockchain,KVSTORE_ROCKSDB_STATS"]).unwrap();
    assert_eq!(
        a.metrics_category,
        [
            consort_metrics::Category::Blockchain,
            consort_metrics::Category::KvstoreRocksdbStats
        ]
    );
    let a = parse(&["--metrics-categories", "PROCESS"]).unwrap();
    assert_eq!(a.metrics_category, [consort_metrics::Category::Process]);
    assert!(parse(&["--metrics-push-interval=0"]).is_err());
}
