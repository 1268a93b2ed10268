//! The `eth_` methods.

use crate::convert::{
    block, block_logs, block_receipts, new_block_logs, rpc_header, rpc_transaction,
};
use crate::error::{revert_reason, RpcError, RpcResult};
use crate::server::{method, Transport};
use crate::RpcContext;
use alloy_consensus::Transaction as _;
use alloy_primitives::{Address, Bytes, B256, U256, U64};
use alloy_rpc_types_eth::state::StateOverride;
use alloy_rpc_types_eth::{
    BlockId, BlockNumberOrTag, EIP1186AccountProofResponse, EIP1186StorageProof, FeeHistory,
    Filter, FilterBlockOption, Log as RpcLog, TransactionRequest,
};
use consort_evm::{AccountOverride, CallLimits, CallOutcome, CallRequest};
use consort_primitives::{Header, KECCAK_EMPTY};
use consort_storage::StateView;
use consort_txpool::TxSource;
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
pub(crate) fn head(ctx: &RpcContext) -> RpcResult<(u64, B256)> {
    ctx.store
        .head()?
        .ok_or_else(|| RpcError::Internal("the chain has no head".into()))
}

/// Number and hash of a block, or None if unknown. Tags: `pending`, `safe` and `finalized` are
/// the head (QBFT blocks are final when imported).
pub(crate) fn resolve(ctx: &RpcContext, id: BlockId) -> RpcResult<Option<(u64, B256)>> {
    match id {
        BlockId::Hash(h) => {
            let number = ctx.store.block_number(&h.block_hash)?;
            if let (Some(n), Some(true)) = (number, h.require_canonical) {
                if ctx.store.canonical_hash(n)? != Some(h.block_hash) {
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
                _ => return head(ctx).map(Some),
            };
            Ok(ctx.store.canonical_hash(number)?.map(|h| (number, h)))
        }
    }
}

/// The header whose post-state a state query reads; unknown blocks are an error.
fn state_header(ctx: &RpcContext, id: Option<BlockId>) -> RpcResult<Header> {
    let id = id.unwrap_or(BlockId::Number(BlockNumberOrTag::Latest));
    let (_, hash) =
        resolve(ctx, id)?.ok_or_else(|| RpcError::Unavailable("header not found".into()))?;
    ctx.store
        .header(&hash)?
        .ok_or_else(|| RpcError::Unavailable("header not found".into()))
}

fn state<'a>(ctx: &'a RpcContext, header: &Header) -> RpcResult<StateView<'a>> {
    ctx.store.state_at(header.number).map_err(|e| {
        RpcError::Unavailable(format!(
            "state of block {} is not available: {e}",
            header.number
        ))
    })
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
fn suggested_tip(ctx: &RpcContext) -> RpcResult<u128> {
    let (number, _) = head(ctx)?;
    let mut tips = Vec::new();
    for n in number.saturating_sub(19)..=number {
        let Some(hash) = ctx.store.canonical_hash(n)? else {
            continue;
        };
        let Some(header) = ctx.store.header(&hash)? else {
            continue;
        };
        let base = header.base_fee_per_gas.unwrap_or(0);
        for tx in ctx.store.transactions(&hash)?.unwrap_or_default() {
            tips.push(tx.effective_tip_per_gas(base).unwrap_or(0));
        }
    }
    tips.sort_unstable();
    let median = tips.get(tips.len() / 2).copied().unwrap_or(0);
    Ok(median.max(ctx.info.min_gas_price))
}

fn next_base_fee(ctx: &RpcContext) -> RpcResult<u128> {
    let header = ctx.store.head_header()?;
    Ok(ctx
        .chain
        .child_base_fee(&header, header.timestamp)
        .unwrap_or(0) as u128)
}

/// Fails if `from..=to` spans more blocks than `--rpc-max-logs-range`.
fn check_range(ctx: &RpcContext, from: u64, to: u64) -> RpcResult<()> {
    if to >= from && to - from >= ctx.limits.max_logs_range {
        return Err(RpcError::LimitExceeded(format!(
            "requested range of {} blocks exceeds the limit of {}",
            to - from + 1,
            ctx.limits.max_logs_range
        )));
    }
    Ok(())
}

/// The logs matching `filter` in blocks `from..=to`, bounded in range and count.
pub(crate) fn logs_in_range(
    ctx: &RpcContext,
    filter: &Filter,
    from: u64,
    to: u64,
) -> RpcResult<Vec<RpcLog>> {
    if to < from {
        return Ok(vec![]);
    }
    check_range(ctx, from, to)?;
    let mut out = Vec::new();
    for n in from..=to {
        let Some(hash) = ctx.store.canonical_hash(n)? else {
            break;
        };
        let Some(header) = ctx.store.header(&hash)? else {
            break;
        };
        if !filter.matches_bloom(header.logs_bloom) {
            continue;
        }
        for log in block_logs(&ctx.store, hash)? {
            if filter.matches(&log.inner) {
                out.push(log);
                if out.len() > ctx.limits.max_logs {
                    return Err(RpcError::LimitExceeded(format!(
                        "query returned more than {} results",
                        ctx.limits.max_logs
                    )));
                }
            }
        }
    }
    Ok(out)
}

/// `eth_getLogs`: by block hash or by range (defaults: latest).
pub(crate) fn get_logs(ctx: &RpcContext, filter: &Filter) -> RpcResult<Vec<RpcLog>> {
    match filter.block_option {
        FilterBlockOption::AtBlockHash(hash) => {
            if ctx.store.header(&hash)?.is_none() {
                return Err(RpcError::Unavailable(format!("unknown block {hash}")));
            }
            Ok(block_logs(&ctx.store, hash)?
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
                    _ => Ok(head(ctx)?.0),
                }
            };
            let (from, to) = (number(from_block)?, number(to_block)?);
            if from > to {
                return Err(RpcError::Execution("invalid block range params".into()));
            }
            check_range(ctx, from, to)?;
            logs_in_range(ctx, filter, from, to.min(head(ctx)?.0))
        }
    }
}

fn by_block<F>(ctx: &RpcContext, id: BlockId, f: F) -> RpcResult<Value>
where
    F: FnOnce(B256) -> RpcResult<Value>,
{
    match resolve(ctx, id)? {
        Some((_, hash)) => f(hash),
        None => Ok(Value::Null),
    }
}

fn transaction_by_index(ctx: &RpcContext, id: BlockId, index: U64) -> RpcResult<Value> {
    by_block(ctx, id, |hash| {
        let Some(header) = ctx.store.header(&hash)? else {
            return Ok(Value::Null);
        };
        let txs = ctx.store.transactions(&hash)?.unwrap_or_default();
        let i = index.to::<u64>();
        let Some(tx) = usize::try_from(i).ok().and_then(|i| txs.get(i)).cloned() else {
            return Ok(Value::Null);
        };
        let sender = consort_primitives::recover_signer(&tx)
            .map_err(|e| RpcError::Internal(e.to_string()))?;
        to_json(rpc_transaction(tx, sender, Some((&header, hash, i))))
    })
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
fn syncing(ctx: &RpcContext) -> RpcResult<Value> {
    let Some((starting, highest)) = ctx.sync.progress() else {
        return Ok(Value::Bool(false));
    };
    let (current, _) = head(ctx)?;
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
        Ok(hex_u64(head(ctx)?.0))
    });
    method(&mut m, "eth_syncing", |ctx, _| syncing(ctx));
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
        let header = state_header(ctx, optional(&mut seq)?)?;
        let account = state(ctx, &header)?.basic_account(&address)?;
        to_json(account.map_or(U256::ZERO, |a| a.balance))
    });
    method(&mut m, "eth_getTransactionCount", |ctx, p| {
        let mut seq = p.sequence();
        let address: Address = next(&mut seq)?;
        let id: Option<BlockId> = optional(&mut seq)?;
        let pending = matches!(id, Some(BlockId::Number(BlockNumberOrTag::Pending)));
        let header = state_header(ctx, id)?;
        let nonce = state(ctx, &header)?
            .basic_account(&address)?
            .map_or(0, |a| a.nonce);
        if pending {
            let pool = ctx.pool()?;
            if let Some(n) = pool.pending_nonce(&address) {
                return Ok(hex_u64(n.max(nonce)));
            }
        }
        Ok(hex_u64(nonce))
    });
    method(&mut m, "eth_getCode", |ctx, p| {
        let mut seq = p.sequence();
        let address: Address = next(&mut seq)?;
        let header = state_header(ctx, optional(&mut seq)?)?;
        let view = state(ctx, &header)?;
        let code = match view.basic_account(&address)? {
            Some(a) if a.code_hash != KECCAK_EMPTY => view.code(&a.code_hash)?.unwrap_or_default(),
            _ => Bytes::new(),
        };
        to_json(code)
    });
    method(&mut m, "eth_getStorageAt", |ctx, p| {
        let mut seq = p.sequence();
        let address: Address = next(&mut seq)?;
        let slot: U256 = next(&mut seq)?;
        let header = state_header(ctx, optional(&mut seq)?)?;
        let value = state(ctx, &header)?.storage(&address, &slot)?;
        to_json(B256::from(value))
    });
    method(&mut m, "eth_getBlockByNumber", |ctx, p| {
        let mut seq = p.sequence();
        let tag: BlockNumberOrTag = next(&mut seq)?;
        let full: bool = optional(&mut seq)?.unwrap_or(false);
        by_block(ctx, BlockId::Number(tag), |h| {
            to_json(block(&ctx.store, h, full)?)
        })
    });
    method(&mut m, "eth_getBlockByHash", |ctx, p| {
        let mut seq = p.sequence();
        let hash: B256 = next(&mut seq)?;
        let full: bool = optional(&mut seq)?.unwrap_or(false);
        to_json(block(&ctx.store, hash, full)?)
    });
    method(&mut m, "eth_getBlockTransactionCountByNumber", |ctx, p| {
        let tag: BlockNumberOrTag = next(&mut p.sequence())?;
        by_block(ctx, BlockId::Number(tag), |h| {
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
            return transaction_by_index(ctx, BlockId::hash(loc.block_hash), U64::from(loc.index));
        }
        let pooled = ctx.pool()?.get(&hash);
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
            transaction_by_index(ctx, BlockId::Number(tag), next(&mut seq)?)
        },
    );
    method(&mut m, "eth_getTransactionByBlockHashAndIndex", |ctx, p| {
        let mut seq = p.sequence();
        let hash: B256 = next(&mut seq)?;
        transaction_by_index(ctx, BlockId::hash(hash), next(&mut seq)?)
    });
    method(&mut m, "eth_getTransactionReceipt", |ctx, p| {
        let hash: B256 = next(&mut p.sequence())?;
        let Some(loc) = ctx.store.transaction_location(&hash)? else {
            return Ok(Value::Null);
        };
        let receipts = block_receipts(&ctx.store, loc.block_hash)?.unwrap_or_default();
        let receipt = usize::try_from(loc.index)
            .ok()
            .and_then(|i| receipts.into_iter().nth(i));
        to_json(receipt)
    });
    method(&mut m, "eth_getBlockReceipts", |ctx, p| {
        let id: BlockId = next(&mut p.sequence())?;
        by_block(ctx, id, |h| to_json(block_receipts(&ctx.store, h)?))
    });
    method(&mut m, "eth_sendRawTransaction", |ctx, p| {
        let raw: Bytes = next(&mut p.sequence())?;
        to_json(send_raw_transaction(ctx, &raw)?)
    });
    method(&mut m, "eth_call", |ctx, p| {
        let mut seq = p.sequence();
        let req: TransactionRequest = next(&mut seq)?;
        let header = state_header(ctx, optional(&mut seq)?)?;
        let overrides: Option<StateOverride> = optional(&mut seq)?;
        let req = call_request(req, overrides)?;
        let outcome = consort_evm::call(&ctx.store, &ctx.chain, &header, &req, &call_limits(ctx))?;
        if outcome.success {
            to_json(outcome.output)
        } else {
            Err(failed_call(outcome))
        }
    });
    method(&mut m, "eth_estimateGas", |ctx, p| {
        let mut seq = p.sequence();
        let req: TransactionRequest = next(&mut seq)?;
        let header = state_header(ctx, optional(&mut seq)?)?;
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
            next_base_fee(ctx)?.saturating_add(suggested_tip(ctx)?),
        ))
    });
    method(&mut m, "eth_maxPriorityFeePerGas", |ctx, _| {
        Ok(hex_u128(suggested_tip(ctx)?))
    });
    method(&mut m, "eth_feeHistory", |ctx, p| {
        let mut seq = p.sequence();
        let count: U64 = next(&mut seq)?;
        let newest: BlockNumberOrTag = next(&mut seq)?;
        let percentiles: Option<Vec<f64>> = optional(&mut seq)?;
        fee_history(ctx, count.to::<u64>(), newest, percentiles)
    });
    method(&mut m, "eth_getLogs", |ctx, p| {
        let filter: Filter = next(&mut p.sequence())?;
        to_json(get_logs(ctx, &filter)?)
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
        let view = match id {
            None
            | Some(BlockId::Number(
                BlockNumberOrTag::Latest
                | BlockNumberOrTag::Pending
                | BlockNumberOrTag::Safe
                | BlockNumberOrTag::Finalized,
            )) => ctx.store.head_state()?,
            Some(id) => state(ctx, &state_header(ctx, Some(id))?)?,
        };
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

fn fee_history(
    ctx: &RpcContext,
    count: u64,
    newest: BlockNumberOrTag,
    percentiles: Option<Vec<f64>>,
) -> RpcResult<Value> {
    if count == 0 {
        return to_json(FeeHistory::default());
    }
    let count = count.min(ctx.limits.max_fee_history);
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
    let (newest, _) = resolve(ctx, BlockId::Number(newest))?
        .ok_or_else(|| RpcError::Unavailable("header not found".into()))?;
    let oldest = newest.saturating_sub(count - 1);
    let mut history = FeeHistory {
        oldest_block: oldest,
        ..FeeHistory::default()
    };
    let mut rewards = Vec::new();
    let mut last: Option<Header> = None;
    for n in oldest..=newest {
        let Some(hash) = ctx.store.canonical_hash(n)? else {
            break;
        };
        let Some(header) = ctx.store.header(&hash)? else {
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
            let txs = ctx.store.transactions(&hash)?.unwrap_or_default();
            let receipts = ctx.store.receipts(&hash)?.unwrap_or_default();
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
        let next = ctx.chain.child_base_fee(&h, h.timestamp).unwrap_or(0);
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
                let now = syncing(ctx).unwrap_or(Value::Bool(false));
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
                            Some(ctx) => match ctx.pool()?.get(&hash) {
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
                        for log in new_block_logs(&b).iter().filter(|l| filter.is_none_or(|f| f.matches(&l.inner))) {
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
