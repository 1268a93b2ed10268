//! Entry points for the fuzz targets (`crates/fuzz`): the node's own readers of a peer's sync
//! bytes, reached as the node reaches them.

use crate::sync::{self, Status};
use alloy_rlp::Decodable;
use consort_primitives::{Header, TxEnvelope};
use consort_storage::{Store, StoreOptions};
use std::sync::OnceLock;

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
