//! Verification of Merkle proofs as `eth_getProof` returns them.

use crate::node::{decode_node, Node};
use crate::to_nibbles;
use alloy_primitives::{keccak256, Bytes, B256};
use std::collections::HashMap;

/// Why a proof does not prove anything about a key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// The proof lacks the node with this hash on the key's path.
    #[error("proof is missing node {0}")]
    MissingNode(B256),
    /// A proof node is not a valid trie node.
    #[error("proof node is malformed: {0}")]
    Malformed(String),
}

/// Checks `proof` against `root` and returns the value under `key` it proves, or `None` when it
/// proves the key absent.
pub fn verify_proof(root: B256, key: &[u8], proof: &[Bytes]) -> Result<Option<Bytes>, ProofError> {
    if root == crate::empty_root() {
        return Ok(None);
    }
    let by_hash: HashMap<B256, &Bytes> = proof.iter().map(|n| (keccak256(n), n)).collect();
    let fetch = |hash: B256| -> Result<Node, ProofError> {
        let rlp = by_hash.get(&hash).ok_or(ProofError::MissingNode(hash))?;
        decode_node(rlp, &[]).map_err(|e| ProofError::Malformed(e.to_string()))
    };
    let nibbles = to_nibbles(key);
    let mut rest: &[u8] = &nibbles;
    let mut node = fetch(root)?;
    loop {
        let next = match node {
            Node::Empty => return Ok(None),
            Node::Stored(h) => fetch(h)?,
            Node::Leaf { key, value, .. } => return Ok((key.as_slice() == rest).then_some(value)),
            Node::Extension { key, child, .. } => match rest.strip_prefix(key.as_slice()) {
                Some(r) => {
                    rest = r;
                    *child
                }
                None => return Ok(None),
            },
            Node::Branch {
                children, value, ..
            } => match rest.split_first() {
                None => return Ok(value),
                Some((i, r)) => {
                    rest = r;
                    (*children)
                        .into_iter()
                        .nth(usize::from(*i))
                        .unwrap_or(Node::Empty)
                }
            },
        };
        node = next;
    }
}
