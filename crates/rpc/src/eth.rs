//! The `eth_` methods.

use crate::convert::{block, block_logs, block_receipts, rpc_header, rpc_transaction};
use crate::error::{revert_reason, RpcError, RpcResult};
use crate::server::{method, Transport};
use crate::{RpcContext, RpcLimits, SyncReader};
use alloy_consensus::Transaction as _;
use alloy_primitives::{Address, Bytes, B256, U256, U64};
use alloy_rpc_types_eth::state::StateOverride;
use alloy_rpc_types_eth::{
    BlockId, BlockNumberOrTag, EIP1186AccountProofResponse, EIP1186StorageProof, FeeHistory,
    Filter, FilterBlockOption, Log as RpcLog, TransactionRequest,
};
use consort_chainspec::Genesis;
use consort_evm::{AccountOverride, CallLimits, CallOutcome, CallRequest};
use consort_primitives::{Header, KECCAK_EMPTY};
use consort_storage::{Account, BlockReader, StateReader, StateSnapshot};
use consort_txpool::{PoolReader, TxSource};
use jsonrpsee::server::{PendingSubscriptionSink, RpcModule, SubscriptionMessage};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::sync::Arc;

/// Reads the next positional parameter.
pub(crate) fn next<T: DeserializeOwned>(
    seq: &mut jsonrpsee::types::params::ParamsSequence<'_>,
) -> RpcResult<T> {
    seq.next::<T>().map_err(invalid)
}

/// Reads the next positional parameter if present.
pub(crate) fn optional<T: DeserializeOwned>(
    seq: &mut jsonrpsee::types::params::ParamsSequence<'_>,
) -> RpcResult<Option<T>> {
    seq.optional_next::<T>().map_err(invalid)
}

fn invalid(e: ErrorObjectOwned) -> RpcError {
    RpcError::InvalidParams(match e.data() {
        Some(d) => format!("{}: {}", e.message(), d.get()),
        None => e.message().to_string(),
    })
}

pub(crate) fn to_json<T: serde::Serialize>(v: T) -> RpcResult<Value> {
    serde_json::to_value(v).map_err(|e| RpcError::Internal(e.to_string()))
}

/// The head's number and hash.
pub(crate) fn head<C: BlockReader + ?Sized>(chain: &C) -> RpcResult<(u64, B256)> {
    chain
        .head()?
        .ok_or_else(|| RpcError::Internal("the chain has no head".into()))
}

/// Number and hash of a block, or None if unknown. Tags: `pending`, `safe` and `finalized` are
/// the head (QBFT blocks are final when imported).
pub(crate) fn resolve<C: BlockReader + ?Sized>(
    chain: &C,
    id: BlockId,
) -> RpcResult<Option<(u64, B256)>> {
    match id {
        BlockId::Hash(h) => {
            let number = chain.block_number(&h.block_hash)?;
            if let (Some(n), Some(true)) = (number, h.require_canonical) {
                if chain.canonical_hash(n)? != Some(h.block_hash) {
                    return Err(RpcError::InvalidParams(format!(
                        "block {} is not canonical",
                        h.block_hash
                    )));
                }
            }
            Ok(number.map(|n| (n, h.block_hash)))
        }
        BlockId::Number(tag) => {
            let number = match tag {
                BlockNumberOrTag::Earliest => 0,
                BlockNumberOrTag::Number(n) => n,
                _ => return head(chain).map(Some),
            };
            Ok(chain.canonical_hash(number)?.map(|h| (number, h)))
        }
    }
}

/// The header whose post-state a state query reads; unknown blocks are an error.
fn state_header<C: BlockReader + ?Sized>(chain: &C, id: Option<BlockId>) -> RpcResult<Header> {
    let id = id.unwrap_or(BlockId::Number(BlockNumberOrTag::Latest));
    let (_, hash) =
        resolve(chain, id)?.ok_or_else(|| RpcError::Unavailable("header not found".into()))?;
    chain
        .header(&hash)?
        .ok_or_else(|| RpcError::Unavailable("header not found".into()))
}

/// The state a state query reads, from one snapshot: a tag naming the head takes the head of
/// that snapshot (no header read); a number or hash takes that block's state if it is kept.
fn state_of<'a, C: BlockReader + StateReader + ?Sized>(
    chain: &'a C,
    id: Option<BlockId>,
) -> RpcResult<C::Snapshot<'a>> {
    let id = match id {
        Some(id) if !names_head(Some(id)) => id,
        _ => return Ok(chain.head_state()?),
    };
    let (number, _) =
        resolve(chain, id)?.ok_or_else(|| RpcError::Unavailable("header not found".into()))?;
    chain.state_at(number).map_err(|e| {
        RpcError::Unavailable(format!("state of block {number} is not available: {e}"))
    })
}

/// Whether a state query names the head's state by a tag.
fn names_head(id: Option<BlockId>) -> bool {
    matches!(
        id,
        None | Some(BlockId::Number(
            BlockNumberOrTag::Latest
                | BlockNumberOrTag::Pending
                | BlockNumberOrTag::Safe
                | BlockNumberOrTag::Finalized,
        ))
    )
}

/// One account as of the block `id` names: at the head, a single read with no snapshot.
fn account_of<C: BlockReader + StateReader + ?Sized>(
    chain: &C,
    address: &Address,
    id: Option<BlockId>,
) -> RpcResult<Option<Account>> {
    if names_head(id) {
        return Ok(chain.head_account(address)?);
    }
    Ok(state_of(chain, id)?.basic_account(address)?)
}

/// `eth_getBalance`.
fn balance<C: BlockReader + StateReader + ?Sized>(
    chain: &C,
    address: &Address,
    id: Option<BlockId>,
) -> RpcResult<U256> {
    Ok(account_of(chain, address, id)?.map_or(U256::ZERO, |a| a.balance))
}

/// `eth_getTransactionCount`: the account's nonce, or for `pending` the nonce after the
/// sender's pending transactions in the pool.
fn transaction_count<C: BlockReader + StateReader + ?Sized>(
    chain: &C,
    pool: impl FnOnce() -> RpcResult<Option<u64>>,
    address: &Address,
    id: Option<BlockId>,
) -> RpcResult<u64> {
    let pending = matches!(id, Some(BlockId::Number(BlockNumberOrTag::Pending)));
    let nonce = account_of(chain, address, id)?.map_or(0, |a| a.nonce);
    if pending {
        if let Some(n) = pool()? {
            return Ok(n.max(nonce));
        }
    }
    Ok(nonce)
}

/// `eth_getCode`.
fn code<C: BlockReader + StateReader + ?Sized>(
    chain: &C,
    address: &Address,
    id: Option<BlockId>,
) -> RpcResult<Bytes> {
    let view = state_of(chain, id)?;
    Ok(match view.basic_account(address)? {
        Some(a) if a.code_hash != KECCAK_EMPTY => view.code(&a.code_hash)?.unwrap_or_default(),
        _ => Bytes::new(),
    })
}

/// `eth_getStorageAt`.
fn storage_at<C: BlockReader + StateReader + ?Sized>(
    chain: &C,
    address: &Address,
    slot: &U256,
    id: Option<BlockId>,
) -> RpcResult<B256> {
    Ok(B256::from(state_of(chain, id)?.storage(address, slot)?))
}

fn call_request(
    req: TransactionRequest,
    overrides: Option<StateOverride>,
) -> RpcResult<CallRequest> {
    if req.blob_versioned_hashes.is_some() || req.sidecar.is_some() {
        return Err(RpcError::InvalidParams(
            "blob transactions are not supported".into(),
        ));
    }
    let input = req
        .input
        .try_into_unique_input()
        .map_err(|e| RpcError::InvalidParams(e.to_string()))?
        .unwrap_or_default();
    let overrides = overrides
        .unwrap_or_default()
        .into_iter()
        .map(|(address, o)| {
            if o.state.is_some() && o.state_diff.is_some() {
                return Err(RpcError::InvalidParams(format!(
                    "account {address} has both 'state' and 'stateDiff'"
                )));
            }
            Ok((
                address,
                AccountOverride {
                    balance: o.balance,
                    nonce: o.nonce,
                    code: o.code,
                    state: o.state.map(|m| m.into_iter().collect()),
                    state_diff: o.state_diff.unwrap_or_default().into_iter().collect(),
                },
            ))
        })
        .collect::<RpcResult<_>>()?;
    Ok(CallRequest {
        from: req.from,
        to: req.to.and_then(|k| k.to().copied()),
        gas: req.gas,
        gas_price: req.gas_price,
        max_fee_per_gas: req.max_fee_per_gas,
        max_priority_fee_per_gas: req.max_priority_fee_per_gas,
        value: req.value,
        input,
        nonce: req.nonce,
        access_list: req.access_list,
        overrides,
    })
}

fn failed_call(outcome: CallOutcome) -> RpcError {
    if outcome.reverted {
        RpcError::Reverted {
            reason: revert_reason(&outcome.output),
            data: outcome.output,
        }
    } else {
        RpcError::Execution(outcome.halt.unwrap_or_else(|| "execution failed".into()))
    }
}

pub(crate) fn hex_u64(n: u64) -> Value {
    Value::String(format!("{n:#x}"))
}

fn hex_u128(n: u128) -> Value {
    Value::String(format!("{n:#x}"))
}

/// The tip the node suggests: the median tip of recent blocks, at least the minimum gas price.
fn suggested_tip<C: BlockReader + ?Sized>(chain: &C, min_gas_price: u128) -> RpcResult<u128> {
    let (number, _) = head(chain)?;
    let mut tips = Vec::new();
    for n in number.saturating_sub(19)..=number {
        let Some(hash) = chain.canonical_hash(n)? else {
            continue;
        };
        let Some(header) = chain.header(&hash)? else {
            continue;
        };
        let base = header.base_fee_per_gas.unwrap_or(0);
        for tx in chain.transactions(&hash)?.unwrap_or_default() {
            tips.push(tx.effective_tip_per_gas(base).unwrap_or(0));
        }
    }
    tips.sort_unstable();
    let median = tips.get(tips.len() / 2).copied().unwrap_or(0);
    Ok(median.max(min_gas_price))
}

fn next_base_fee<C: BlockReader + ?Sized>(chain: &C, genesis: &Genesis) -> RpcResult<u128> {
    let header = chain.head_header()?;
    Ok(genesis
        .child_base_fee(&header, header.timestamp)
        .unwrap_or(0) as u128)
}

/// Fails if `from..=to` spans more blocks than `--rpc-max-logs-range`.
fn check_range(limits: &RpcLimits, from: u64, to: u64) -> RpcResult<()> {
    if to >= from && to - from >= limits.max_logs_range {
        return Err(RpcError::LimitExceeded(format!(
            "requested range of {} blocks exceeds the limit of {}",
            to - from + 1,
            limits.max_logs_range
        )));
    }
    Ok(())
}

/// The logs matching `filter` in blocks `from..=to`, bounded in range and count.
pub(crate) fn logs_in_range<C: BlockReader + ?Sized>(
    chain: &C,
    limits: &RpcLimits,
    filter: &Filter,
    from: u64,
    to: u64,
) -> RpcResult<Vec<RpcLog>> {
    if to < from {
        return Ok(vec![]);
    }
    check_range(limits, from, to)?;
    let mut out = Vec::new();
    for (_, hash) in chain.blocks_by_bloom(from, to, &|bloom| filter.matches_bloom(*bloom))? {
        for log in block_logs(chain, hash)? {
            if filter.matches(&log.inner) {
                out.push(log);
                if out.len() > limits.max_logs {
                    return Err(RpcError::LimitExceeded(format!(
                        "query returned more than {} results",
                        limits.max_logs
                    )));
                }
            }
        }
    }
    Ok(out)
}

/// `eth_getLogs`: by block hash or by range (defaults: latest).
pub(crate) fn get_logs<C: BlockReader + ?Sized>(
    chain: &C,
    limits: &RpcLimits,
    filter: &Filter,
) -> RpcResult<Vec<RpcLog>> {
    match filter.block_option {
        FilterBlockOption::AtBlockHash(hash) => {
            if chain.header(&hash)?.is_none() {
                return Err(RpcError::Unavailable(format!("unknown block {hash}")));
            }
            Ok(block_logs(chain, hash)?
                .into_iter()
                .filter(|l| filter.matches(&l.inner))
                .collect())
        }
        FilterBlockOption::Range {
            from_block,
            to_block,
        } => {
            let number = |tag: Option<BlockNumberOrTag>| -> RpcResult<u64> {
                let tag = tag.unwrap_or(BlockNumberOrTag::Latest);
                match tag {
                    BlockNumberOrTag::Number(n) => Ok(n),
                    BlockNumberOrTag::Earliest => Ok(0),
                    _ => Ok(head(chain)?.0),
                }
            };
            let (from, to) = (number(from_block)?, number(to_block)?);
            if from > to {
                return Err(RpcError::Execution("invalid block range params".into()));
            }
            check_range(limits, from, to)?;
            logs_in_range(chain, limits, filter, from, to.min(head(chain)?.0))
        }
    }
}

/// `f` of the block `id` names, or `None` (JSON null) if there is no such block.
fn by_block<C, F, T>(chain: &C, id: BlockId, f: F) -> RpcResult<Option<T>>
where
    C: BlockReader + ?Sized,
    F: FnOnce(B256) -> RpcResult<T>,
{
    resolve(chain, id)?.map(|(_, hash)| f(hash)).transpose()
}

fn transaction_by_index<C: BlockReader + ?Sized>(
    chain: &C,
    id: BlockId,
    index: U64,
) -> RpcResult<Value> {
    by_block(chain, id, |hash| {
        let Some(header) = chain.header(&hash)? else {
            return Ok(Value::Null);
        };
        let txs = chain.transactions(&hash)?.unwrap_or_default();
        let i = index.to::<u64>();
        let Some(tx) = usize::try_from(i).ok().and_then(|i| txs.get(i)).cloned() else {
            return Ok(Value::Null);
        };
        let sender = consort_primitives::recover_signer(&tx)
            .map_err(|e| RpcError::Internal(e.to_string()))?;
        to_json(rpc_transaction(tx, sender, Some((&header, hash, i))))
    })
    .map(|tx| tx.unwrap_or(Value::Null))
}

/// `eth_sendRawTransaction`: adds a transaction from this node's clients to the pool, tells
/// `newPendingTransactions` subscribers and gossips it to peers.
fn send_raw_transaction(ctx: &RpcContext, raw: &[u8]) -> RpcResult<B256> {
    let tx = consort_txpool::submit_transaction(
        &ctx.pool,
        &ctx.pool_metrics,
        &ctx.store,
        raw,
        TxSource::Local,
    )?;
    let _ = ctx.pending_txs.send(tx.hash);
    if let Some(network) = &ctx.network {
        network.broadcast_transaction(raw.to_vec());
    }
    Ok(tx.hash)
}

/// `eth_syncing`: false, or geth's progress object while catching up.
fn syncing<C: BlockReader + ?Sized>(sync: &dyn SyncReader, chain: &C) -> RpcResult<Value> {
    let Some((starting, highest)) = sync.progress() else {
        return Ok(Value::Bool(false));
    };
    let (current, _) = head(chain)?;
    Ok(json!({
        "startingBlock": hex_u64(starting),
        "currentBlock": hex_u64(current),
        "highestBlock": hex_u64(highest.max(current)),
    }))
}

pub(crate) fn module(ctx: Arc<RpcContext>, transport: Transport) -> RpcModule<Arc<RpcContext>> {
    let mut m = RpcModule::new(ctx);
    method(&mut m, "eth_chainId", |ctx, _| {
        Ok(hex_u64(ctx.chain.chain_id))
    });
    method(&mut m, "eth_blockNumber", |ctx, _| {
        Ok(U64::from(head(&ctx.store)?.0))
    });
    method(&mut m, "eth_syncing", |ctx, _| {
        syncing(&*ctx.sync, &ctx.store)
    });
    method(&mut m, "eth_accounts", |_, _| Ok(json!([])));
    method(&mut m, "eth_coinbase", |ctx, _| to_json(ctx.info.coinbase));
    method(&mut m, "eth_mining", |ctx, _| {
        Ok(Value::Bool(ctx.info.mining))
    });
    method(&mut m, "eth_hashrate", |_, _| Ok(hex_u64(0)));
    method(&mut m, "eth_protocolVersion", |_, _| Ok(hex_u64(68)));
    method(&mut m, "eth_getBalance", |ctx, p| {
        let mut seq = p.sequence();
        let address: Address = next(&mut seq)?;
        balance(&ctx.store, &address, optional(&mut seq)?)
    });
    method(&mut m, "eth_getTransactionCount", |ctx, p| {
        let mut seq = p.sequence();
        let address: Address = next(&mut seq)?;
        let id: Option<BlockId> = optional(&mut seq)?;
        let count = transaction_count(
            &ctx.store,
            || Ok(ctx.pool()?.pending_nonce(&address)),
            &address,
            id,
        )?;
        Ok(hex_u64(count))
    });
    method(&mut m, "eth_getCode", |ctx, p| {
        let mut seq = p.sequence();
        let address: Address = next(&mut seq)?;
        to_json(code(&ctx.store, &address, optional(&mut seq)?)?)
    });
    method(&mut m, "eth_getStorageAt", |ctx, p| {
        let mut seq = p.sequence();
        let address: Address = next(&mut seq)?;
        let slot: U256 = next(&mut seq)?;
        to_json(storage_at(
            &ctx.store,
            &address,
            &slot,
            optional(&mut seq)?,
        )?)
    });
    method(&mut m, "eth_getBlockByNumber", |ctx, p| {
        let mut seq = p.sequence();
        let tag: BlockNumberOrTag = next(&mut seq)?;
        let full: bool = optional(&mut seq)?.unwrap_or(false);
        by_block(&ctx.store, BlockId::Number(tag), |h| {
            block(&ctx.store, h, full)
        })
    });
    method(&mut m, "eth_getBlockByHash", |ctx, p| {
        let mut seq = p.sequence();
        let hash: B256 = next(&mut seq)?;
        let full: bool = optional(&mut seq)?.unwrap_or(false);
        block(&ctx.store, hash, full)
    });
    method(&mut m, "eth_getBlockTransactionCountByNumber", |ctx, p| {
        let tag: BlockNumberOrTag = next(&mut p.sequence())?;
        by_block(&ctx.store, BlockId::Number(tag), |h| {
            Ok(ctx
                .store
                .transactions(&h)?
                .map_or(Value::Null, |t| hex_u64(t.len() as u64)))
        })
    });
    method(&mut m, "eth_getBlockTransactionCountByHash", |ctx, p| {
        let hash: B256 = next(&mut p.sequence())?;
        Ok(ctx
            .store
            .transactions(&hash)?
            .map_or(Value::Null, |t| hex_u64(t.len() as u64)))
    });
    method(&mut m, "eth_getUncleCountByBlockNumber", |_, _| {
        Ok(hex_u64(0))
    });
    method(&mut m, "eth_getUncleCountByBlockHash", |_, _| {
        Ok(hex_u64(0))
    });
    method(&mut m, "eth_getTransactionByHash", |ctx, p| {
        let hash: B256 = next(&mut p.sequence())?;
        if let Some(loc) = ctx.store.transaction_location(&hash)? {
            return transaction_by_index(
                &ctx.store,
                BlockId::hash(loc.block_hash),
                U64::from(loc.index),
            );
        }
        let pooled = ctx.pool()?.transaction(&hash);
        match pooled {
            Some(tx) => to_json(rpc_transaction(tx.tx.clone(), tx.sender, None)),
            None => Ok(Value::Null),
        }
    });
    method(
        &mut m,
        "eth_getTransactionByBlockNumberAndIndex",
        |ctx, p| {
            let mut seq = p.sequence();
            let tag: BlockNumberOrTag = next(&mut seq)?;
            transaction_by_index(&ctx.store, BlockId::Number(tag), next(&mut seq)?)
        },
    );
    method(&mut m, "eth_getTransactionByBlockHashAndIndex", |ctx, p| {
        let mut seq = p.sequence();
        let hash: B256 = next(&mut seq)?;
        transaction_by_index(&ctx.store, BlockId::hash(hash), next(&mut seq)?)
    });
    method(&mut m, "eth_getTransactionReceipt", |ctx, p| {
        let hash: B256 = next(&mut p.sequence())?;
        let Some(loc) = ctx.store.transaction_location(&hash)? else {
            return Ok(None);
        };
        let receipts = block_receipts(&ctx.store, loc.block_hash)?.unwrap_or_default();
        Ok(usize::try_from(loc.index)
            .ok()
            .and_then(|i| receipts.into_iter().nth(i)))
    });
    method(&mut m, "eth_getBlockReceipts", |ctx, p| {
        let id: BlockId = next(&mut p.sequence())?;
        by_block(&ctx.store, id, |h| block_receipts(&ctx.store, h))
    });
    method(&mut m, "eth_sendRawTransaction", |ctx, p| {
        let raw: Bytes = next(&mut p.sequence())?;
        send_raw_transaction(ctx, &raw)
    });
    method(&mut m, "eth_call", |ctx, p| {
        let mut seq = p.sequence();
        let req: TransactionRequest = next(&mut seq)?;
        let header = state_header(&ctx.store, optional(&mut seq)?)?;
        let overrides: Option<StateOverride> = optional(&mut seq)?;
        let req = call_request(req, overrides)?;
        let outcome = consort_evm::call(&ctx.store, &ctx.chain, &header, &req, &call_limits(ctx))?;
        let status = if outcome.success { "success" } else { "error" };
        ctx.metrics
            .eth_call_gas
            .with_label_values(&[status])
            .inc_by(outcome.gas_used);
        if outcome.success {
            Ok(outcome.output)
        } else {
            Err(failed_call(outcome))
        }
    });
    method(&mut m, "eth_estimateGas", |ctx, p| {
        let mut seq = p.sequence();
        let req: TransactionRequest = next(&mut seq)?;
        let header = state_header(&ctx.store, optional(&mut seq)?)?;
        let overrides: Option<StateOverride> = optional(&mut seq)?;
        let req = call_request(req, overrides)?;
        match consort_evm::estimate_gas(&ctx.store, &ctx.chain, &header, &req, &call_limits(ctx))? {
            Ok(gas) => Ok(hex_u64(gas)),
            Err(outcome) if outcome.reverted => Err(failed_call(outcome)),
            // Out of gas at the most gas allowed is geth's "exceeds allowance"; any other
            // halt (invalid opcode, stack overflow...) is reported as itself.
            Err(outcome) => match outcome.halt {
                Some(h) if !h.contains("OutOfGas") => Err(RpcError::Execution(h)),
                _ => Err(RpcError::Execution(format!(
                    "gas required exceeds allowance ({})",
                    req.gas.unwrap_or(header.gas_limit).min(ctx.limits.gas_cap)
                ))),
            },
        }
    });
    method(&mut m, "eth_gasPrice", |ctx, _| {
        Ok(hex_u128(
            next_base_fee(&ctx.store, &ctx.chain)?
                .saturating_add(suggested_tip(&ctx.store, ctx.info.min_gas_price)?),
        ))
    });
    method(&mut m, "eth_maxPriorityFeePerGas", |ctx, _| {
        Ok(hex_u128(suggested_tip(&ctx.store, ctx.info.min_gas_price)?))
    });
    method(&mut m, "eth_feeHistory", |ctx, p| {
        let mut seq = p.sequence();
        let count: U64 = next(&mut seq)?;
        let newest: BlockNumberOrTag = next(&mut seq)?;
        let percentiles: Option<Vec<f64>> = optional(&mut seq)?;
        fee_history(
            &ctx.store,
            &ctx.chain,
            &ctx.limits,
            count.to::<u64>(),
            newest,
            percentiles,
        )
    });
    method(&mut m, "eth_getLogs", |ctx, p| {
        let filter: Filter = next(&mut p.sequence())?;
        get_logs(&ctx.store, &ctx.limits, &filter)
    });
    method(&mut m, "eth_getProof", |ctx, p| {
        let mut seq = p.sequence();
        let address: Address = next(&mut seq)?;
        // Keys as geth takes them: any hex up to 32 bytes.
        let slots: Vec<B256> = next::<Vec<U256>>(&mut seq)?
            .into_iter()
            .map(B256::from)
            .collect();
        let id: Option<BlockId> = optional(&mut seq)?;
        if slots.len() > 1_024 {
            return Err(RpcError::LimitExceeded(
                "more than 1024 storage keys".into(),
            ));
        }
        // One snapshot for the whole proof, so a block committed meanwhile cannot mix into it;
        // a tag naming the head takes the head of that snapshot.
        let view = state_of(&*ctx.store, id)?;
        let (account, account_proof, storage) = view.proof(&address, &slots)?;
        let account = account.unwrap_or_default();
        let is_empty = account == Default::default();
        to_json(EIP1186AccountProofResponse {
            address,
            balance: account.balance,
            code_hash: if is_empty {
                KECCAK_EMPTY
            } else {
                account.code_hash
            },
            nonce: account.nonce,
            storage_hash: if is_empty {
                consort_primitives::EMPTY_ROOT_HASH
            } else {
                account.storage_root
            },
            account_proof,
            storage_proof: storage
                .into_iter()
                .map(|(key, value, proof)| EIP1186StorageProof {
                    key: key.into(),
                    value,
                    proof,
                })
                .collect(),
        })
    });
    crate::filters::register(&mut m, transport);
    register_subscriptions(&mut m);
    m
}

fn call_limits(ctx: &RpcContext) -> CallLimits {
    CallLimits {
        gas_cap: ctx.limits.gas_cap,
        timeout: ctx.limits.call_timeout,
    }
}

fn fee_history<C: BlockReader + ?Sized>(
    chain: &C,
    genesis: &Genesis,
    limits: &RpcLimits,
    count: u64,
    newest: BlockNumberOrTag,
    percentiles: Option<Vec<f64>>,
) -> RpcResult<Value> {
    if count == 0 {
        return to_json(FeeHistory::default());
    }
    let count = count.min(limits.max_fee_history);
    if let Some(p) = &percentiles {
        if p.len() > 100
            || p.iter().any(|v| !(0.0..=100.0).contains(v))
            || p.windows(2).any(|w| w.first() > w.last())
        {
            return Err(RpcError::InvalidParams(
                "reward percentiles must be ascending values in [0, 100]".into(),
            ));
        }
    }
    let (newest, _) = resolve(chain, BlockId::Number(newest))?
        .ok_or_else(|| RpcError::Unavailable("header not found".into()))?;
    let oldest = newest.saturating_sub(count - 1);
    let mut history = FeeHistory {
        oldest_block: oldest,
        ..FeeHistory::default()
    };
    let mut rewards = Vec::new();
    let mut last: Option<Header> = None;
    for n in oldest..=newest {
        let Some(hash) = chain.canonical_hash(n)? else {
            break;
        };
        let Some(header) = chain.header(&hash)? else {
            break;
        };
        let base = header.base_fee_per_gas.unwrap_or(0);
        history.base_fee_per_gas.push(base as u128);
        history.gas_used_ratio.push(if header.gas_limit == 0 {
            0.0
        } else {
            header.gas_used as f64 / header.gas_limit as f64
        });
        history.base_fee_per_blob_gas.push(0);
        history.blob_gas_used_ratio.push(0.0);
        if let Some(percentiles) = &percentiles {
            let txs = chain.transactions(&hash)?.unwrap_or_default();
            let receipts = chain.receipts(&hash)?.unwrap_or_default();
            let mut prev = 0;
            let mut tips: Vec<(u128, u64)> = txs
                .iter()
                .zip(&receipts)
                .map(|(tx, r)| {
                    let used = r.cumulative_gas_used().saturating_sub(prev);
                    prev = r.cumulative_gas_used();
                    (tx.effective_tip_per_gas(base).unwrap_or(0), used)
                })
                .collect();
            tips.sort_unstable();
            let total: u64 = tips.iter().map(|t| t.1).sum();
            let row = percentiles
                .iter()
                .map(|p| {
                    let threshold = (total as f64 * p / 100.0) as u64;
                    let mut acc = 0u64;
                    tips.iter()
                        .find(|(_, used)| {
                            acc += used;
                            acc >= threshold
                        })
                        .or(tips.last())
                        .map_or(0, |t| t.0)
                })
                .collect();
            rewards.push(row);
        }
        last = Some(header);
    }
    if let Some(h) = last {
        let next = genesis.child_base_fee(&h, h.timestamp).unwrap_or(0);
        history.base_fee_per_gas.push(next as u128);
        history.base_fee_per_blob_gas.push(0);
    }
    history.reward = percentiles.map(|_| rewards);
    to_json(history)
}

fn register_subscriptions(m: &mut RpcModule<Arc<RpcContext>>) {
    let result = m.register_subscription(
        "eth_subscribe",
        "eth_subscription",
        "eth_unsubscribe",
        |params: Params<'static>,
         pending: PendingSubscriptionSink,
         ctx: Arc<Arc<RpcContext>>,
         _| { subscribe(params, pending, Arc::clone(&*ctx)) },
    );
    if let Err(e) = result {
        tracing::error!("eth_subscribe could not be registered: {e}");
    }
}

/// `eth_subscribe`: `newHeads`, `logs` (with an optional filter), `newPendingTransactions`,
/// `syncing`. Slow subscribers skip what they missed rather than holding the node back.
async fn subscribe(
    params: Params<'static>,
    pending: PendingSubscriptionSink,
    ctx: Arc<RpcContext>,
) -> jsonrpsee::core::SubscriptionResult {
    let mut seq = params.sequence();
    let kind: String = match seq.next() {
        Ok(k) => k,
        Err(e) => {
            pending.reject(e).await;
            return Ok(());
        }
    };
    // `logs` takes a filter; `newPendingTransactions` takes `true` for whole transactions.
    let (filter, full): (Option<Filter>, bool) = if kind == "newPendingTransactions" {
        match seq.optional_next::<bool>() {
            Ok(full) => (None, full.unwrap_or(false)),
            Err(e) => {
                pending.reject(e).await;
                return Ok(());
            }
        }
    } else {
        match seq.optional_next() {
            Ok(f) => (f, false),
            Err(e) => {
                pending.reject(e).await;
                return Ok(());
            }
        }
    };
    let label: &'static str = match kind.as_str() {
        "newHeads" => "newHeads",
        "logs" => "logs",
        "newPendingTransactions" => "newPendingTransactions",
        "syncing" => "syncing",
        other => {
            pending
                .reject(ErrorObjectOwned::owned(
                    -32602,
                    format!("unsupported subscription type '{other}'"),
                    None::<()>,
                ))
                .await;
            return Ok(());
        }
    };
    let mut blocks = ctx.new_blocks.subscribe();
    let mut txs = ctx.pending_txs.subscribe();
    let sink = pending.accept().await?;
    ctx.metrics.subscribe.with_label_values(&[label]).inc();
    let result = follow(
        &sink,
        label,
        filter.as_ref(),
        (&ctx, full),
        &mut blocks,
        &mut txs,
    )
    .await;
    ctx.metrics.unsubscribe.with_label_values(&[label]).inc();
    result
}

async fn follow(
    sink: &jsonrpsee::server::SubscriptionSink,
    label: &str,
    filter: Option<&Filter>,
    (ctx, full): (&RpcContext, bool),
    blocks: &mut tokio::sync::broadcast::Receiver<Arc<consort_storage::NewBlock>>,
    txs: &mut tokio::sync::broadcast::Receiver<B256>,
) -> jsonrpsee::core::SubscriptionResult {
    use tokio::sync::broadcast::error::RecvError;
    let message = |v: Value| serde_json::value::to_raw_value(&v).map(SubscriptionMessage::from);
    match label {
        "syncing" => {
            // The status now, then each change, polled once a second.
            let mut last = None;
            loop {
                let now = syncing(&*ctx.sync, &ctx.store).unwrap_or(Value::Bool(false));
                if last.as_ref() != Some(&now) {
                    sink.send(message(now.clone())?).await?;
                    last = Some(now);
                }
                tokio::select! {
                    _ = sink.closed() => break,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                }
            }
        }
        "newPendingTransactions" => loop {
            tokio::select! {
                _ = sink.closed() => break,
                tx = txs.recv() => match tx {
                    Ok(hash) => {
                        let value = match full.then_some(ctx) {
                            None => to_json(hash)?,
                            // Whole transactions, as geth sends them; one already mined or
                            // dropped meanwhile is skipped.
                            Some(ctx) => match ctx.pool()?.transaction(&hash) {
                                Some(tx) => to_json(rpc_transaction(tx.tx.clone(), tx.sender, None))?,
                                None => continue,
                            },
                        };
                        sink.send(message(value)?).await?;
                    }
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                },
            }
        },
        _ => loop {
            tokio::select! {
                _ = sink.closed() => break,
                block = blocks.recv() => match block {
                    Ok(b) if label == "newHeads" => {
                        sink.send(message(to_json(rpc_header(b.header.clone(), b.hash))?)?).await?;
                    }
                    Ok(b) => {
                        let logs = match block_logs(&*ctx.store, b.hash) {
                            Ok(logs) => logs,
                            Err(e) => {
                                tracing::warn!("logs of block {} unreadable for a subscription: {e}", b.hash);
                                continue;
                            }
                        };
                        for log in logs.iter().filter(|l| filter.is_none_or(|f| f.matches(&l.inner))) {
                            sink.send(message(to_json(log)?)?).await?;
                        }
                    }
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                },
            }
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The `eth_` reads against a chain in memory: no database, only the reader traits.

    use super::*;
    use alloy_consensus::{Eip658Value, Receipt, ReceiptEnvelope, SignableTransaction, TxLegacy};
    use alloy_eips::RpcBlockHash;
    use alloy_primitives::{logs_bloom, Log, LogData, Signature, TxKind};
    use consort_primitives::TxEnvelope;
    use consort_storage::{Account, MemoryChain, MemoryState};

    const A: Address = Address::repeat_byte(0xaa);
    const B: Address = Address::repeat_byte(0xbb);

    fn tx(nonce: u64) -> TxEnvelope {
        TxLegacy {
            chain_id: Some(1337),
            nonce,
            gas_price: 1_000,
            gas_limit: 21_000,
            to: TxKind::Call(B),
            ..Default::default()
        }
        .into_signed(Signature::test_signature())
        .into()
    }

    fn receipt(cumulative_gas_used: u64, emitter: Address) -> ReceiptEnvelope {
        ReceiptEnvelope::Legacy(
            Receipt {
                status: Eip658Value::Eip658(true),
                cumulative_gas_used,
                logs: vec![Log {
                    address: emitter,
                    data: LogData::new_unchecked(vec![B256::repeat_byte(1)], Bytes::new()),
                }],
            }
            .with_bloom(),
        )
    }

    /// Block 0 is empty; block 1 has two transactions whose logs come from A and B; block 2 one
    /// whose log comes from A.
    fn chain() -> (MemoryChain, Vec<B256>) {
        let mut chain = MemoryChain::new();
        let blocks = [
            vec![],
            vec![(tx(0), receipt(21_000, A)), (tx(1), receipt(42_000, B))],
            vec![(tx(2), receipt(21_000, A))],
        ];
        let hashes = blocks
            .into_iter()
            .map(|block| {
                let (txs, receipts): (Vec<_>, Vec<_>) = block.into_iter().unzip();
                let header = Header {
                    logs_bloom: logs_bloom(receipts.iter().flat_map(|r| r.logs())),
                    ..Default::default()
                };
                chain.push(header, txs, receipts)
            })
            .collect();
        (chain, hashes)
    }

    #[test]
    fn block_tags_and_hashes_resolve_to_canonical_blocks() {
        let (chain, hashes) = chain();
        let cases: [(&str, BlockId, Option<u64>); 9] = [
            ("earliest", BlockNumberOrTag::Earliest.into(), Some(0)),
            ("a number", BlockNumberOrTag::Number(1).into(), Some(1)),
            (
                "latest is the head",
                BlockNumberOrTag::Latest.into(),
                Some(2),
            ),
            (
                "pending is the head",
                BlockNumberOrTag::Pending.into(),
                Some(2),
            ),
            ("safe is the head", BlockNumberOrTag::Safe.into(), Some(2)),
            (
                "finalized is the head",
                BlockNumberOrTag::Finalized.into(),
                Some(2),
            ),
            (
                "a number past the head",
                BlockNumberOrTag::Number(9).into(),
                None,
            ),
            ("a hash", BlockId::hash(hashes[1]), Some(1)),
            ("an unknown hash", BlockId::hash(B256::repeat_byte(9)), None),
        ];
        for (description, id, want) in cases {
            let got = resolve(&chain, id).unwrap();
            assert_eq!(got.map(|(n, _)| n), want, "{description}");
            if let Some((n, hash)) = got {
                assert_eq!(
                    hash, hashes[n as usize],
                    "{description}: the canonical hash"
                );
            }
        }
        let canonical = BlockId::Hash(RpcBlockHash::from_hash(hashes[1], Some(true)));
        assert_eq!(
            resolve(&chain, canonical).unwrap(),
            Some((1, hashes[1])),
            "a hash required to be canonical"
        );
    }

    #[test]
    fn logs_carry_their_positions_and_queries_are_bounded() {
        let (chain, hashes) = chain();
        let limits = RpcLimits::default();
        let positions = |logs: Vec<RpcLog>| -> Vec<(u64, u64, u64, Address)> {
            logs.iter()
                .map(|l| {
                    (
                        l.block_number.unwrap(),
                        l.transaction_index.unwrap(),
                        l.log_index.unwrap(),
                        l.address(),
                    )
                })
                .collect()
        };

        let all = get_logs(&chain, &limits, &Filter::new().from_block(0)).unwrap();
        assert_eq!(
            positions(all),
            [(1, 0, 0, A), (1, 1, 1, B), (2, 0, 0, A)],
            "every log, numbered within its block"
        );
        let from_a = get_logs(&chain, &limits, &Filter::new().from_block(0).address(A)).unwrap();
        assert_eq!(
            positions(from_a),
            [(1, 0, 0, A), (2, 0, 0, A)],
            "by address"
        );
        let at_hash = get_logs(&chain, &limits, &Filter::new().at_block_hash(hashes[1])).unwrap();
        assert_eq!(
            positions(at_hash),
            [(1, 0, 0, A), (1, 1, 1, B)],
            "by block hash"
        );

        let narrow = RpcLimits {
            max_logs_range: 2,
            ..RpcLimits::default()
        };
        let few = RpcLimits {
            max_logs: 2,
            ..RpcLimits::default()
        };
        // A description, the bounds, the query, and whether the error is the one expected.
        type Refusal<'a> = (&'a str, &'a RpcLimits, Filter, fn(&RpcError) -> bool);
        let refused: [Refusal; 4] = [
            (
                "an unknown block hash",
                &limits,
                Filter::new().at_block_hash(B256::repeat_byte(9)),
                |e| matches!(e, RpcError::Unavailable(_)),
            ),
            (
                "a range that ends before it starts",
                &limits,
                Filter::new().from_block(2).to_block(1),
                |e| matches!(e, RpcError::Execution(m) if m == "invalid block range params"),
            ),
            (
                "more blocks than --rpc-max-logs-range",
                &narrow,
                Filter::new().from_block(0).to_block(2),
                |e| matches!(e, RpcError::LimitExceeded(_)),
            ),
            (
                "more logs than the most one query returns",
                &few,
                Filter::new().from_block(0),
                |e| matches!(e, RpcError::LimitExceeded(_)),
            ),
        ];
        for (description, limits, filter, expected) in refused {
            match get_logs(&chain, limits, &filter) {
                Err(e) => assert!(expected(&e), "{description}: {e}"),
                Ok(logs) => panic!("{description}: answered {} logs", logs.len()),
            }
        }
    }

    #[derive(Debug)]
    struct Progress(Option<(u64, u64)>);

    impl SyncReader for Progress {
        fn progress(&self) -> Option<(u64, u64)> {
            self.0
        }
    }

    #[test]
    fn eth_syncing_is_false_in_sync_and_geths_object_while_catching_up() {
        let (chain, _) = chain();
        let cases = [
            ("in sync", None, json!(false)),
            (
                "catching up",
                Some((1, 10)),
                json!({"startingBlock": "0x1", "currentBlock": "0x2", "highestBlock": "0xa"}),
            ),
            (
                "the head already past the highest block seen",
                Some((0, 1)),
                json!({"startingBlock": "0x0", "currentBlock": "0x2", "highestBlock": "0x2"}),
            ),
        ];
        for (description, progress, want) in cases {
            assert_eq!(
                syncing(&Progress(progress), &chain).unwrap(),
                want,
                "{description}"
            );
        }
    }

    #[test]
    fn state_reads_come_from_the_block_asked_for() {
        let (mut chain, _) = chain();
        let code = Bytes::from_static(&[0x60, 0x00]);
        let code_hash = alloy_primitives::keccak256(&code);
        let at = |nonce: u64, balance: u64| MemoryState {
            accounts: [(
                A,
                Account {
                    nonce,
                    balance: U256::from(balance),
                    code_hash,
                },
            )]
            .into(),
            storage: [((A, U256::from(7)), U256::from(nonce))].into(),
            code: [(code_hash, code.clone())].into(),
        };
        chain.set_state(1, at(1, 5));
        chain.set_state(2, at(2, 6));
        let block = |n: u64| Some(BlockId::from(n));

        assert_eq!(balance(&chain, &A, None).unwrap(), U256::from(6), "latest");
        assert_eq!(
            balance(&chain, &A, block(1)).unwrap(),
            U256::from(5),
            "block 1"
        );
        assert_eq!(
            balance(&chain, &B, None).unwrap(),
            U256::ZERO,
            "an absent account"
        );
        for (description, id) in [("state not kept", block(0)), ("unknown block", block(9))] {
            assert!(
                matches!(balance(&chain, &A, id), Err(RpcError::Unavailable(_))),
                "{description}"
            );
        }

        let no_pool = || -> RpcResult<Option<u64>> { panic!("the pool is read for pending only") };
        let pending = Some(BlockId::from(BlockNumberOrTag::Pending));
        assert_eq!(transaction_count(&chain, no_pool, &A, None).unwrap(), 2);
        assert_eq!(
            transaction_count(&chain, || Ok(Some(4)), &A, pending).unwrap(),
            4
        );
        assert_eq!(
            transaction_count(&chain, || Ok(None), &A, pending).unwrap(),
            2
        );

        assert_eq!(code_of(&chain, &A, block(1)), code);
        assert_eq!(code_of(&chain, &B, block(1)), Bytes::new());
        let slot = |address, n| storage_at(&chain, &address, &U256::from(7), block(n)).unwrap();
        assert_eq!(slot(A, 1), B256::from(U256::from(1)));
        assert_eq!(slot(A, 2), B256::from(U256::from(2)));
        assert_eq!(slot(B, 2), B256::ZERO);
    }

    fn code_of(chain: &MemoryChain, address: &Address, id: Option<BlockId>) -> Bytes {
        code(chain, address, id).unwrap()
    }
}
