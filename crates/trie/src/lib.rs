//! Ethereum's Merkle-Patricia trie with nodes stored by path, so a block that touches a few
//! accounts rehashes only the paths to them. Used for the account trie, every storage trie and
//! Merkle proofs (`eth_getProof`). Storage backends implement [`NodeStore`].

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod node;
mod proof;
mod store;
mod trie;

pub use proof::{verify_proof, ProofError};
pub use store::{MemoryNodeStore, NodeStore};
pub use trie::{Trie, TrieUpdate};

use alloy_primitives::B256;

/// The root of an empty trie: `keccak256(rlp(""))`.
pub fn empty_root() -> B256 {
    alloy_primitives::b256!("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421")
}

/// Why a trie operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TrieError {
    /// A node referenced by its parent is not in the store.
    #[error("trie node at path {path} (hash {hash}) is missing from the store")]
    MissingNode {
        /// The nibble path of the node, hex-encoded.
        path: String,
        /// The hash the parent expects.
        hash: B256,
    },
    /// A stored node does not hash to what its parent references.
    #[error("trie node at path {path} hashes to {found}, its parent expects {expected}")]
    HashMismatch {
        /// The nibble path of the node, hex-encoded.
        path: String,
        /// The hash the parent expects.
        expected: B256,
        /// The hash of the stored bytes.
        found: B256,
    },
    /// A stored node is not a valid trie node.
    #[error("trie node at path {path} is malformed: {reason}")]
    Malformed {
        /// The nibble path of the node, hex-encoded.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The backing store failed.
    #[error("trie store: {0}")]
    Store(String),
}

/// Result of trie operations.
pub type Result<T, E = TrieError> = std::result::Result<T, E>;

/// Splits bytes into nibbles, high nibble first.
pub fn to_nibbles(key: &[u8]) -> Vec<u8> {
    key.iter().flat_map(|b| [b >> 4, b & 0x0f]).collect()
}

pub(crate) fn path_string(path: &[u8]) -> String {
    path.iter()
        .map(|n| char::from_digit(u32::from(*n), 16).unwrap_or('?'))
        .collect()
}
