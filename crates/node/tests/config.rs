//! Option parsing: Besu flag names, the TOML config file and its precedence, and errors that
//! name what is wrong. (Environment variables are covered by the binary's end-to-end tests,
//! which set them per process.)

use clap::Parser;
use consort_node::{config, ConfigError, NodeArgs};
use consort_rpc::ApiGroup;
use std::ffi::OsString;

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
