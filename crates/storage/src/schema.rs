//! Column families and key layouts. See ARCHITECTURE.md, "Storage schema".

use alloy_primitives::{Address, B256, U256};

pub(crate) const HEADERS: &str = "headers";
pub(crate) const BODIES: &str = "bodies";
pub(crate) const RECEIPTS: &str = "receipts";
pub(crate) const CANONICAL: &str = "canonical";
pub(crate) const BLOCK_NUMBERS: &str = "block_numbers";
pub(crate) const TX_INDEX: &str = "tx_index";
pub(crate) const ACCOUNTS: &str = "accounts";
pub(crate) const STORAGE: &str = "storage";
pub(crate) const CODE: &str = "code";
pub(crate) const ACCOUNT_TRIE: &str = "account_trie";
pub(crate) const STORAGE_TRIE: &str = "storage_trie";
pub(crate) const ACCOUNT_HISTORY: &str = "account_history";
pub(crate) const STORAGE_HISTORY: &str = "storage_history";
pub(crate) const CHANGE_SETS: &str = "change_sets";
pub(crate) const META: &str = "meta";
/// Number → the block's logs bloom (256 bytes; empty for a block without logs), written with
/// the canonical entry, so `eth_getLogs` scans a range without reading headers. Blocks stored
/// before it existed have no entry and are read from their headers.
pub(crate) const LOG_BLOOMS: &str = "log_blooms";
/// Block hash → the length of its encoded transaction list (8) ‖ its transactions' hashes (32
/// each), so block summaries and logs need not decode and hash every transaction. Blocks
/// stored before it existed have no entry and are decoded.
pub(crate) const TX_HASHES: &str = "tx_hashes";

pub(crate) const ALL: [&str; 17] = [
    HEADERS,
    BODIES,
    RECEIPTS,
    CANONICAL,
    BLOCK_NUMBERS,
    TX_INDEX,
    ACCOUNTS,
    STORAGE,
    CODE,
    ACCOUNT_TRIE,
    STORAGE_TRIE,
    ACCOUNT_HISTORY,
    STORAGE_HISTORY,
    CHANGE_SETS,
    META,
    LOG_BLOOMS,
    TX_HASHES,
];

/// `meta` key of the validator's persisted QBFT state (what it prepared and committed).
pub(crate) const CONSENSUS_KEY: &[u8] = b"qbft";
/// `meta` key of the validator votes an operator asked for (`qbft_proposeValidatorVote`).
pub(crate) const VOTES_KEY: &[u8] = b"validator_votes";
/// `meta` key of the head pointer: number (8 bytes BE) ++ hash.
pub(crate) const HEAD_KEY: &[u8] = b"head";
/// `meta` key of the schema version.
pub(crate) const VERSION_KEY: &[u8] = b"schema_version";
pub(crate) const SCHEMA_VERSION: u32 = 1;

pub(crate) fn number_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

pub(crate) fn storage_key(address: &Address, slot: &U256) -> [u8; 52] {
    let mut k = [0u8; 52];
    let (a, s) = k.split_at_mut(20);
    a.copy_from_slice(address.as_slice());
    s.copy_from_slice(&slot.to_be_bytes::<32>());
    k
}

pub(crate) fn account_history_key(address: &Address, block: u64) -> [u8; 28] {
    let mut k = [0u8; 28];
    let (a, b) = k.split_at_mut(20);
    a.copy_from_slice(address.as_slice());
    b.copy_from_slice(&block.to_be_bytes());
    k
}

pub(crate) fn storage_history_key(address: &Address, slot: &U256, block: u64) -> [u8; 60] {
    let mut k = [0u8; 60];
    let (a, b) = k.split_at_mut(52);
    a.copy_from_slice(&storage_key(address, slot));
    b.copy_from_slice(&block.to_be_bytes());
    k
}

pub(crate) fn storage_trie_key(hashed_address: &B256, path: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(32 + path.len());
    k.extend_from_slice(hashed_address.as_slice());
    k.extend_from_slice(path);
    k
}

/// The first key after every key that starts with `prefix` (for range deletes and scans).
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}
