//! Trie nodes, their RLP encoding (Yellow Paper appendix D) and decoding.

use crate::{path_string, Result, TrieError};
use alloy_primitives::{keccak256, Bytes, B256};
use alloy_rlp::{BufMut, Encodable, Header, EMPTY_STRING_CODE};

/// How a parent refers to a child: by hash, or by embedding an encoding shorter than 32 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NodeRef {
    Hash(B256),
    Inline(Bytes),
}

impl NodeRef {
    pub(crate) fn from_rlp(rlp: &[u8]) -> Self {
        if rlp.len() < 32 {
            NodeRef::Inline(Bytes::copy_from_slice(rlp))
        } else {
            NodeRef::Hash(keccak256(rlp))
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            NodeRef::Hash(_) => 33,
            NodeRef::Inline(b) => b.len(),
        }
    }

    fn encode(&self, out: &mut dyn BufMut) {
        match self {
            NodeRef::Hash(h) => h.encode(out),
            NodeRef::Inline(b) => out.put_slice(b),
        }
    }
}

/// A trie node in memory. `Stored` is a child not loaded yet; every other kind caches its
/// reference once computed, and a modified node has no cache.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Empty,
    Leaf {
        key: Vec<u8>,
        value: Bytes,
        cache: Option<NodeRef>,
    },
    Extension {
        key: Vec<u8>,
        child: Box<Node>,
        cache: Option<NodeRef>,
    },
    Branch {
        children: Box<[Node; 16]>,
        value: Option<Bytes>,
        cache: Option<NodeRef>,
    },
    Stored(B256),
}

impl Node {
    pub(crate) fn leaf(key: Vec<u8>, value: Bytes) -> Self {
        Node::Leaf {
            key,
            value,
            cache: None,
        }
    }

    pub(crate) fn extension(key: Vec<u8>, child: Node) -> Self {
        if key.is_empty() {
            return child;
        }
        Node::Extension {
            key,
            child: Box::new(child),
            cache: None,
        }
    }

    pub(crate) fn empty_children() -> Box<[Node; 16]> {
        Box::new(std::array::from_fn(|_| Node::Empty))
    }

    /// The cached reference of a clean node.
    pub(crate) fn cached(&self) -> Option<NodeRef> {
        match self {
            Node::Empty => None,
            Node::Stored(h) => Some(NodeRef::Hash(*h)),
            Node::Leaf { cache, .. }
            | Node::Extension { cache, .. }
            | Node::Branch { cache, .. } => cache.clone(),
        }
    }

    pub(crate) fn set_cache(&mut self, r: NodeRef) {
        match self {
            Node::Leaf { cache, .. }
            | Node::Extension { cache, .. }
            | Node::Branch { cache, .. } => *cache = Some(r),
            Node::Empty | Node::Stored(_) => {}
        }
    }
}

/// Hex-prefix encoding of a nibble key (Yellow Paper appendix C).
pub(crate) fn hex_prefix(key: &[u8], leaf: bool) -> Vec<u8> {
    let flag = if leaf { 2u8 } else { 0 };
    let mut out = Vec::with_capacity(key.len() / 2 + 1);
    let mut rest = key;
    if let Some((first, tail)) = key.split_first().filter(|_| key.len() % 2 == 1) {
        out.push(((flag | 1) << 4) | first);
        rest = tail;
    } else {
        out.push(flag << 4);
    }
    for pair in rest.chunks_exact(2) {
        if let [hi, lo] = pair {
            out.push((hi << 4) | lo);
        }
    }
    out
}

fn decode_hex_prefix(bytes: &[u8]) -> Option<(Vec<u8>, bool)> {
    let (first, rest) = bytes.split_first()?;
    let flag = first >> 4;
    if flag > 3 {
        return None;
    }
    let mut key = Vec::with_capacity(rest.len() * 2 + 1);
    if flag & 1 == 1 {
        key.push(first & 0x0f);
    } else if first & 0x0f != 0 {
        return None;
    }
    key.extend(crate::to_nibbles(rest));
    Some((key, flag & 2 == 2))
}

/// Encodes a node whose children already have their references (`child_ref`).
pub(crate) fn encode_leaf(key: &[u8], value: &[u8]) -> Vec<u8> {
    let hp = hex_prefix(key, true);
    let payload = hp.as_slice().length() + value.length();
    let mut out = Vec::with_capacity(payload + 3);
    Header {
        list: true,
        payload_length: payload,
    }
    .encode(&mut out);
    hp.as_slice().encode(&mut out);
    value.encode(&mut out);
    out
}

pub(crate) fn encode_extension(key: &[u8], child: &NodeRef) -> Vec<u8> {
    let hp = hex_prefix(key, false);
    let payload = hp.as_slice().length() + child.encoded_len();
    let mut out = Vec::with_capacity(payload + 3);
    Header {
        list: true,
        payload_length: payload,
    }
    .encode(&mut out);
    hp.as_slice().encode(&mut out);
    child.encode(&mut out);
    out
}

pub(crate) fn encode_branch(children: &[Option<NodeRef>; 16], value: Option<&[u8]>) -> Vec<u8> {
    let payload = children
        .iter()
        .map(|c| c.as_ref().map_or(1, NodeRef::encoded_len))
        .sum::<usize>()
        + value.map_or(1, |v| v.length());
    let mut out = Vec::with_capacity(payload + 3);
    Header {
        list: true,
        payload_length: payload,
    }
    .encode(&mut out);
    for child in children {
        match child {
            Some(r) => r.encode(&mut out),
            None => out.put_u8(EMPTY_STRING_CODE),
        }
    }
    match value {
        Some(v) => v.encode(&mut out),
        None => out.put_u8(EMPTY_STRING_CODE),
    }
    out
}

/// Decodes a node's RLP; `path` names it in errors.
pub(crate) fn decode_node(rlp: &[u8], path: &[u8]) -> Result<Node> {
    let malformed = |reason: &str| TrieError::Malformed {
        path: path_string(path),
        reason: reason.into(),
    };
    let items = list_items(rlp).ok_or_else(|| malformed("not an RLP list of items"))?;
    let own = NodeRef::from_rlp(rlp);
    match items.as_slice() {
        [key, second] => {
            let key = string_payload(key).ok_or_else(|| malformed("key is not a string"))?;
            let (key, leaf) =
                decode_hex_prefix(key).ok_or_else(|| malformed("bad hex-prefix key"))?;
            if leaf {
                let value = string_payload(second)
                    .ok_or_else(|| malformed("leaf value is not a string"))?;
                Ok(Node::Leaf {
                    key,
                    value: Bytes::copy_from_slice(value),
                    cache: Some(own),
                })
            } else {
                let mut child_path = path.to_vec();
                child_path.extend_from_slice(&key);
                let child = decode_child(second, &child_path)?;
                if matches!(child, Node::Empty) {
                    return Err(malformed("extension without a child"));
                }
                Ok(Node::Extension {
                    key,
                    child: Box::new(child),
                    cache: Some(own),
                })
            }
        }
        [children @ .., value] if children.len() == 16 => {
            let mut decoded = Node::empty_children();
            let mut child_path = path.to_vec();
            child_path.push(0);
            for (i, (slot, item)) in decoded.iter_mut().zip(children).enumerate() {
                if let Some(last) = child_path.last_mut() {
                    *last = i as u8;
                }
                *slot = decode_child(item, &child_path)?;
            }
            let value =
                string_payload(value).ok_or_else(|| malformed("branch value is not a string"))?;
            let value = (!value.is_empty()).then(|| Bytes::copy_from_slice(value));
            Ok(Node::Branch {
                children: decoded,
                value,
                cache: Some(own),
            })
        }
        _ => Err(malformed("a node has 2 or 17 items")),
    }
}

fn decode_child(item: &[u8], path: &[u8]) -> Result<Node> {
    if item.first().is_some_and(|b| *b >= 0xc0) {
        return decode_node(item, path);
    }
    match string_payload(item) {
        Some([]) => Ok(Node::Empty),
        Some(h) if h.len() == 32 => Ok(Node::Stored(B256::from_slice(h))),
        _ => Err(TrieError::Malformed {
            path: path_string(path),
            reason: "child reference is neither a hash nor an inline node".into(),
        }),
    }
}

/// The raw encodings of the items of an RLP list that spans all of `rlp`.
pub(crate) fn list_items(rlp: &[u8]) -> Option<Vec<&[u8]>> {
    let mut buf = rlp;
    let header = Header::decode(&mut buf).ok()?;
    if !header.list || header.payload_length != buf.len() {
        return None;
    }
    let mut items = Vec::new();
    while !buf.is_empty() {
        let start = buf;
        let h = Header::decode(&mut buf).ok()?;
        let header_len = start.len() - buf.len();
        let total = header_len.checked_add(h.payload_length)?;
        items.push(start.get(..total)?);
        buf = start.get(total..)?;
    }
    Some(items)
}

/// The payload of an RLP string item.
pub(crate) fn string_payload(item: &[u8]) -> Option<&[u8]> {
    let mut buf = item;
    let h = Header::decode(&mut buf).ok()?;
    if h.list || h.payload_length != buf.len() {
        return None;
    }
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_prefix_matches_the_yellow_paper() {
        let cases: &[(&[u8], bool, &[u8])] = &[
            (&[1, 2, 3, 4, 5], false, &[0x11, 0x23, 0x45]),
            (&[0, 1, 2, 3, 4, 5], false, &[0x00, 0x01, 0x23, 0x45]),
            (&[0, 15, 1, 12, 11, 8], true, &[0x20, 0x0f, 0x1c, 0xb8]),
            (&[15, 1, 12, 11, 8], true, &[0x3f, 0x1c, 0xb8]),
            (&[], true, &[0x20]),
        ];
        for (key, leaf, expected) in cases {
            assert_eq!(hex_prefix(key, *leaf), *expected);
            assert_eq!(decode_hex_prefix(expected), Some((key.to_vec(), *leaf)));
        }
    }
}
