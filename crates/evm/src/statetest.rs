//! Runs Ethereum GeneralStateTests through consort's storage, trie and executor, reporting one
//! result per case and fork in the format of geth's `evm statetest`.

use crate::db::StoreDb;
use crate::executor::bundle_to_changes;
use crate::spec::spec_id;
use alloy_eips::eip2930::{AccessList, AccessListItem};
use alloy_eips::eip7702::{Authorization, SignedAuthorization};
use alloy_primitives::{keccak256, Address, Bytes, Log, TxKind, B256, U256};
use consort_chainspec::Hardfork;
use consort_primitives::{public_key_address, Header, KECCAK_EMPTY};
use consort_storage::{Account, AccountChange, StateChanges, Store, StoreOptions};
use revm::context::either::Either;
use revm::context::result::EVMError;
use revm::context::{BlockEnv, CfgEnv, TxEnv};
use revm::database::states::bundle_state::BundleRetention;
use revm::database::State;
use revm::{Context, ExecuteCommitEvm, MainBuilder, MainContext};
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The outcome of one (test, fork, data/gas/value index) case.
#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    /// Test name.
    pub name: String,
    /// Whether the post-state root and logs hash (or the expected exception) matched.
    pub pass: bool,
    /// The fork the case ran under.
    pub fork: String,
    /// The state root consort computed.
    #[serde(rename = "stateRoot")]
    pub state_root: B256,
    /// What went wrong, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Data index.
    pub d: usize,
    /// Gas index.
    pub g: usize,
    /// Value index.
    pub v: usize,
}

/// Which cases to run.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only this fork (test-suite name, e.g. `Cancun`).
    pub fork: Option<String>,
    /// Only tests whose name contains this.
    pub name: Option<String>,
}

/// A case that was not run, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    /// Test name.
    pub name: String,
    /// Fork name.
    pub fork: String,
    /// Why it was not run.
    pub reason: String,
}

/// Everything a test file produced.
#[derive(Debug, Default)]
pub struct FileReport {
    /// Case results.
    pub cases: Vec<CaseResult>,
    /// Cases not run.
    pub skipped: Vec<Skipped>,
}

/// Every `.json` file under the given files and directories, sorted.
pub fn collect_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()?;
            // Inside directories only test files count; a file named explicitly always does.
            entries.retain(|p| p.is_dir() || p.extension().is_some_and(|e| e == "json"));
            entries.sort();
            out.extend(collect_files(&entries)?);
        } else if path.is_file() {
            out.push(path.clone());
        } else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} does not exist", path.display()),
            ));
        }
    }
    Ok(out)
}

/// Runs every test in one file.
pub fn run_file(path: &Path, filter: &Filter) -> Result<FileReport, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let json: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    let tests = json
        .as_object()
        .ok_or_else(|| format!("{}: not a JSON object of tests", path.display()))?;
    let mut report = FileReport::default();
    for (name, test) in tests {
        if filter
            .name
            .as_ref()
            .is_some_and(|n| !name.contains(n.as_str()))
        {
            continue;
        }
        run_test(name, test, filter, &mut report)
            .map_err(|e| format!("{}: {name}: {e}", path.display()))?;
    }
    Ok(report)
}

fn field<'a>(v: &'a Value, key: &str) -> Result<&'a Value, String> {
    v.get(key).ok_or_else(|| format!("missing `{key}`"))
}

fn u256(v: &Value) -> Result<U256, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("expected a hex string, got {v}"))?;
    let h = s
        .strip_prefix("0x")
        .ok_or_else(|| format!("`{s}` is not 0x-prefixed"))?;
    if h.is_empty() {
        return Ok(U256::ZERO);
    }
    U256::from_str_radix(h, 16).map_err(|e| format!("`{s}`: {e}"))
}

fn u64_of(v: &Value) -> Result<u64, String> {
    let x = u256(v)?;
    u64::try_from(x).map_err(|_| format!("{x} does not fit in 64 bits"))
}

fn bytes(v: &Value) -> Result<Bytes, String> {
    let s = v.as_str().ok_or_else(|| format!("expected hex, got {v}"))?;
    let s = s.strip_prefix(":raw ").unwrap_or(s);
    alloy_primitives::hex::decode(s)
        .map(Bytes::from)
        .map_err(|e| format!("`{s}`: {e}"))
}

fn b256(v: &Value) -> Result<B256, String> {
    Ok(B256::from(u256(v)?.to_be_bytes::<32>()))
}

fn address(v: &Value) -> Result<Address, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("expected an address, got {v}"))?;
    s.parse().map_err(|e| format!("`{s}`: {e}"))
}

fn pre_state(pre: &Value) -> Result<StateChanges, String> {
    let mut changes = StateChanges::default();
    for (addr, acct) in pre.as_object().ok_or("`pre` is not an object")? {
        let code = bytes(field(acct, "code")?)?;
        let code_hash = if code.is_empty() {
            KECCAK_EMPTY
        } else {
            keccak256(&code)
        };
        if !code.is_empty() {
            changes.code.insert(code_hash, code);
        }
        let mut storage = std::collections::BTreeMap::new();
        if let Some(slots) = acct.get("storage").and_then(Value::as_object) {
            for (k, v) in slots {
                storage.insert(u256(&Value::String(k.clone()))?, u256(v)?);
            }
        }
        let account = Account {
            nonce: u64_of(field(acct, "nonce")?)?,
            balance: u256(field(acct, "balance")?)?,
            code_hash,
        };
        changes.accounts.insert(
            address(&Value::String(addr.clone()))?,
            AccountChange {
                account: Some(account),
                wipe_storage: false,
                storage,
            },
        );
    }
    Ok(changes)
}

fn sender(tx: &Value) -> Result<Address, String> {
    if let Some(s) = tx.get("sender") {
        return address(s);
    }
    let key = b256(field(tx, "secretKey")?)?;
    let secret =
        secp256k1::SecretKey::from_byte_array(&key.0).map_err(|e| format!("secretKey: {e}"))?;
    Ok(public_key_address(
        &secp256k1::PublicKey::from_secret_key_global(&secret),
    ))
}

fn access_list(v: &Value) -> Result<AccessList, String> {
    let items = v.as_array().ok_or("access list is not an array")?;
    items
        .iter()
        .map(|item| {
            Ok(AccessListItem {
                address: address(field(item, "address")?)?,
                storage_keys: field(item, "storageKeys")?
                    .as_array()
                    .ok_or("storageKeys is not an array")?
                    .iter()
                    .map(b256)
                    .collect::<Result<_, String>>()?,
            })
        })
        .collect::<Result<Vec<_>, String>>()
        .map(AccessList)
}

fn authorizations(
    v: &Value,
) -> Result<
    Vec<Either<SignedAuthorization, revm::context::transaction::RecoveredAuthorization>>,
    String,
> {
    let items = v.as_array().ok_or("authorizationList is not an array")?;
    items
        .iter()
        .map(|a| {
            let auth = Authorization {
                chain_id: u256(field(a, "chainId")?)?,
                address: address(field(a, "address")?)?,
                nonce: u64_of(field(a, "nonce")?)?,
            };
            let parity = u256(
                a.get("yParity")
                    .or_else(|| a.get("v"))
                    .ok_or("authorization has no yParity")?,
            )?;
            let r = u256(field(a, "r")?)?;
            let s = u256(field(a, "s")?)?;
            match u8::try_from(parity) {
                Ok(p) => Ok(Either::Left(SignedAuthorization::new_unchecked(
                    auth, p, r, s,
                ))),
                Err(_) => Ok(Either::Right(
                    revm::context::transaction::RecoveredAuthorization::new_unchecked(
                        auth,
                        revm::context::transaction::RecoveredAuthority::Invalid,
                    ),
                )),
            }
        })
        .collect()
}

/// Builds the transaction of one case; an error means the test's input itself is invalid
/// (which some tests expect as an exception).
fn tx_env(tx: &Value, d: usize, g: usize, v: usize) -> Result<TxEnv, String> {
    let index = |key: &str, i: usize| -> Result<Value, String> {
        field(tx, key)?
            .as_array()
            .and_then(|a| a.get(i))
            .cloned()
            .ok_or_else(|| format!("`{key}` has no index {i}"))
    };
    let access = match tx
        .get("accessLists")
        .and_then(|l| l.as_array())
        .and_then(|l| l.get(d))
    {
        Some(Value::Null) | None => None,
        Some(list) => Some(access_list(list)?),
    };
    let max_fee = tx.get("maxFeePerGas").map(u256).transpose()?;
    let gas_price = match tx.get("gasPrice") {
        Some(p) => u256(p)?,
        None => max_fee.ok_or("neither gasPrice nor maxFeePerGas")?,
    };
    let blob_fee = tx.get("maxFeePerBlobGas").map(u256).transpose()?;
    let auth = tx
        .get("authorizationList")
        .map(authorizations)
        .transpose()?;
    let tx_type = if auth.is_some() {
        4
    } else if blob_fee.is_some() {
        3
    } else if max_fee.is_some() {
        2
    } else if access.is_some() {
        1
    } else {
        0
    };
    let to = match tx.get("to").and_then(Value::as_str) {
        None | Some("") => TxKind::Create,
        Some(_) => TxKind::Call(address(field(tx, "to")?)?),
    };
    // Blob and EIP-7702 transactions encode `to` as an address: they cannot create contracts.
    if tx_type >= 3 && to.is_create() {
        return Err(format!(
            "a type-{tx_type} transaction cannot create a contract"
        ));
    }
    Ok(TxEnv {
        tx_type,
        caller: sender(tx)?,
        gas_limit: u64_of(&index("gasLimit", g)?)?,
        gas_price: u128::try_from(gas_price)
            .map_err(|_| "gas price exceeds 128 bits".to_string())?,
        kind: to,
        value: u256(&index("value", v)?)?,
        data: bytes(&index("data", d)?)?,
        nonce: u64_of(field(tx, "nonce")?)?,
        chain_id: Some(1),
        access_list: access.unwrap_or_default(),
        gas_priority_fee: tx
            .get("maxPriorityFeePerGas")
            .map(u256)
            .transpose()?
            .map(|p| u128::try_from(p).map_err(|_| "priority fee exceeds 128 bits".to_string()))
            .transpose()?,
        blob_hashes: tx
            .get("blobVersionedHashes")
            .and_then(Value::as_array)
            .map(|h| h.iter().map(b256).collect::<Result<_, _>>())
            .transpose()?
            .unwrap_or_default(),
        max_fee_per_blob_gas: blob_fee
            .map(|f| u128::try_from(f).unwrap_or(u128::MAX))
            .unwrap_or(u128::MAX),
        authorization_list: auth.unwrap_or_default(),
    })
}

fn logs_hash(logs: &[Log]) -> B256 {
    let mut out = Vec::new();
    alloy_rlp::encode_list(logs, &mut out);
    keccak256(&out)
}

/// Tests consort does not run, with the reason (`state-test-skips.txt`).
fn skip_reason(name: &str) -> Option<&'static str> {
    include_str!("state-test-skips.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .find(|(n, _)| *n == name)
        .map(|(_, reason)| reason)
}

/// Forks the suite names that consort does not run, with the reason.
fn unsupported_fork(name: &str) -> Option<&'static str> {
    match name {
        "Constantinople" => {
            Some("revm does not implement EIP-1283 (Constantinople before Petersburg)")
        }
        _ => None,
    }
}

fn run_test(
    name: &str,
    test: &Value,
    filter: &Filter,
    report: &mut FileReport,
) -> Result<(), String> {
    let env = field(test, "env")?;
    let tx = field(test, "transaction")?;
    let post = field(test, "post")?
        .as_object()
        .ok_or("`post` is not an object")?;
    let pre = pre_state(field(test, "pre")?)?;

    // The pre-state goes through consort's own storage as the genesis of a fresh in-memory chain.
    let store = Store::in_memory(StoreOptions {
        history_window: Some(0),
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
    let prepared = store.prepare_state(&pre).map_err(|e| e.to_string())?;
    let genesis = Header {
        state_root: prepared.state_root,
        ..Default::default()
    };
    store
        .commit_block(&genesis, genesis.hash_slow(), &[], &[], prepared)
        .map_err(|e| e.to_string())?;
    let pre_root = genesis.state_root;

    for (fork_name, cases) in post {
        if filter.fork.as_ref().is_some_and(|f| f != fork_name) {
            continue;
        }
        if let Some(reason) = skip_reason(name).or_else(|| unsupported_fork(fork_name)) {
            report.skipped.push(Skipped {
                name: name.into(),
                fork: fork_name.clone(),
                reason: reason.into(),
            });
            continue;
        }
        let Some(fork) = Hardfork::from_test_name(fork_name) else {
            report.skipped.push(Skipped {
                name: name.into(),
                fork: fork_name.clone(),
                reason: "unknown fork name".into(),
            });
            continue;
        };
        let spec = spec_id(fork);
        for case in cases.as_array().ok_or("post cases are not an array")? {
            let indexes = field(case, "indexes")?;
            let idx = |k: &str| {
                indexes
                    .get(k)
                    .and_then(Value::as_u64)
                    .map(|x| x as usize)
                    .ok_or_else(|| format!("bad index `{k}`"))
            };
            let (d, g, v) = (idx("data")?, idx("gas")?, idx("value")?);
            let expected_root = b256(field(case, "hash")?)?;
            let expected_logs = b256(field(case, "logs")?)?;
            let expect_exception = case
                .get("expectException")
                .and_then(Value::as_str)
                .map(str::to_string);

            let mut cfg = CfgEnv::new_with_spec(spec);
            cfg.chain_id = 1;
            cfg.set_max_blobs_per_tx(if fork >= Hardfork::Prague && fork < Hardfork::Osaka {
                9
            } else {
                6
            });
            let mut block = BlockEnv {
                number: u256(field(env, "currentNumber")?)?,
                beneficiary: address(field(env, "currentCoinbase")?)?,
                timestamp: u256(field(env, "currentTimestamp")?)?,
                gas_limit: u64::try_from(u256(field(env, "currentGasLimit")?)?).unwrap_or(u64::MAX),
                basefee: env
                    .get("currentBaseFee")
                    .map(u256)
                    .transpose()?
                    .map(|b| u64::try_from(b).unwrap_or(u64::MAX))
                    .unwrap_or(0),
                difficulty: env
                    .get("currentDifficulty")
                    .map(u256)
                    .transpose()?
                    .unwrap_or_default(),
                prevrandao: Some(
                    env.get("currentRandom")
                        .map(b256)
                        .transpose()?
                        .unwrap_or_default(),
                ),
                ..Default::default()
            };
            if let Some(excess) = env.get("currentExcessBlobGas") {
                block.set_blob_excess_gas_and_price(
                    u64_of(excess)?,
                    cfg.blob_base_fee_update_fraction(),
                );
            }

            let mut result = CaseResult {
                name: name.into(),
                pass: false,
                fork: fork_name.clone(),
                state_root: pre_root,
                error: None,
                d,
                g,
                v,
            };
            let tx_env = match tx_env(tx, d, g, v) {
                Ok(t) => t,
                Err(e) => {
                    result.pass = expect_exception.is_some() && expected_root == pre_root;
                    result.error = Some(format!("transaction not buildable: {e}"));
                    report.cases.push(result);
                    continue;
                }
            };
            let mut state = State::builder()
                .with_database_ref(StoreDb::for_state_tests(store.latest_state()))
                .with_bundle_update()
                .build();
            let outcome = {
                let mut evm = Context::mainnet()
                    .with_db(&mut state)
                    .with_cfg(cfg)
                    .with_block(block)
                    .build_mainnet();
                evm.transact_commit(tx_env)
            };
            let logs = match outcome {
                Ok(r) => r.into_logs(),
                Err(EVMError::Transaction(e)) => {
                    result.error = Some(e.to_string());
                    result.pass = expect_exception.is_some() && expected_root == pre_root;
                    report.cases.push(result);
                    continue;
                }
                Err(e) => {
                    result.error = Some(format!("EVM failure: {e}"));
                    report.cases.push(result);
                    continue;
                }
            };
            state.merge_transitions(BundleRetention::PlainState);
            let changes = bundle_to_changes(&state.take_bundle());
            let prepared = store.prepare_state(&changes).map_err(|e| e.to_string())?;
            result.state_root = prepared.state_root;
            let logs_hash = logs_hash(&logs);
            result.pass = expect_exception.is_none()
                && result.state_root == expected_root
                && logs_hash == expected_logs;
            if let Some(ex) = expect_exception {
                result.error = Some(format!(
                    "expected exception {ex}, but the transaction executed"
                ));
            } else if result.state_root != expected_root {
                result.error = Some(format!("state root mismatch: expected {expected_root}"));
            } else if logs_hash != expected_logs {
                result.error = Some(format!(
                    "logs hash mismatch: got {logs_hash}, expected {expected_logs}"
                ));
            }
            report.cases.push(result);
        }
    }
    Ok(())
}
