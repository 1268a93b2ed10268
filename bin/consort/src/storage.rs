//! `consort storage snapshot`: a consistent copy of a node's database for backup, taken from a
//! running node over JSON-RPC (`admin_createSnapshot`) or from a stopped node's data path.
//! The copy is a data path of its own: a node started with `--data-path=<to>` (and the same
//! genesis) continues from its head.

use alloy::providers::{Provider, ProviderBuilder};
use consort_node::NodeArgs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub enum StorageCommand {
    /// Copies the chain database to `<to>/database`: from the node at --rpc-url (its ADMIN
    /// API on, on this machine) while it runs, or from --data-path with the node stopped.
    Snapshot {
        /// The directory to write; it must not exist or be empty.
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// A running node's HTTP JSON-RPC, with the ADMIN API enabled.
        #[arg(long = "rpc-url", value_name = "URL")]
        rpc_url: Option<String>,
    },
}

pub fn run(command: StorageCommand, args: &NodeArgs) -> ExitCode {
    let StorageCommand::Snapshot { to, rpc_url } = command;
    let result = crate::operator::check_empty_dir(&to).and_then(|()| match rpc_url {
        Some(url) => from_running_node(&url, &to),
        None => from_data_path(args, &to),
    });
    match result {
        Ok(head) => {
            println!("snapshot of block {head} written to {}", to.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn from_data_path(args: &NodeArgs, to: &Path) -> Result<String, String> {
    let (store, _) = consort_node::open_existing_chain(args).map_err(|e| e.to_string())?;
    let head = store
        .head()
        .map_err(|e| e.to_string())?
        .unwrap_or_default()
        .0;
    std::fs::create_dir_all(to).map_err(|e| format!("--to {}: {e}", to.display()))?;
    store
        .checkpoint(&to.join("database"))
        .map_err(|e| format!("cannot write the snapshot: {e}"))?;
    Ok(head.to_string())
}

fn from_running_node(url: &str, to: &Path) -> Result<String, String> {
    let parsed = url.parse().map_err(|e| format!("--rpc-url {url}: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let answer: serde_json::Value = runtime
        .block_on(async {
            let provider = ProviderBuilder::new().connect_http(parsed);
            provider
                .raw_request("admin_createSnapshot".into(), ())
                .await
        })
        .map_err(|e| format!("admin_createSnapshot at {url}: {e}"))?;
    let made = answer
        .get("path")
        .and_then(serde_json::Value::as_str)
        .map(PathBuf::from)
        .ok_or_else(|| format!("admin_createSnapshot at {url} answered {answer}"))?;
    let head = answer
        .get("blockNumber")
        .and_then(serde_json::Value::as_str)
        .and_then(|n| u64::from_str_radix(n.trim_start_matches("0x"), 16).ok())
        .map_or_else(|| "?".to_string(), |n| n.to_string());
    move_dir(&made, to).map_err(|e| {
        format!(
            "the node wrote the snapshot to {} but it could not be moved to {}: {e}",
            made.display(),
            to.display()
        )
    })?;
    Ok(head)
}

/// Moves `from` to `to` (an empty or missing directory): a rename on one filesystem, else a
/// copy and then the removal of `from`.
fn move_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    if to.exists() {
        std::fs::remove_dir(to)?;
    }
    if let Some(parent) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(_) => {
            copy_dir(from, to)?;
            std::fs::remove_dir_all(from)
        }
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
