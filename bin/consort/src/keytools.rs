//! `consort public-key` and `consort rlp`: a node key's public key and address, and QBFT
//! extraData to and from a validator list, as Besu's subcommands of the same names.

use crate::operator::hex_public;
use alloy_primitives::Address;
use consort_primitives::{public_key_address, QbftExtraData};
use secp256k1::{PublicKey, SECP256K1};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The most bytes read from a `--from` file or standard input.
const MAX_INPUT: u64 = 1 << 20;

#[derive(clap::Subcommand, Debug)]
pub enum PublicKeyCommand {
    /// Prints the node's public key (`0x` and 128 hex digits, its enode ID), or writes it to
    /// `--to`.
    Export(KeyArgs),
    /// Prints the node's address (the validator address of a QBFT node), or writes it to
    /// `--to`.
    ExportAddress(KeyArgs),
}

#[derive(clap::Args, Debug)]
pub struct KeyArgs {
    /// The node's private key file [default: `<data-path>/key`].
    #[arg(long = "node-private-key-file", value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Where to write the result [default: standard output].
    #[arg(long, value_name = "FILE")]
    to: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
pub enum RlpCommand {
    /// Encodes a JSON array of validator addresses as genesis extraData (`0x` hex).
    Encode(RlpArgs),
    /// Decodes extraData (`0x` hex) into its validators, vote, round and seals, as JSON.
    Decode(RlpArgs),
}

#[derive(clap::Args, Debug)]
pub struct RlpArgs {
    /// The input file [default: standard input].
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,
    /// Where to write the result [default: standard output].
    #[arg(long, value_name = "FILE")]
    to: Option<PathBuf>,
    /// What the data is: QBFT_EXTRA_DATA (IBFT 2.0's IBFT_EXTRA_DATA is not supported).
    #[arg(long = "type", value_name = "TYPE", default_value = "QBFT_EXTRA_DATA")]
    kind: String,
}

/// Runs a `public-key` subcommand; `default_key` is the node's own key file (from
/// `--node-private-key-file` or `--data-path`).
pub fn run_public_key(command: PublicKeyCommand, default_key: PathBuf) -> ExitCode {
    let (args, address) = match command {
        PublicKeyCommand::Export(args) => (args, false),
        PublicKeyCommand::ExportAddress(args) => (args, true),
    };
    let path = args.key_file.clone().unwrap_or(default_key);
    let result = read_key(&path).and_then(|public| {
        let text = if address {
            format!("{:#x}", public_key_address(&public))
        } else {
            hex_public(&public)
        };
        emit(args.to.as_deref(), &text)
    });
    finish(result)
}

pub fn run_rlp(command: RlpCommand) -> ExitCode {
    let (args, encode) = match command {
        RlpCommand::Encode(args) => (args, true),
        RlpCommand::Decode(args) => (args, false),
    };
    let result = check_type(&args.kind)
        .and_then(|()| read_input(args.from.as_deref()))
        .and_then(|input| {
            if encode {
                encode_extra(&input)
            } else {
                decode_extra(&input)
            }
        })
        .and_then(|text| emit(args.to.as_deref(), &text));
    finish(result)
}

fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read_key(path: &Path) -> Result<PublicKey, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("node key file {}: {e}", path.display()))?;
    let secret = consort_node::keys::parse_key(&text).map_err(|e| {
        format!(
            "node key file {} does not hold a secp256k1 private key in hex: {e}",
            path.display()
        )
    })?;
    Ok(PublicKey::from_secret_key(SECP256K1, &secret))
}

fn check_type(kind: &str) -> Result<(), String> {
    match kind.to_ascii_uppercase().as_str() {
        "QBFT_EXTRA_DATA" => Ok(()),
        "IBFT_EXTRA_DATA" => Err("--type IBFT_EXTRA_DATA: IBFT 2.0 is not supported; use \
                                  --type=QBFT_EXTRA_DATA"
            .into()),
        _ => Err(format!(
            "--type '{kind}' is not a known type (QBFT_EXTRA_DATA)"
        )),
    }
}

fn read_input(from: Option<&Path>) -> Result<String, String> {
    let mut text = String::new();
    let read = match from {
        Some(path) => std::fs::File::open(path)
            .and_then(|f| f.take(MAX_INPUT + 1).read_to_string(&mut text))
            .map_err(|e| format!("--from {}: {e}", path.display())),
        None => std::io::stdin()
            .take(MAX_INPUT + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("standard input: {e}")),
    }?;
    if read as u64 > MAX_INPUT {
        return Err(format!("the input is over {MAX_INPUT} bytes"));
    }
    Ok(text)
}

/// A JSON array of addresses to genesis extraData.
fn encode_extra(input: &str) -> Result<String, String> {
    let values: Vec<serde_json::Value> = serde_json::from_str(input.trim())
        .map_err(|e| format!("expected a JSON array of validator addresses: {e}"))?;
    let mut validators = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        let address = value
            .as_str()
            .and_then(|s| s.parse::<Address>().ok())
            .ok_or_else(|| format!("entry {i} ({value}) is not an address"))?;
        validators.push(address);
    }
    Ok(format!(
        "0x{}",
        hex::encode(QbftExtraData::genesis(validators).encode())
    ))
}

/// extraData hex to JSON: vanity, validators, vote, round and commit seals.
fn decode_extra(input: &str) -> Result<String, String> {
    let text = input.trim();
    let bytes = hex::decode(text.strip_prefix("0x").unwrap_or(text))
        .map_err(|e| format!("expected extraData in hex: {e}"))?;
    let extra = QbftExtraData::decode(&bytes).map_err(|e| format!("not QBFT extraData: {e}"))?;
    let json = serde_json::json!({
        "vanityData": format!("0x{}", hex::encode(&extra.vanity)),
        "validators": extra.validators,
        "vote": extra.vote.map(|v| serde_json::json!({
            "recipient": v.recipient,
            "voteType": if v.add { "ADD" } else { "DROP" },
        })),
        "round": extra.round,
        "seals": extra
            .seals
            .iter()
            .map(|s| format!("{s}"))
            .collect::<Vec<_>>(),
    });
    serde_json::to_string_pretty(&json).map_err(|e| e.to_string())
}

/// Prints `text`, or writes it to `to` (replacing the file whole).
fn emit(to: Option<&Path>, text: &str) -> Result<(), String> {
    match to {
        None => {
            println!("{text}");
            Ok(())
        }
        Some(path) => {
            let tmp = path.with_extension("partial");
            std::fs::write(&tmp, text)
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    format!("--to {}: {e}", path.display())
                })
        }
    }
}
