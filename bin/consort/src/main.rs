//! The `consort` command: a QBFT node and its tools.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod perm;
mod state_test;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(
    name = "consort",
    version,
    about = "A permissioned, Ethereum-compatible QBFT client",
    long_about = "A permissioned, Ethereum-compatible QBFT client.\n\nWithout a subcommand, runs a node. \
                  Every option can also be set as an environment variable CONSORT_<OPTION> \
                  (for example CONSORT_RPC_HTTP_PORT=8545) or as a key of the --config-file TOML \
                  file (rpc-http-port=8545). A flag beats the environment, which beats the file.",
    after_help = "Example: consort --network=dev --rpc-http-enabled --rpc-ws-enabled --metrics-enabled"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    node: consort_node::NodeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Genesis file tools.
    Genesis {
        #[command(subcommand)]
        command: GenesisCommand,
    },
    /// EVM tools.
    Evm {
        #[command(subcommand)]
        command: EvmCommand,
    },
    /// Allowlist contracts: preload them into a genesis file, add and remove nodes, accounts
    /// and admins by transaction.
    Perm {
        #[command(subcommand)]
        command: perm::PermCommand,
    },
}

#[derive(Subcommand, Debug)]
enum GenesisCommand {
    /// Print the genesis block hash, state root, chain id and fork schedule as JSON.
    Inspect {
        /// A genesis file in Besu's format.
        #[arg(long = "genesis-file", value_name = "FILE")]
        genesis_file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum EvmCommand {
    /// Run Ethereum GeneralStateTests through consort's storage, trie and executor.
    StateTest(state_test::Args),
}

fn main() -> ExitCode {
    let cli: Cli = match consort_node::config::parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(consort_node::ConfigError::Cli(e)) => e.exit(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Some(Command::Genesis {
            command: GenesisCommand::Inspect { genesis_file },
        }) => match consort_chainspec::Genesis::from_file(&genesis_file) {
            Ok(genesis) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&genesis.summary()).unwrap_or_default()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Evm {
            command: EvmCommand::StateTest(args),
        }) => state_test::run(args),
        Some(Command::Perm { command }) => perm::run(command),
        None => run_node(cli.node),
    }
}

fn run_node(args: consort_node::NodeArgs) -> ExitCode {
    let level = match args.logging.to_ascii_lowercase().as_str() {
        l @ ("off" | "error" | "warn" | "info" | "debug" | "trace") => l.to_string(),
        "all" => "trace".into(),
        "fatal" => "error".into(),
        other => {
            eprintln!("error: invalid --logging level '{other}' (OFF, FATAL, ERROR, WARN, INFO, DEBUG, TRACE, ALL)");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_from_env("CONSORT_LOG")
        .unwrap_or_else(|_| {
            EnvFilter::new(format!(
                "{level},jsonrpsee=warn,hyper=warn,libp2p_swarm=warn,libp2p_gossipsub=warn,libp2p_kad=error"
            ))
        });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        // A closed stderr (its reader went away) must not take the node down.
        .log_internal_errors(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(consort_node::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
