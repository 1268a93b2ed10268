//! The `consort` command: a QBFT node and its tools.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod keytools;
mod operator;
mod perm;
mod state_test;
mod storage;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// jemalloc, for Rust and RocksDB alike (it replaces `malloc`): its background thread gives
/// back to the kernel pages left unused for 30 ms (`.cargo/config.toml`), where glibc's
/// per-thread arenas held on to most of what a burst of load freed. `MALLOC_CONF` tunes it
/// at start.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// Network set-up: a genesis file and node keys from a blockchain configuration.
    Operator {
        #[command(subcommand)]
        command: operator::OperatorCommand,
    },
    /// The node key's public key and address.
    PublicKey {
        #[command(subcommand)]
        command: keytools::PublicKeyCommand,
    },
    /// Blocks to and from a file of RLP blocks (Besu's format), with the node stopped.
    Blocks {
        #[command(subcommand)]
        command: BlocksCommand,
    },
    /// Database backups: a consistent snapshot of a running or stopped node.
    Storage {
        #[command(subcommand)]
        command: storage::StorageCommand,
    },
    /// QBFT extraData to and from a validator list.
    Rlp {
        #[command(subcommand)]
        command: keytools::RlpCommand,
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
enum BlocksCommand {
    /// Writes blocks of the chain in --data-path (given with --genesis-file or --network) to a
    /// file, as concatenated RLP blocks with their commit seals.
    Export {
        /// The first block to write.
        #[arg(long = "start-block", value_name = "NUMBER", default_value_t = 0)]
        start: u64,
        /// The block after the last to write (exclusive, as in Besu) [default: the head + 1].
        #[arg(long = "end-block", value_name = "NUMBER")]
        end: Option<u64>,
        /// The file to write.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Imports a file of RLP blocks into the chain in --data-path: every block's header rules
    /// and commit seals are checked and it is executed; a refused block stops the import,
    /// the blocks before it stay.
    Import {
        /// The file to read.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
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
        Some(Command::Operator { command }) => operator::run(command),
        Some(Command::PublicKey { command }) => {
            let key = cli
                .node
                .node_private_key_file
                .clone()
                .unwrap_or_else(|| cli.node.data_path.join("key"));
            keytools::run_public_key(command, key)
        }
        Some(Command::Rlp { command }) => keytools::run_rlp(command),
        Some(Command::Blocks { command }) => run_blocks(command, &cli.node),
        Some(Command::Storage { command }) => storage::run(command, &cli.node),
        None => run_node(cli.node),
    }
}

fn run_blocks(command: BlocksCommand, args: &consort_node::NodeArgs) -> ExitCode {
    use consort_node::blocks;
    let result = match command {
        BlocksCommand::Export { start, end, to } => {
            blocks::export(args, start, end, &to).map(|e| {
                println!(
                    "exported blocks {} to {} to {}",
                    e.first,
                    e.last,
                    to.display()
                )
            })
        }
        BlocksCommand::Import { from } => blocks::import(args, &from).map(|i| {
            println!(
                "imported {} blocks ({} already present); head {} {:#x}, state root {:#x}",
                i.imported, i.known, i.head, i.head_hash, i.state_root
            )
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_node(args: consort_node::NodeArgs) -> ExitCode {
    let directives = match log_directives(&args.logging) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: invalid --logging '{}': {e}", args.logging);
            return ExitCode::from(2);
        }
    };
    let filter =
        EnvFilter::try_from_env("CONSORT_LOG").unwrap_or_else(|_| EnvFilter::new(directives));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A closed stderr (its reader went away) must not take the node down.
        .log_internal_errors(false);
    if args.log_format.eq_ignore_ascii_case("json") {
        logs.json().with_current_span(false).init();
    } else {
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
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

/// `--logging`: a level (Besu's names), then optionally `module=LEVEL` pairs, as a
/// tracing filter; the noisy dependencies are held at WARN unless named.
fn log_directives(logging: &str) -> Result<String, String> {
    fn level(name: &str) -> Result<&'static str, String> {
        Ok(match name.trim().to_ascii_lowercase().as_str() {
            "off" => "off",
            "fatal" | "error" => "error",
            "warn" => "warn",
            "info" => "info",
            "debug" => "debug",
            "trace" | "all" => "trace",
            other => {
                return Err(format!(
                    "'{other}' is not a level (OFF, FATAL, ERROR, WARN, INFO, DEBUG, TRACE, ALL)"
                ))
            }
        })
    }
    let mut parts = logging.split(',');
    let base = level(parts.next().unwrap_or_default())?;
    let mut out = vec![
        base.to_string(),
        "jsonrpsee=warn".into(),
        "hyper=warn".into(),
        "libp2p_swarm=warn".into(),
        "libp2p_gossipsub=warn".into(),
        "libp2p_kad=error".into(),
    ];
    for part in parts {
        let (module, lvl) = part
            .split_once('=')
            .ok_or_else(|| format!("'{part}' is not module=LEVEL"))?;
        let module = module.trim();
        if module.is_empty()
            || !module
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            return Err(format!("'{module}' is not a module path"));
        }
        out.push(format!("{module}={}", level(lvl)?));
    }
    Ok(out.join(","))
}
