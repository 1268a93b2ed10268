//! Entry points for the fuzz targets (`crates/fuzz`): the node's own readers of a peer's sync
//! bytes and its JSON-RPC methods, reached as the node reaches them.

use crate::sync::{self, Status, SyncStatus};
use alloy_rlp::Decodable;
use consort_chainspec::Genesis;
use consort_primitives::{Header, TxEnvelope};
use consort_rpc::{ApiGroup, RpcContext};
use consort_storage::{Store, StoreOptions};
use consort_txpool::{PoolConfig, TxPool};
use jsonrpsee::RpcModule;
use std::sync::{Arc, Mutex, OnceLock};

/// A sync request from a peer, answered from an empty chain as [`sync::serve`] answers it.
pub fn sync_request(data: &[u8]) {
    static STORE: OnceLock<Option<Store>> = OnceLock::new();
    let Some(store) = STORE
        .get_or_init(|| Store::in_memory(StoreOptions::default()).ok())
        .as_ref()
    else {
        return;
    };
    let _ = sync::serve(store, data);
}

/// A peer's sync answer, read as the syncer reads each kind: a status, headers, bodies.
pub fn sync_answer(data: &[u8]) {
    let _ = Status::decode(&mut &*data);
    if let Ok(headers) = Vec::<Header>::decode(&mut &*data) {
        for header in &headers {
            let _ = consort_primitives::QbftExtraData::decode(&header.extra_data);
        }
    }
    let _ = Vec::<Vec<TxEnvelope>>::decode(&mut &*data);
}

/// A JSON-RPC request body (one call, or a batch taken call by call) run by every method the
/// node serves over HTTP, on the development chain in memory: the same method code, parameter
/// readers and state access a client reaches, without the sockets.
pub fn rpc_request(data: &[u8]) {
    let _ = rpc_answers(data);
}

/// The answer to each call of `data` that is a JSON-RPC request.
fn rpc_answers(data: &[u8]) -> Vec<String> {
    static SERVED: OnceLock<Option<(tokio::runtime::Runtime, RpcModule<()>)>> = OnceLock::new();
    let Some((runtime, methods)) = SERVED.get_or_init(serve_dev_chain).as_ref() else {
        return Vec::new();
    };
    let Ok(text) = std::str::from_utf8(data) else {
        return Vec::new();
    };
    let calls: Vec<&str> = match serde_json::from_str::<Vec<&serde_json::value::RawValue>>(text) {
        Ok(batch) => batch.into_iter().map(|raw| raw.get()).collect(),
        Err(_) => vec![text],
    };
    calls
        .into_iter()
        .filter_map(|call| runtime.block_on(methods.raw_json_request(call, 1)).ok())
        .map(|(answer, _)| answer.get().to_string())
        .collect()
}

/// The development chain's genesis in an in-memory store, with an empty pool, and every HTTP
/// method over it; `None` if any of it cannot be made.
fn serve_dev_chain() -> Option<(tokio::runtime::Runtime, RpcModule<()>)> {
    let genesis = Arc::new(Genesis::from_json(crate::DEV_GENESIS).ok()?);
    let store = Arc::new(Store::in_memory(StoreOptions::default()).ok()?);
    consort_evm::init_genesis(&store, &genesis).ok()?;
    let head = store.head_header().ok()?;
    let registry = consort_metrics::Registry::default();
    let (pending_txs, _) = tokio::sync::broadcast::channel(64);
    let (new_blocks, _) = tokio::sync::broadcast::channel(64);
    let ctx = Arc::new(RpcContext {
        store,
        chain: genesis.clone(),
        pool: Arc::new(Mutex::new(TxPool::new(
            PoolConfig::default(),
            crate::driver::head_context(&genesis, &head),
        ))),
        pending_txs,
        new_blocks,
        info: consort_rpc::NodeInfo {
            client_version: "fuzz".into(),
            coinbase: Default::default(),
            mining: false,
            enode_id: String::new(),
            min_gas_price: 0,
            snapshots_dir: None,
        },
        limits: Default::default(),
        filters: Mutex::new(Default::default()),
        metrics: consort_rpc::RpcMetrics::new(&registry).ok()?,
        pool_metrics: consort_txpool::PoolMetrics::new(&registry).ok()?,
        network: None,
        sync: Arc::new(SyncStatus::default()),
        permissions: None,
        on_nodes_changed: None,
        validators: None,
    });
    let methods = consort_rpc::http_methods(&ctx, &ApiGroup::ALL).ok()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(2)
        .enable_all()
        .build()
        .ok()?;
    Some((runtime, methods))
}

#[cfg(test)]
mod tests {
    use super::rpc_answers;

    #[test]
    fn every_method_named_for_the_blocking_pool_is_served() {
        let (_runtime, methods) = super::serve_dev_chain().expect("the dev chain serves");
        let served: Vec<&str> = methods.method_names().collect();
        for name in consort_rpc::BLOCKING_METHODS {
            assert!(served.contains(name), "{name} is not a served method");
        }
        assert!(served.iter().any(|m| m.starts_with("perm_")));
    }

    #[test]
    fn fuzzed_requests_reach_the_node_s_methods() {
        let answers = rpc_answers(
            br#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]},
                {"jsonrpc":"2.0","id":2,"method":"eth_getBalance","params":["0x12","latest"]},
                {"jsonrpc":"2.0","id":3,"method":"eth_blockNumber"}]"#,
        );
        assert_eq!(answers.len(), 3, "{answers:?}");
        assert!(answers[0].contains(r#""result":"0x539""#), "{}", answers[0]);
        assert!(answers[1].contains("-32602"), "{}", answers[1]);
        assert!(answers[2].contains(r#""result":"0x0""#), "{}", answers[2]);
    }
}
