//! Polling filters: `eth_newFilter`, `eth_newBlockFilter`, `eth_newPendingTransactionFilter`,
//! `eth_getFilterChanges`, `eth_getFilterLogs`, `eth_uninstallFilter`. Bounded in number, in
//! total and per connection, and in what each holds; filters not polled within the timeout are
//! removed.

use crate::error::{RpcError, RpcResult};
use crate::eth::{get_logs, head, logs_in_range, next, to_json};
use crate::server::{connection_method, method, Connection, Transport};
use crate::RpcContext;
use alloy_primitives::{keccak256, B256, U256};
use alloy_rpc_types_eth::{BlockNumberOrTag, Filter, FilterBlockOption};
use jsonrpsee::server::RpcModule;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

/// Most pending-transaction hashes one filter keeps between polls.
const MAX_PENDING_PER_FILTER: usize = 1_000;
/// Most block hashes one poll of a block filter returns.
const MAX_BLOCKS_PER_POLL: u64 = 1_000;

#[derive(Debug)]
enum Kind {
    Blocks { next: u64 },
    PendingTransactions(VecDeque<B256>),
    Logs { filter: Box<Filter>, next: u64 },
}

#[derive(Debug)]
struct Installed {
    kind: Kind,
    last_poll: Instant,
    /// The connection that installed it, counted against its share.
    owner: Connection,
}

/// The installed filters.
#[derive(Debug, Default)]
pub struct Filters {
    by_id: HashMap<U256, Installed>,
    counter: u64,
}

impl Filters {
    fn install(&mut self, ctx: &RpcContext, owner: Connection, kind: Kind) -> RpcResult<U256> {
        self.expire(ctx);
        if self.by_id.len() >= ctx.limits.max_filters {
            return Err(RpcError::LimitExceeded(format!(
                "too many filters installed (limit {})",
                ctx.limits.max_filters
            )));
        }
        let per_connection = ctx.limits.max_filters_per_connection;
        if self.by_id.values().filter(|f| f.owner == owner).count() >= per_connection {
            return Err(RpcError::LimitExceeded(format!(
                "too many filters installed by this connection (limit {per_connection})"
            )));
        }
        self.counter += 1;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut seed = self.counter.to_be_bytes().to_vec();
        seed.extend_from_slice(&nanos.to_be_bytes());
        let id = U256::from_be_slice(keccak256(seed).get(..16).unwrap_or_default());
        self.by_id.insert(
            id,
            Installed {
                kind,
                last_poll: Instant::now(),
                owner,
            },
        );
        Ok(id)
    }

    fn expire(&mut self, ctx: &RpcContext) {
        let timeout = ctx.limits.filter_timeout;
        self.by_id.retain(|_, f| f.last_poll.elapsed() < timeout);
    }

    /// Records a new pending transaction in every pending-transaction filter.
    pub fn on_pending_transaction(&mut self, hash: B256) {
        for f in self.by_id.values_mut() {
            if let Kind::PendingTransactions(q) = &mut f.kind {
                if q.len() >= MAX_PENDING_PER_FILTER {
                    q.pop_front();
                }
                q.push_back(hash);
            }
        }
    }
}

fn lock(ctx: &RpcContext) -> RpcResult<std::sync::MutexGuard<'_, Filters>> {
    ctx.filters
        .lock()
        .map_err(|_| RpcError::Internal("filter table lock poisoned".into()))
}

fn not_found() -> RpcError {
    RpcError::Execution("filter not found".into())
}

pub(crate) fn register(m: &mut RpcModule<Arc<RpcContext>>, transport: Transport) {
    connection_method(m, "eth_newFilter", transport, |ctx, p, owner| {
        let filter: Filter = next(&mut p.sequence())?;
        // Changes are logs of blocks after installation (and not before a later `fromBlock`),
        // as geth and Besu report them; `eth_getFilterLogs` covers the filter's whole range.
        let after_head = head(&ctx.store)?.0.saturating_add(1);
        let start = match filter.block_option {
            FilterBlockOption::Range {
                from_block: Some(BlockNumberOrTag::Number(n)),
                ..
            } => after_head.max(n),
            _ => after_head,
        };
        let id = lock(ctx)?.install(
            ctx,
            owner,
            Kind::Logs {
                filter: Box::new(filter),
                next: start,
            },
        )?;
        to_json(id)
    });
    connection_method(m, "eth_newBlockFilter", transport, |ctx, _, owner| {
        let next = head(&ctx.store)?.0.saturating_add(1);
        to_json(lock(ctx)?.install(ctx, owner, Kind::Blocks { next })?)
    });
    connection_method(
        m,
        "eth_newPendingTransactionFilter",
        transport,
        |ctx, _, owner| {
            to_json(lock(ctx)?.install(ctx, owner, Kind::PendingTransactions(VecDeque::new()))?)
        },
    );
    method(m, "eth_uninstallFilter", |ctx, p| {
        let id: U256 = next(&mut p.sequence())?;
        Ok(Value::Bool(lock(ctx)?.by_id.remove(&id).is_some()))
    });
    method(m, "eth_getFilterChanges", |ctx, p| {
        let id: U256 = next(&mut p.sequence())?;
        let head = head(&ctx.store)?.0;
        // Take what the poll needs under the lock, read the chain outside it.
        let job = {
            let mut filters = lock(ctx)?;
            filters.expire(ctx);
            let f = filters.by_id.get_mut(&id).ok_or_else(not_found)?;
            f.last_poll = Instant::now();
            match &mut f.kind {
                Kind::PendingTransactions(q) => return to_json(q.drain(..).collect::<Vec<_>>()),
                Kind::Blocks { next } => {
                    let from = *next;
                    let to = head.min(from.saturating_add(MAX_BLOCKS_PER_POLL - 1));
                    *next = to.saturating_add(1).max(from);
                    (None, from, to)
                }
                // The cursor moves only once the logs were read (below), so a failed poll
                // can be repeated without losing blocks.
                Kind::Logs { filter, next } => {
                    let from = *next;
                    let to = head.min(from.saturating_add(ctx.limits.max_logs_range - 1));
                    (Some(filter.clone()), from, to)
                }
            }
        };
        match job {
            (None, from, to) => {
                let mut hashes = Vec::new();
                for n in from..=to {
                    if let Some(h) = ctx.store.canonical_hash(n)? {
                        hashes.push(h);
                    }
                }
                to_json(hashes)
            }
            (Some(filter), from, to) => {
                let to = match filter.block_option {
                    FilterBlockOption::Range {
                        to_block: Some(BlockNumberOrTag::Number(n)),
                        ..
                    } => to.min(n),
                    _ => to,
                };
                let logs = logs_in_range(&ctx.store, &ctx.limits, &filter, from, to)?;
                if let Some(Installed {
                    kind: Kind::Logs { next, .. },
                    ..
                }) = lock(ctx)?.by_id.get_mut(&id)
                {
                    if *next == from {
                        *next = to.saturating_add(1).max(from);
                    }
                }
                to_json(logs)
            }
        }
    });
    method(m, "eth_getFilterLogs", |ctx, p| {
        let id: U256 = next(&mut p.sequence())?;
        let filter = {
            let mut filters = lock(ctx)?;
            filters.expire(ctx);
            let f = filters.by_id.get_mut(&id).ok_or_else(not_found)?;
            f.last_poll = Instant::now();
            match &f.kind {
                Kind::Logs { filter, .. } => filter.clone(),
                _ => return Err(not_found()),
            }
        };
        get_logs(&ctx.store, &ctx.limits, &filter)
    });
}
