//! Executing a block's transactions against the head state.

use crate::db::{DbError, StoreDb};
use crate::spec::spec_id;
use alloy_consensus::{Eip658Value, Receipt, ReceiptEnvelope, Transaction, TxType};
use alloy_eips::Typed2718;
use alloy_primitives::{address, Address, Bloom, Bytes, B256, U256};
use consort_chainspec::{Genesis, Hardfork};
use consort_primitives::{recover_signer, Header, SignerError, TxEnvelope, KECCAK_EMPTY};
use consort_storage::{Account, AccountChange, StateChanges, StorageError, Store};
use rayon::prelude::*;
use revm::context::either::Either;
use revm::context::result::{EVMError, ExecutionResult};
use revm::context::{BlockEnv, CfgEnv, TxEnv};
use revm::database::states::bundle_state::BundleRetention;
use revm::database::{BundleState, State};
use revm::database_interface::bal::EvmDatabaseError;
use revm::database_interface::{Database, DatabaseCommitExt};
use revm::handler::SystemCallCommitEvm;
use revm::{Context, ExecuteCommitEvm, MainBuilder, MainContext};

/// EIP-4788 beacon roots contract.
const BEACON_ROOTS_ADDRESS: Address = address!("000F3df6D732807Ef1319fB7B8bB8522d0Beac02");
/// EIP-2935 block hash history contract.
const HISTORY_STORAGE_ADDRESS: Address = address!("0000F90827F1C53a10cb7A02335B175320002935");

/// Why a block could not be executed.
#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    /// A transaction in an imported block is invalid.
    #[error("transaction {index} ({hash}) is invalid: {reason}")]
    InvalidTransaction {
        /// Position in the block.
        index: usize,
        /// Transaction hash.
        hash: B256,
        /// Why it is invalid.
        reason: String,
    },
    /// A transaction's signature does not recover a sender.
    #[error("transaction {index} has an invalid signature: {source}")]
    InvalidSignature {
        /// Position in the block.
        index: usize,
        /// The recovery failure.
        source: SignerError,
    },
    /// Reading state failed.
    #[error("state read failed: {0}")]
    Storage(#[from] StorageError),
    /// revm failed for a reason other than an invalid transaction.
    #[error("EVM failure: {0}")]
    Evm(String),
    /// A read-only call ran past its wall-clock limit (geth's message).
    #[error("execution aborted (timeout = {limit:?})")]
    Timeout {
        /// The limit (`--Xrpc-call-timeout-ms`).
        limit: std::time::Duration,
    },
    /// The block reward does not fit revm's 128-bit balance increment.
    #[error("block reward {0} is too large")]
    RewardTooLarge(U256),
}

impl From<DbError> for ExecutionError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Storage(s) => ExecutionError::Storage(s),
            other => ExecutionError::Evm(other.to_string()),
        }
    }
}

impl From<EvmDatabaseError<DbError>> for ExecutionError {
    fn from(e: EvmDatabaseError<DbError>) -> Self {
        match e {
            EvmDatabaseError::Database(db) => db.into(),
            EvmDatabaseError::Bal(bal) => {
                ExecutionError::Evm(format!("block access list: {bal:?}"))
            }
        }
    }
}

/// A transaction left out of a block being built, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedTransaction {
    /// The transaction's hash.
    pub hash: B256,
    /// Why it could not be included.
    pub reason: String,
}

/// The result of executing a block.
#[derive(Debug)]
pub struct ExecutedBlock {
    /// The transactions executed, in order (when building: those that fit and were valid).
    pub transactions: Vec<TxEnvelope>,
    /// Their senders.
    pub senders: Vec<Address>,
    /// One receipt per transaction.
    pub receipts: Vec<ReceiptEnvelope>,
    /// Gas used by the whole block.
    pub gas_used: u64,
    /// Union of the receipts' blooms.
    pub logs_bloom: Bloom,
    /// Root of the receipts trie.
    pub receipts_root: B256,
    /// Root of the transactions trie.
    pub transactions_root: B256,
    /// The state changes, ready for [`Store::prepare_state`].
    pub changes: StateChanges,
    /// Transactions skipped while building.
    pub skipped: Vec<FailedTransaction>,
}

/// How invalid transactions are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutionMode {
    /// Importing a block: any invalid transaction makes the block invalid.
    Import,
    /// Building a block: invalid transactions and those that do not fit are skipped.
    Build,
}

/// Recovers every sender, in parallel. Fails on the first invalid signature by position.
pub fn recover_senders(txs: &[TxEnvelope]) -> Result<Vec<Address>, ExecutionError> {
    recover_missing_senders(txs, &[])
}

/// [`recover_senders`], except that `known[i]`, where present, is taken as the sender of
/// `txs[i]` (recovered earlier from the same transaction, as the pool does).
pub fn recover_missing_senders(
    txs: &[TxEnvelope],
    known: &[Option<Address>],
) -> Result<Vec<Address>, ExecutionError> {
    txs.par_iter()
        .enumerate()
        .map(|(index, tx)| match known.get(index).copied().flatten() {
            Some(sender) => Ok(sender),
            None => recover_signer(tx)
                .map_err(|source| ExecutionError::InvalidSignature { index, source }),
        })
        .collect()
}

pub(crate) fn tx_env(tx: &TxEnvelope, caller: Address) -> TxEnv {
    TxEnv {
        tx_type: tx.ty(),
        caller,
        gas_limit: tx.gas_limit(),
        gas_price: tx.max_fee_per_gas(),
        kind: tx.kind(),
        value: tx.value(),
        data: tx.input().clone(),
        nonce: tx.nonce(),
        chain_id: tx.chain_id(),
        access_list: tx.access_list().cloned().unwrap_or_default(),
        gas_priority_fee: tx.max_priority_fee_per_gas(),
        blob_hashes: tx
            .blob_versioned_hashes()
            .map(<[B256]>::to_vec)
            .unwrap_or_default(),
        max_fee_per_blob_gas: tx.max_fee_per_blob_gas().unwrap_or_default(),
        authorization_list: tx
            .authorization_list()
            .map(|list| list.iter().cloned().map(Either::Left).collect())
            .unwrap_or_default(),
    }
}

/// The revm configuration for a block of `chain` with this number and timestamp.
pub(crate) fn cfg_env(chain: &Genesis, number: u64, timestamp: u64) -> CfgEnv {
    let fork = chain.forks.active_at(number, timestamp);
    let mut cfg = CfgEnv::new_with_spec(spec_id(fork));
    cfg.chain_id = chain.chain_id;
    if let Some(limit) = chain.contract_size_limit {
        cfg.limit_contract_code_size = Some(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    cfg
}

pub(crate) fn block_env(chain: &Genesis, header: &Header, cfg: &CfgEnv) -> BlockEnv {
    let mut block = BlockEnv {
        number: U256::from(header.number),
        beneficiary: header.beneficiary,
        timestamp: U256::from(header.timestamp),
        gas_limit: header.gas_limit,
        basefee: header.base_fee_per_gas.unwrap_or(0),
        difficulty: header.difficulty,
        // QBFT's constant mixHash doubles as PREVRANDAO after the merge rules (Besu does the same).
        prevrandao: Some(header.mix_hash),
        blob_excess_gas_and_price: None,
        ..Default::default()
    };
    if chain
        .forks
        .is_active(Hardfork::Cancun, header.number, header.timestamp)
    {
        block.set_blob_excess_gas_and_price(
            header.excess_blob_gas.unwrap_or(0),
            cfg.blob_base_fee_update_fraction(),
        );
    }
    block
}

fn has_code<DB: Database>(state: &mut DB, address: Address) -> Result<bool, DB::Error> {
    Ok(state
        .basic(address)?
        .is_some_and(|a| a.code_hash != KECCAK_EMPTY))
}

fn receipt_envelope(ty: TxType, receipt: Receipt) -> ReceiptEnvelope {
    let with_bloom = receipt.with_bloom();
    match ty {
        TxType::Legacy => ReceiptEnvelope::Legacy(with_bloom),
        TxType::Eip2930 => ReceiptEnvelope::Eip2930(with_bloom),
        TxType::Eip1559 => ReceiptEnvelope::Eip1559(with_bloom),
        TxType::Eip4844 => ReceiptEnvelope::Eip4844(with_bloom),
        TxType::Eip7702 => ReceiptEnvelope::Eip7702(with_bloom),
    }
}

/// Executes `txs` (with their recovered `senders`) on top of the head state as the block
/// `header` describes, without writing anything. Includes the EIP-4788 and EIP-2935 system
/// calls when their contracts exist and the QBFT block reward.
pub fn execute_block(
    store: &Store,
    chain: &Genesis,
    header: &Header,
    txs: Vec<TxEnvelope>,
    senders: Vec<Address>,
    mode: ExecutionMode,
) -> Result<ExecutedBlock, ExecutionError> {
    let fork = chain.forks.active_at(header.number, header.timestamp);
    let cfg = cfg_env(chain, header.number, header.timestamp);
    let block = block_env(chain, header, &cfg);
    let mut state = State::builder()
        .with_database_ref(StoreDb::new(store.latest_state()))
        .with_bundle_update()
        .build();
    let beacon_call =
        fork >= Hardfork::Cancun && has_code(&mut state, BEACON_ROOTS_ADDRESS).map_err(db_err)?;
    let history_call = fork >= Hardfork::Prague
        && has_code(&mut state, HISTORY_STORAGE_ADDRESS).map_err(db_err)?;
    let per_tx_cap = chain
        .qbft
        .as_ref()
        .and_then(|q| q.params_at(header.number).per_tx_gas_limit);

    let mut evm = Context::mainnet()
        .with_db(&mut state)
        .with_cfg(cfg)
        .with_block(block)
        .build_mainnet();
    if beacon_call {
        let root = header.parent_beacon_block_root.unwrap_or_default();
        evm.system_call_commit(
            BEACON_ROOTS_ADDRESS,
            Bytes::copy_from_slice(root.as_slice()),
        )
        .map_err(|e| ExecutionError::Evm(format!("beacon roots system call: {e}")))?;
    }
    if history_call {
        evm.system_call_commit(
            HISTORY_STORAGE_ADDRESS,
            Bytes::copy_from_slice(header.parent_hash.as_slice()),
        )
        .map_err(|e| ExecutionError::Evm(format!("block hash history system call: {e}")))?;
    }

    let mut out = ExecutedBlock {
        transactions: Vec::with_capacity(txs.len()),
        senders: Vec::with_capacity(txs.len()),
        receipts: Vec::with_capacity(txs.len()),
        gas_used: 0,
        logs_bloom: Bloom::ZERO,
        receipts_root: B256::ZERO,
        transactions_root: B256::ZERO,
        changes: StateChanges::default(),
        skipped: Vec::new(),
    };
    for (index, (tx, sender)) in txs.into_iter().zip(senders).enumerate() {
        let reject = |reason: String| ExecutionError::InvalidTransaction {
            index,
            hash: *tx.tx_hash(),
            reason,
        };
        let precheck = if tx.is_eip4844() {
            Some("blob transactions are not supported on this chain".to_string())
        } else if out.gas_used.saturating_add(tx.gas_limit()) > header.gas_limit {
            Some(format!(
                "gas limit {} exceeds the block's remaining gas {}",
                tx.gas_limit(),
                header.gas_limit - out.gas_used
            ))
        } else {
            per_tx_cap.filter(|cap| tx.gas_limit() > *cap).map(|cap| {
                format!(
                    "gas limit {} exceeds the per-transaction cap {cap}",
                    tx.gas_limit()
                )
            })
        };
        if let Some(reason) = precheck {
            match mode {
                ExecutionMode::Import => return Err(reject(reason)),
                ExecutionMode::Build => {
                    out.skipped.push(FailedTransaction {
                        hash: *tx.tx_hash(),
                        reason,
                    });
                    continue;
                }
            }
        }
        let result = match evm.transact_commit(tx_env(&tx, sender)) {
            Ok(result) => result,
            Err(EVMError::Transaction(e)) => match mode {
                ExecutionMode::Import => return Err(reject(e.to_string())),
                ExecutionMode::Build => {
                    out.skipped.push(FailedTransaction {
                        hash: *tx.tx_hash(),
                        reason: e.to_string(),
                    });
                    continue;
                }
            },
            Err(EVMError::Database(e)) => return Err(db_err(e)),
            Err(e) => return Err(ExecutionError::Evm(e.to_string())),
        };
        out.gas_used = out.gas_used.saturating_add(result.tx_gas_used());
        let success = matches!(result, ExecutionResult::Success { .. });
        let receipt = Receipt {
            status: Eip658Value::Eip658(success),
            cumulative_gas_used: out.gas_used,
            logs: result.into_logs(),
        };
        let envelope = receipt_envelope(tx.tx_type(), receipt);
        out.logs_bloom.accrue_bloom(envelope.logs_bloom());
        out.receipts.push(envelope);
        out.transactions.push(tx);
        out.senders.push(sender);
    }
    drop(evm);

    if let Some(qbft) = &chain.qbft {
        let params = qbft.params_at(header.number);
        if !params.block_reward.is_zero() {
            let reward = u128::try_from(params.block_reward)
                .map_err(|_| ExecutionError::RewardTooLarge(params.block_reward))?;
            let beneficiary = params.mining_beneficiary.unwrap_or(header.beneficiary);
            state
                .increment_balances([(beneficiary, reward)])
                .map_err(db_err)?;
        }
    }
    state.merge_transitions(BundleRetention::PlainState);
    let bundle = state.take_bundle();
    out.changes = bundle_to_changes(&bundle);
    out.receipts_root = alloy_consensus::proofs::calculate_receipt_root(&out.receipts);
    out.transactions_root = alloy_consensus::proofs::calculate_transaction_root(&out.transactions);
    Ok(out)
}

fn db_err<E: Into<ExecutionError>>(e: E) -> ExecutionError {
    e.into()
}

/// Converts revm's bundle into the changes storage applies. An account whose info is gone was
/// deleted (self-destruct or EIP-161); a destroyed-then-recreated account has its old storage
/// wiped first.
pub fn bundle_to_changes(bundle: &BundleState) -> StateChanges {
    let mut changes = StateChanges::default();
    for (address, account) in &bundle.state {
        let change = match &account.info {
            None => AccountChange {
                account: None,
                wipe_storage: true,
                storage: Default::default(),
            },
            Some(info) => AccountChange {
                account: Some(Account {
                    nonce: info.nonce,
                    balance: info.balance,
                    code_hash: info.code_hash,
                }),
                wipe_storage: account.was_destroyed(),
                storage: account
                    .storage
                    .iter()
                    .map(|(k, slot)| (*k, slot.present_value))
                    .collect(),
            },
        };
        changes.accounts.insert(*address, change);
    }
    for (hash, code) in &bundle.contracts {
        if *hash != KECCAK_EMPTY {
            changes.code.insert(*hash, code.original_bytes());
        }
    }
    changes
}
