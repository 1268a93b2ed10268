//! `consort operator generate-blockchain-config`: a network's genesis file and node keys from
//! Besu's blockchain configuration JSON, laid out as Besu lays them out, so the directory it
//! writes starts a network with no editing beyond choosing ports.

use alloy_primitives::Address;
use consort_primitives::{public_key_address, QbftExtraData};
use secp256k1::{PublicKey, SecretKey, SECP256K1};
use serde_json::{Map, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The most nodes one configuration may generate or import.
const MAX_NODES: u64 = 1024;

#[derive(clap::Subcommand, Debug)]
pub enum OperatorCommand {
    /// Writes a genesis file with the QBFT extraData and each node's keys
    /// (`<to>/keys/<address>/key.priv` and `key.pub`) from a blockchain configuration JSON:
    /// `{"genesis": {...}, "blockchain": {"nodes": {"generate": true, "count": 4}}}`, or
    /// `"nodes": {"keys": ["<public key>", ...]}` to import public keys.
    GenerateBlockchainConfig(GenerateArgs),
}

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// The blockchain configuration JSON.
    #[arg(long = "config-file", value_name = "FILE")]
    config_file: PathBuf,
    /// The directory to write; it must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// The genesis file's name in the output directory.
    #[arg(long, value_name = "NAME", default_value = "genesis.json")]
    genesis_file_name: String,
    /// Each node's private key file name.
    #[arg(long, value_name = "NAME", default_value = "key.priv")]
    private_key_file_name: String,
    /// Each node's public key file name.
    #[arg(long, value_name = "NAME", default_value = "key.pub")]
    public_key_file_name: String,
}

pub fn run(command: OperatorCommand) -> ExitCode {
    let OperatorCommand::GenerateBlockchainConfig(args) = command;
    match generate(&args) {
        Ok(nodes) => {
            for node in &nodes {
                println!("{:#x} {}", node.address, hex_public(&node.public));
            }
            println!(
                "wrote {} and {} node key{} to {}",
                args.genesis_file_name,
                nodes.len(),
                if nodes.len() == 1 { "" } else { "s" },
                args.to.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A node of the generated network: its keys (the private one only when generated here).
struct NodeKeys {
    address: Address,
    public: PublicKey,
    secret: Option<SecretKey>,
}

fn generate(args: &GenerateArgs) -> Result<Vec<NodeKeys>, String> {
    for (flag, name) in [
        ("--genesis-file-name", &args.genesis_file_name),
        ("--private-key-file-name", &args.private_key_file_name),
        ("--public-key-file-name", &args.public_key_file_name),
    ] {
        if !is_plain_file_name(name) {
            return Err(format!("{flag} '{name}' must be a plain file name"));
        }
    }
    if args.private_key_file_name == args.public_key_file_name {
        return Err("--private-key-file-name and --public-key-file-name are the same".into());
    }
    let where_ = args.config_file.display();
    let text = std::fs::read_to_string(&args.config_file)
        .map_err(|e| format!("--config-file {where_}: {e}"))?;
    let config: Value =
        serde_json::from_str(&text).map_err(|e| format!("--config-file {where_}: {e}"))?;
    let mut genesis = config
        .get("genesis")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| format!("--config-file {where_}: no \"genesis\" object"))?;
    check_consensus(&genesis).map_err(|e| format!("--config-file {where_}: {e}"))?;
    let nodes = config
        .get("blockchain")
        .and_then(|b| b.get("nodes"))
        .and_then(Value::as_object)
        .ok_or_else(|| format!("--config-file {where_}: no \"blockchain\".\"nodes\" object"))?;
    let nodes = node_keys(nodes).map_err(|e| format!("--config-file {where_}: {e}"))?;

    let addresses: Vec<Address> = nodes.iter().map(|n| n.address).collect();
    let extra = QbftExtraData::genesis(addresses).encode();
    genesis.insert(
        "extraData".into(),
        Value::String(format!("0x{}", hex::encode(&extra))),
    );
    let genesis_text = serde_json::to_string_pretty(&Value::Object(genesis))
        .map_err(|e| format!("cannot write the genesis: {e}"))?;
    // What is written must start a node: read it back as the node reads it.
    consort_chainspec::Genesis::from_json(&genesis_text)
        .map_err(|e| format!("--config-file {where_}: the genesis is not usable: {e}"))?;

    write_output(args, &genesis_text, &nodes)?;
    Ok(nodes)
}

/// Only QBFT: the `config.qbft` object must be there, IBFT 2.0 and Clique must not.
fn check_consensus(genesis: &Map<String, Value>) -> Result<(), String> {
    let config = genesis
        .get("config")
        .and_then(Value::as_object)
        .ok_or("the genesis has no \"config\" object")?;
    if config.contains_key("ibft2") {
        return Err("IBFT 2.0 (\"config.ibft2\") is not supported; use \"config.qbft\"".into());
    }
    if !config.get("qbft").is_some_and(Value::is_object) {
        return Err("the genesis has no \"config.qbft\" object".into());
    }
    if let Some(curve) = config.get("ecCurve") {
        if curve.as_str() != Some("secp256k1") {
            return Err(format!(
                "\"config.ecCurve\" {curve} is not supported (only secp256k1)"
            ));
        }
    }
    Ok(())
}

/// The nodes' keys: `generate` with `count` makes new key pairs; otherwise `keys` lists the
/// public keys to import (64 bytes in hex, uncompressed without the 04 prefix).
fn node_keys(nodes: &Map<String, Value>) -> Result<Vec<NodeKeys>, String> {
    let generate = match nodes.get("generate") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or("\"blockchain.nodes.generate\" must be true or false")?,
    };
    if generate {
        let count = nodes
            .get("count")
            .and_then(Value::as_u64)
            .filter(|c| (1..=MAX_NODES).contains(c))
            .ok_or(format!(
                "\"blockchain.nodes.count\" must be a number from 1 to {MAX_NODES}"
            ))?;
        return (0..count)
            .map(|_| {
                let secret = consort_node::keys::random_key()
                    .map_err(|e| format!("cannot draw a key: {e}"))?;
                let public = PublicKey::from_secret_key(SECP256K1, &secret);
                Ok(NodeKeys {
                    address: public_key_address(&public),
                    public,
                    secret: Some(secret),
                })
            })
            .collect();
    }
    let keys = nodes.get("keys").and_then(Value::as_array).ok_or(
        "\"blockchain.nodes\" needs \"generate\": true with \"count\", or a \"keys\" array",
    )?;
    if keys.is_empty() || keys.len() as u64 > MAX_NODES {
        return Err(format!(
            "\"blockchain.nodes.keys\" must list 1 to {MAX_NODES} public keys"
        ));
    }
    let mut out: Vec<NodeKeys> = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        let public = key.as_str().and_then(parse_public_key).ok_or_else(|| {
            format!(
                "\"blockchain.nodes.keys\"[{i}] {key} is not a secp256k1 public key \
                     (128 hex digits, without the 04 prefix)"
            )
        })?;
        let address = public_key_address(&public);
        if out.iter().any(|n| n.address == address) {
            return Err(format!(
                "\"blockchain.nodes.keys\"[{i}] is listed twice ({address:#x})"
            ));
        }
        out.push(NodeKeys {
            address,
            public,
            secret: None,
        });
    }
    Ok(out)
}

/// A 64-byte uncompressed public key in hex (with or without `0x`), as Besu writes `key.pub`.
pub fn parse_public_key(text: &str) -> Option<PublicKey> {
    let text = text.trim();
    let bytes = hex::decode(text.strip_prefix("0x").unwrap_or(text)).ok()?;
    if bytes.len() != 64 {
        return None;
    }
    let mut full = Vec::with_capacity(65);
    full.push(0x04);
    full.extend(bytes);
    PublicKey::from_slice(&full).ok()
}

/// `0x` and the 64-byte uncompressed public key, as Besu writes `key.pub`.
pub fn hex_public(key: &PublicKey) -> String {
    let uncompressed = key.serialize_uncompressed();
    format!(
        "0x{}",
        hex::encode(uncompressed.get(1..).unwrap_or_default())
    )
}

/// `--to` may name a missing or an empty directory, nothing else.
pub fn check_empty_dir(to: &Path) -> Result<(), String> {
    match std::fs::read_dir(to) {
        Ok(mut entries) => match entries.next() {
            Some(_) => Err(format!("--to {} exists and is not empty", to.display())),
            None => Ok(()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("--to {}: {e}", to.display())),
    }
}

fn is_plain_file_name(name: &str) -> bool {
    let path = Path::new(name);
    !name.is_empty()
        && path.file_name().is_some_and(|f| f == path.as_os_str())
        && name != "."
        && name != ".."
}

/// Writes everything into a directory beside `to`, then moves it into place, so a failure
/// leaves no half-written network behind.
fn write_output(args: &GenerateArgs, genesis: &str, nodes: &[NodeKeys]) -> Result<(), String> {
    let to = &args.to;
    check_empty_dir(to)?;
    let name = to
        .file_name()
        .ok_or_else(|| format!("--to {} names no directory", to.display()))?;
    let parent = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let staging = parent.join(format!(
        ".{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = write_tree(&staging, args, genesis, nodes).and_then(|()| {
        if to.exists() {
            std::fs::remove_dir(to)?;
        }
        std::fs::rename(&staging, to)
    });
    written.map_err(|e| {
        let _ = std::fs::remove_dir_all(&staging);
        format!("cannot write {}: {e}", to.display())
    })
}

fn write_tree(
    dir: &Path,
    args: &GenerateArgs,
    genesis: &str,
    nodes: &[NodeKeys],
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    write_file(&dir.join(&args.genesis_file_name), genesis, false)?;
    for node in nodes {
        let keys = dir.join("keys").join(format!("{:#x}", node.address));
        std::fs::create_dir_all(&keys)?;
        write_file(
            &keys.join(&args.public_key_file_name),
            &hex_public(&node.public),
            false,
        )?;
        if let Some(secret) = &node.secret {
            write_file(
                &keys.join(&args.private_key_file_name),
                &format!("0x{}", hex::encode(secret.secret_bytes())),
                true,
            )?;
        }
    }
    Ok(())
}

/// Writes `text` to a new file, readable by its owner alone when `private`.
fn write_file(path: &Path, text: &str, private: bool) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    if private {
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
