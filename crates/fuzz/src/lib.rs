//! Fuzz targets over every reader of outside bytes: each target takes arbitrary bytes, runs them
//! through the code the node runs on them, and panics only on a bug (a decoder that panics, or a
//! value that does not survive its own encoding). `fuzz/` runs them under libFuzzer
//! (`make fuzz`); `tests/corpus.rs` runs each over its committed corpus, and over seeded
//! mutations of it, in `make test`.

use alloy_eips::eip2718::{Decodable2718, Encodable2718};
use alloy_primitives::Address;
use alloy_rlp::{Decodable, Encodable};
use consort_primitives::{QbftExtraData, TxEnvelope};
use consort_qbft::{Block, QbftMessage};
use std::str::FromStr;
use std::sync::OnceLock;

/// A fuzz target: a name (its corpus directory under `fuzz/corpus/`) and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("transaction", transaction),
    ("block", block),
    ("qbft_message", qbft_message),
    ("extra_data", extra_data),
    ("enode", enode),
    ("sync_request", sync_request),
    ("sync_answer", sync_answer),
    ("genesis", genesis),
    ("permissions_toml", permissions_toml),
    ("rpc_request", rpc_request),
];

/// The validators a fuzzed consensus message is judged against: the keys `seed` makes 1..=4.
pub fn validator_keys() -> &'static [(secp256k1::SecretKey, Address); 4] {
    static KEYS: OnceLock<[(secp256k1::SecretKey, Address); 4]> = OnceLock::new();
    KEYS.get_or_init(|| {
        std::array::from_fn(|i| {
            let key = secp256k1::SecretKey::from_byte_array(&[i as u8 + 1; 32])
                .unwrap_or_else(|e| panic!("{e}"));
            let public = key.public_key(secp256k1::SECP256K1);
            (key, consort_primitives::public_key_address(&public))
        })
    })
}

/// A gossiped or submitted transaction: EIP-2718 decoding and every stateless check
/// (`eth_sendRawTransaction` and the transactions topic). A decoded transaction re-encodes
/// to the same bytes.
pub fn transaction(data: &[u8]) {
    let hardfork = consort_chainspec::Hardfork::Prague;
    let _ = consort_evm::validate_raw_transaction(data, hardfork, 1337);
    let mut buf = data;
    if let Ok(tx) = TxEnvelope::decode_2718(&mut buf) {
        let consumed = &data[..data.len() - buf.len()];
        assert_eq!(
            tx.encoded_2718(),
            consumed,
            "a transaction re-encodes differently"
        );
    }
}

/// A gossiped block: RLP, then its QBFT extraData. A decoded block decodes again from its own
/// encoding to the same block.
pub fn block(data: &[u8]) {
    let Ok(block) = Block::decode(&mut &*data) else {
        return;
    };
    let _ = QbftExtraData::decode(&block.header.extra_data);
    let mut out = Vec::new();
    block.encode(&mut out);
    let again = Block::decode(&mut out.as_slice()).expect("a block's own encoding decodes");
    assert_eq!(again, block, "a block changed across its encoding");
}

/// A consensus message from a peer: the first byte is its code. Read as the gossip judge reads
/// it (author first, then the rest) and as a trusted reader; a decoded message's encoding
/// decodes to the same message.
pub fn qbft_message(data: &[u8]) {
    let validators: Vec<Address> = validator_keys().iter().map(|(_, a)| *a).collect();
    let gated = QbftMessage::decode_wire_from(data, &validators);
    if let Ok(message) = QbftMessage::decode_wire(data) {
        let again = QbftMessage::decode_wire(&message.encode_wire())
            .expect("a message's own encoding decodes");
        assert_eq!(again, message, "a message changed across its encoding");
    } else {
        assert!(
            gated.is_err(),
            "the gated reader accepted what the full one refused"
        );
    }
}

/// A header's extraData, lenient and canonical; what decodes canonically re-encodes to itself.
pub fn extra_data(data: &[u8]) {
    let _ = QbftExtraData::decode(data);
    if let Ok(extra) = QbftExtraData::decode_canonical(data) {
        assert_eq!(
            extra.encode().as_ref(),
            data,
            "canonical extraData re-encodes differently"
        );
    }
}

/// An enode URL (bootnodes, static nodes, `admin_addPeer`, allowlists); what parses prints as
/// a URL that parses to the same enode.
pub fn enode(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(enode) = consort_network::Enode::from_str(text) {
        let printed = enode.to_string();
        let again = consort_network::Enode::from_str(&printed).expect("a printed enode parses");
        assert_eq!(
            again.to_string(),
            printed,
            "an enode changed across printing"
        );
    }
}

/// A peer's sync request, answered from a chain.
pub fn sync_request(data: &[u8]) {
    consort_node::fuzzing::sync_request(data);
}

/// A peer's sync answer (status, headers, bodies).
pub fn sync_answer(data: &[u8]) {
    consort_node::fuzzing::sync_answer(data);
}

/// A genesis file; one that parses has a header and a state root.
pub fn genesis(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(genesis) = consort_chainspec::Genesis::from_json(text) {
        let _ = genesis.header();
    }
}

/// Besu's `permissions_config.toml`, as the node loads it at start and on
/// `perm_reloadPermissionsFromFile`.
pub fn permissions_toml(data: &[u8]) {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")));
    let path = dir
        .path()
        .join(format!("{:?}.toml", std::thread::current().id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let config = consort_permissioning::LocalConfig {
        nodes_file: Some(path.clone()),
        accounts_file: Some(path),
    };
    let _ = consort_permissioning::LocalAllowlists::load(&config, &[]);
}

/// A JSON-RPC request body (a call or a batch) run by every method the node serves over
/// HTTP, on the development chain in memory; and each parameter read as the types consort's
/// methods read parameters into (block ids and tags, transaction requests with state
/// overrides, log filters, hashes, quantities, bytes), whatever method it was sent to.
pub fn rpc_request(data: &[u8]) {
    consort_node::fuzzing::rpc_request(data);
    use jsonrpsee::types::{Params, Request};
    let calls: Vec<Request<'_>> = match data.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(data)
            .map(|items| {
                items
                    .into_iter()
                    .filter_map(|raw| serde_json::from_str::<Request<'_>>(raw.get()).ok())
                    .collect()
            })
            .unwrap_or_default(),
        _ => serde_json::from_slice::<Request<'_>>(data)
            .map(|r| vec![r])
            .unwrap_or_default(),
    };
    for call in calls {
        let params = Params::new(call.params.as_ref().map(|p| p.get()));
        let Ok(values) = params.parse::<Vec<serde_json::Value>>() else {
            continue;
        };
        for value in values {
            read_as_params(value);
        }
    }
}

fn read_as_params(value: serde_json::Value) {
    use alloy_primitives::{Bytes, B256, U256, U64};
    use alloy_rpc_types_eth::state::StateOverride;
    use alloy_rpc_types_eth::{BlockId, BlockNumberOrTag, Filter, TransactionRequest};
    fn read<T: serde::de::DeserializeOwned>(value: &serde_json::Value) {
        let _ = serde_json::from_value::<T>(value.clone());
    }
    read::<BlockId>(&value);
    read::<BlockNumberOrTag>(&value);
    read::<TransactionRequest>(&value);
    read::<StateOverride>(&value);
    read::<Filter>(&value);
    read::<B256>(&value);
    read::<Address>(&value);
    read::<U256>(&value);
    read::<U64>(&value);
    read::<Bytes>(&value);
    read::<Vec<String>>(&value);
}
