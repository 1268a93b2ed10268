//! The `net_`, `web3_`, `txpool_`, `qbft_`, `debug_` and `admin_` methods.

use crate::convert::rpc_transaction;
use crate::error::{RpcError, RpcResult};
use crate::eth::{head, hex_u64, next, optional, resolve, to_json};
use crate::server::method;
use crate::RpcContext;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{keccak256, Address, Bytes, B256};
use alloy_rpc_types_eth::{BlockId, BlockNumberOrTag};
use consort_primitives::QbftExtraData;
use consort_txpool::PoolReader;
use jsonrpsee::server::RpcModule;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) fn net(ctx: Arc<RpcContext>) -> RpcModule<Arc<RpcContext>> {
    let mut m = RpcModule::new(ctx);
    method(&mut m, "net_version", |ctx, _| {
        Ok(Value::String(ctx.chain.chain_id.to_string()))
    });
    method(&mut m, "net_listening", |ctx, _| {
        Ok(Value::Bool(ctx.network.is_some()))
    });
    method(&mut m, "net_peerCount", |ctx, _| {
        let count = ctx.network.as_ref().map_or(0, |n| n.peer_count());
        Ok(Value::String(format!("{count:#x}")))
    });
    m
}

pub(crate) fn web3(ctx: Arc<RpcContext>) -> RpcModule<Arc<RpcContext>> {
    let mut m = RpcModule::new(ctx);
    method(&mut m, "web3_clientVersion", |ctx, _| {
        Ok(Value::String(ctx.info.client_version.clone()))
    });
    method(&mut m, "web3_sha3", |_, p| {
        let data: Bytes = next(&mut p.sequence())?;
        to_json(keccak256(data))
    });
    m
}

pub(crate) fn txpool(ctx: Arc<RpcContext>) -> RpcModule<Arc<RpcContext>> {
    let mut m = RpcModule::new(ctx);
    method(&mut m, "txpool_status", |ctx, _| {
        Ok(pool_status(&*ctx.pool()?))
    });
    method(&mut m, "txpool_content", |ctx, _| {
        pool_content(&*ctx.pool()?)
    });
    m
}

/// `txpool_status`: pending and queued counts.
fn pool_status<P: PoolReader + ?Sized>(pool: &P) -> Value {
    let status = pool.status();
    json!({
        "pending": format!("{:#x}", status.pending),
        "queued": format!("{:#x}", status.queued),
    })
}

/// `txpool_content`: pending and queued transactions by sender and nonce.
fn pool_content<P: PoolReader + ?Sized>(pool: &P) -> RpcResult<Value> {
    let (pending, queued) = pool.content();
    let side = |content: consort_txpool::PoolContent| -> RpcResult<Value> {
        let mut out = Map::new();
        for (sender, txs) in content {
            let mut by_nonce = Map::new();
            for (nonce, tx) in txs {
                by_nonce.insert(
                    nonce.to_string(),
                    to_json(rpc_transaction(tx.tx.clone(), tx.sender, None))?,
                );
            }
            out.insert(sender.to_checksum(None), Value::Object(by_nonce));
        }
        Ok(Value::Object(out))
    };
    Ok(json!({ "pending": side(pending)?, "queued": side(queued)? }))
}

/// Besu's validators for a block: from the node's validator sets when it has them, else
/// those recorded in the block's extraData (the set that sealed it), sorted.
fn validators_of(ctx: &RpcContext, hash: B256) -> RpcResult<Value> {
    if let Some(v) = &ctx.validators {
        return to_json(v.validators_of_block(hash).map_err(RpcError::Internal)?);
    }
    let Some(header) = ctx.store.header(&hash)? else {
        return Ok(Value::Null);
    };
    let extra = QbftExtraData::decode(&header.extra_data)
        .map_err(|e| RpcError::Internal(format!("block {hash} has no QBFT extraData: {e}")))?;
    let mut validators = extra.validators;
    validators.sort();
    to_json(validators)
}

/// The address a vote method names first (Besu's "Invalid address params" otherwise).
fn vote_subject(params: &[Value]) -> RpcResult<Address> {
    params
        .first()
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Address>().ok())
        .ok_or_else(|| RpcError::InvalidParams("Invalid address params".into()))
}

/// The votes of a validator in block-header mode; Besu's -32604 in contract mode.
fn header_voting(ctx: &RpcContext) -> RpcResult<&dyn crate::ValidatorVoting> {
    match &ctx.validators {
        Some(v) if v.header_voting() => Ok(v.as_ref()),
        _ => Err(RpcError::MethodNotEnabled),
    }
}

/// Most blocks one `qbft_getSignerMetrics` call reads.
const MAX_SIGNER_METRICS_BLOCKS: u64 = 10_000;

pub(crate) fn qbft(ctx: Arc<RpcContext>) -> RpcModule<Arc<RpcContext>> {
    let mut m = RpcModule::new(ctx);
    method(&mut m, "qbft_getValidatorsByBlockNumber", |ctx, p| {
        let tag: BlockNumberOrTag = next(&mut p.sequence())?;
        if let (BlockNumberOrTag::Pending, Some(v)) = (tag, &ctx.validators) {
            let (_, hash) = head(&ctx.store)?;
            return to_json(v.validators_after(hash).map_err(RpcError::Internal)?);
        }
        match resolve(&ctx.store, BlockId::Number(tag))? {
            Some((_, hash)) => validators_of(ctx, hash),
            None => Ok(Value::Null),
        }
    });
    method(&mut m, "qbft_getValidatorsByBlockHash", |ctx, p| {
        let hash: B256 = next(&mut p.sequence())?;
        validators_of(ctx, hash)
    });
    method(&mut m, "qbft_proposeValidatorVote", |ctx, p| {
        let voting = header_voting(ctx)?;
        let params: Vec<Value> = p.parse().unwrap_or_default();
        let subject = vote_subject(&params)?;
        let add = params
            .get(1)
            .and_then(Value::as_bool)
            .ok_or_else(|| RpcError::InvalidParams("Invalid vote type params".into()))?;
        voting.propose(subject, add).map_err(RpcError::Internal)?;
        Ok(json!(true))
    });
    method(&mut m, "qbft_discardValidatorVote", |ctx, p| {
        let voting = header_voting(ctx)?;
        let params: Vec<Value> = p.parse().unwrap_or_default();
        let subject = vote_subject(&params)?;
        voting.discard(subject).map_err(RpcError::Internal)?;
        Ok(json!(true))
    });
    method(&mut m, "qbft_getPendingVotes", |ctx, _| {
        let voting = header_voting(ctx)?;
        let votes: Map<String, Value> = voting
            .pending()
            .into_iter()
            .map(|(a, add)| (format!("{a:#x}"), json!(add)))
            .collect();
        Ok(Value::Object(votes))
    });
    // Besu answers genesis's value; this is the value in force for the next block, which is
    // the same unless a transition changed it.
    method(&mut m, "qbft_getRequestTimeoutSeconds", |ctx, _| {
        let q = ctx
            .chain
            .qbft
            .as_ref()
            .ok_or_else(|| RpcError::Execution("the chain is not a QBFT chain".into()))?;
        let (head, _) = head(&ctx.store)?;
        Ok(json!(
            q.params_at(head.saturating_add(1)).request_timeout_seconds
        ))
    });
    method(&mut m, "qbft_getSignerMetrics", |ctx, p| {
        let mut seq = p.sequence();
        let from: Option<BlockNumberOrTag> = optional(&mut seq)?;
        let to: Option<BlockNumberOrTag> = optional(&mut seq)?;
        let (head, _) = head(&ctx.store)?;
        let number = |t: Option<BlockNumberOrTag>, default: u64| match t {
            Some(BlockNumberOrTag::Number(n)) => n,
            Some(BlockNumberOrTag::Earliest) => 0,
            Some(_) => head,
            None => default,
        };
        // As Besu: the end (exclusive) is at most the head; the start defaults to 100 before.
        let to = number(to, head).min(head);
        let from = number(from, head.saturating_sub(100));
        if from >= to && !(from == 0 && to == 0) {
            return Err(RpcError::InvalidParams(
                "fromBlock must be lower than toBlock".into(),
            ));
        }
        if to.saturating_sub(from) > MAX_SIGNER_METRICS_BLOCKS {
            return Err(RpcError::LimitExceeded(format!(
                "at most {MAX_SIGNER_METRICS_BLOCKS} blocks per qbft_getSignerMetrics call"
            )));
        }
        let mut stats: BTreeMap<Address, (u64, u64)> = BTreeMap::new();
        let mut last = None;
        for n in from..to.max(from + 1).min(head.saturating_add(1)) {
            let Some(header) = ctx.store.header_by_number(n)? else {
                break;
            };
            if n > 0 {
                let e = stats.entry(header.beneficiary).or_insert((0, 0));
                e.0 += 1;
                e.1 = n;
            }
            last = Some((n, header));
        }
        // As Besu: the validators after the range's last block are listed even with no
        // blocks (in contract mode the blocks list none, so they come from the contract).
        let last_validators = match (&ctx.validators, last) {
            (Some(v), Some((n, _))) => match ctx.store.canonical_hash(n)? {
                Some(hash) => v
                    .validators_after(hash)
                    .map_err(RpcError::Internal)?
                    .unwrap_or_default(),
                None => Vec::new(),
            },
            (None, Some((_, header))) => QbftExtraData::decode(&header.extra_data)
                .map(|e| e.validators)
                .unwrap_or_default(),
            (_, None) => Vec::new(),
        };
        for v in last_validators {
            stats.entry(v).or_insert((0, 0));
        }
        Ok(Value::Array(
            stats
                .into_iter()
                .map(|(address, (count, last))| {
                    json!({
                        "address": address,
                        "proposedBlockCount": format!("{count:#x}"),
                        "lastProposedBlockNumber": format!("{last:#x}"),
                    })
                })
                .collect(),
        ))
    });
    m
}

pub(crate) fn debug(ctx: Arc<RpcContext>) -> RpcModule<Arc<RpcContext>> {
    let mut m = RpcModule::new(ctx);
    fn hash_of(ctx: &RpcContext, p: jsonrpsee::types::Params<'_>) -> RpcResult<Option<B256>> {
        let id: BlockId = next(&mut p.sequence())?;
        Ok(resolve(&ctx.store, id)?.map(|(_, h)| h))
    }
    method(&mut m, "debug_getRawHeader", |ctx, p| {
        let Some(hash) = hash_of(ctx, p)? else {
            return Ok(Value::Null);
        };
        let header = ctx.store.header(&hash)?;
        to_json(header.map(|h| Bytes::from(alloy_rlp::encode(&h))))
    });
    method(&mut m, "debug_getRawBlock", |ctx, p| {
        let Some(hash) = hash_of(ctx, p)? else {
            return Ok(Value::Null);
        };
        let Some(header) = ctx.store.header(&hash)? else {
            return Ok(Value::Null);
        };
        let transactions = ctx.store.transactions(&hash)?.unwrap_or_default();
        let withdrawals = header.withdrawals_root.map(|_| Default::default());
        let block = alloy_consensus::Block {
            header,
            body: alloy_consensus::BlockBody {
                transactions,
                ommers: vec![],
                withdrawals,
            },
        };
        to_json(Bytes::from(alloy_rlp::encode(&block)))
    });
    method(&mut m, "debug_getRawReceipts", |ctx, p| {
        let Some(hash) = hash_of(ctx, p)? else {
            return Ok(Value::Null);
        };
        let receipts = ctx.store.receipts(&hash)?.unwrap_or_default();
        to_json(
            receipts
                .iter()
                .map(|r| Bytes::from(r.encoded_2718()))
                .collect::<Vec<_>>(),
        )
    });
    method(&mut m, "debug_getRawTransaction", |ctx, p| {
        let hash: B256 = next(&mut p.sequence())?;
        let Some(loc) = ctx.store.transaction_location(&hash)? else {
            let pooled = ctx.pool()?.transaction(&hash);
            return to_json(pooled.map(|t| Bytes::from(t.tx.encoded_2718())));
        };
        let txs = ctx.store.transactions(&loc.block_hash)?.unwrap_or_default();
        let tx = usize::try_from(loc.index).ok().and_then(|i| txs.get(i));
        to_json(tx.map(|t| Bytes::from(t.encoded_2718())))
    });
    m
}

pub(crate) fn admin(ctx: Arc<RpcContext>) -> RpcModule<Arc<RpcContext>> {
    let mut m = RpcModule::new(ctx);
    // consort's own: a consistent copy of the running node's database, for backups.
    method(&mut m, "admin_createSnapshot", |ctx, _| {
        let dir = ctx
            .info
            .snapshots_dir
            .as_ref()
            .ok_or_else(|| RpcError::Internal("this node serves no snapshots".into()))?;
        std::fs::create_dir_all(dir)
            .map_err(|e| RpcError::Internal(format!("{}: {e}", dir.display())))?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let (number, _) = head(&ctx.store)?;
        let snapshot = dir.join(format!("{number}-{stamp}"));
        std::fs::create_dir_all(&snapshot)
            .map_err(|e| RpcError::Internal(format!("{}: {e}", snapshot.display())))?;
        let path = snapshot.join("database");
        ctx.store.checkpoint(&path)?;
        // The head the copy holds (blocks may have been added since the number above).
        let copy = consort_storage::Store::open(&path, Default::default())?;
        let (number, hash) = copy.head()?.unwrap_or_default();
        Ok(json!({
            "path": snapshot,
            "blockNumber": format!("{number:#x}"),
            "blockHash": hash,
        }))
    });
    method(&mut m, "admin_nodeInfo", |ctx, _| {
        let (number, hash) = head(&ctx.store)?;
        let genesis = ctx.store.canonical_hash(0)?.unwrap_or_default();
        let (enode, port) = match &ctx.network {
            Some(n) => (Value::String(n.enode()), n.listen_port()),
            None => (Value::Null, 0),
        };
        Ok(json!({
            "enode": enode,
            "id": ctx.info.enode_id,
            "name": ctx.info.client_version,
            "ip": enode_host(&enode).map(|(ip, _)| ip),
            "listenAddr": enode_host(&enode).map(|(ip, port)| format!("{ip}:{port}")),
            "ports": { "discovery": 0, "listener": port },
            "protocols": { "eth": {
                "config": { "chainId": ctx.chain.chain_id },
                "difficulty": number,
                "genesis": genesis,
                "head": hash,
                "network": ctx.chain.chain_id,
            }},
        }))
    });
    method(&mut m, "admin_peers", |ctx, _| {
        let (number, hash) = head(&ctx.store)?;
        let Some(network) = &ctx.network else {
            return Ok(json!([]));
        };
        let peers: Vec<Value> = network
            .peers()
            .into_iter()
            .map(|p| {
                json!({
                    "version": "0x5",
                    "name": p.name,
                    "caps": ["qbft/1", "sync/1"],
                    "network": {
                        "localAddress": p.local_address,
                        "remoteAddress": p.remote_address,
                        "inbound": p.inbound,
                    },
                    "port": p.enode.as_deref().and_then(|e| enode_host(&json!(e))).map(|(_, port)| port),
                    "id": format!("0x{}", p.id),
                    "enode": p.enode,
                    "protocols": { "eth": { "difficulty": hex_u64(number), "head": hash, "version": 68 } },
                })
            })
            .collect();
        Ok(Value::Array(peers))
    });
    method(&mut m, "admin_addPeer", |ctx, p| {
        let enode: String = next(&mut p.sequence())?;
        peer_control(ctx, |n| n.add_peer(&enode))
    });
    method(&mut m, "admin_removePeer", |ctx, p| {
        let enode: String = next(&mut p.sequence())?;
        peer_control(ctx, |n| n.remove_peer(&enode))
    });
    m
}

/// The host and port of an enode URL (a JSON string).
fn enode_host(enode: &Value) -> Option<(String, String)> {
    let (_, addr) = enode.as_str()?.rsplit_once('@')?;
    let (host, port) = addr.rsplit_once(':')?;
    Some((host.to_string(), port.to_string()))
}

fn peer_control(
    ctx: &RpcContext,
    f: impl FnOnce(&dyn crate::PeerNetwork) -> Result<bool, crate::PeerControlError>,
) -> RpcResult<Value> {
    let network = ctx
        .network
        .as_ref()
        .ok_or_else(|| RpcError::Unavailable("P2P is disabled (--p2p-enabled=false)".into()))?;
    f(network.as_ref())
        .map(Value::Bool)
        .map_err(RpcError::InvalidParams)
}

#[cfg(test)]
mod tests {
    use super::*;
    use consort_txpool::{PoolContent, PoolStatus, PooledTransaction};

    /// A pool that holds nothing but its counts.
    struct Counts(PoolStatus);

    impl PoolReader for Counts {
        fn status(&self) -> PoolStatus {
            self.0
        }

        fn content(&self) -> (PoolContent, PoolContent) {
            Default::default()
        }

        fn transaction(&self, _: &B256) -> Option<Arc<PooledTransaction>> {
            None
        }

        fn pending_nonce(&self, _: &Address) -> Option<u64> {
            None
        }
    }

    #[test]
    fn txpool_methods_read_any_pool_reader() {
        let pool = Counts(PoolStatus {
            pending: 3,
            queued: 17,
        });
        assert_eq!(
            pool_status(&pool),
            json!({"pending": "0x3", "queued": "0x11"})
        );
        assert_eq!(
            pool_content(&pool).unwrap(),
            json!({"pending": {}, "queued": {}})
        );
    }
}
