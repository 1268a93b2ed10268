//! The `consort` command: a QBFT node (in progress) and its tools.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod state_test;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "consort", version, about = "A permissioned, Ethereum-compatible QBFT client", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
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
    let cli = Cli::parse();
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
        None => {
            eprintln!(
                "consort: the node (QBFT block production, JSON-RPC) is not built yet.\n\
                 Available now: `consort genesis inspect --genesis-file FILE` and `consort evm state-test PATH...`.\n\
                 Run `consort --help` for details."
            );
            ExitCode::from(2)
        }
    }
}
