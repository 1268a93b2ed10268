//! Insert, remove, look up and commit on a trie whose unloaded parts stay in a [`NodeStore`].

use crate::node::{decode_node, encode_branch, encode_extension, encode_leaf, Node, NodeRef};
use crate::{path_string, to_nibbles, NodeStore, Result, TrieError};
use alloy_primitives::{keccak256, Bytes, B256};
use alloy_rlp::EMPTY_STRING_CODE;
use std::collections::BTreeSet;

/// The nodes a commit wrote and the paths it emptied, to be stored atomically.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrieUpdate {
    /// The root hash after the commit.
    pub root: B256,
    /// Nodes to store, by nibble path.
    pub writes: Vec<(Vec<u8>, Bytes)>,
    /// Paths whose stored node is gone.
    pub deletes: Vec<Vec<u8>>,
}

/// A Merkle-Patricia trie over a node store. Changes stay in memory until [`Trie::commit`].
#[derive(Debug)]
pub struct Trie<S> {
    root: Node,
    store: S,
    /// Paths whose stored node was replaced or removed since the last commit.
    removed: BTreeSet<Vec<u8>>,
    /// Nodes hashed since the last commit, waiting to be handed out by [`Trie::commit`].
    pending: Vec<(Vec<u8>, Bytes)>,
}

fn concat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(a.len() + b.len());
    v.extend_from_slice(a);
    v.extend_from_slice(b);
    v
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl<S: NodeStore> Trie<S> {
    /// Opens the trie with `root` over `store`.
    pub fn new(store: S, root: B256) -> Self {
        let root = if root == crate::empty_root() {
            Node::Empty
        } else {
            Node::Stored(root)
        };
        Self {
            root,
            store,
            removed: BTreeSet::new(),
            pending: Vec::new(),
        }
    }

    /// The store the trie reads from.
    pub fn store(&self) -> &S {
        &self.store
    }

    fn load(&self, hash: B256, path: &[u8]) -> Result<Node> {
        let rlp = self
            .store
            .node(path)?
            .ok_or_else(|| TrieError::MissingNode {
                path: path_string(path),
                hash,
            })?;
        let found = keccak256(&rlp);
        // The root may be shorter than 32 bytes and is still referenced by its hash.
        if found != hash {
            return Err(TrieError::HashMismatch {
                path: path_string(path),
                expected: hash,
                found,
            });
        }
        decode_node(&rlp, path)
    }

    fn resolve(&self, node: Node, path: &[u8]) -> Result<Node> {
        match node {
            Node::Stored(hash) => self.load(hash, path),
            other => Ok(other),
        }
    }

    /// Looks up the value stored under `key`.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Bytes>> {
        let nibbles = to_nibbles(key);
        let root = std::mem::replace(&mut self.root, Node::Empty);
        let root = self.resolve(root, &[])?;
        let found = self.get_in(&root, &[], &nibbles);
        self.root = root;
        found
    }

    fn get_in(&self, node: &Node, path: &[u8], key: &[u8]) -> Result<Option<Bytes>> {
        match node {
            Node::Empty => Ok(None),
            Node::Stored(hash) => {
                let loaded = self.load(*hash, path)?;
                self.get_in(&loaded, path, key)
            }
            Node::Leaf { key: k, value, .. } => Ok((k.as_slice() == key).then(|| value.clone())),
            Node::Extension { key: k, child, .. } => match key.strip_prefix(k.as_slice()) {
                Some(rest) => self.get_in(child, &concat(path, k), rest),
                None => Ok(None),
            },
            Node::Branch {
                children, value, ..
            } => match key.split_first() {
                None => Ok(value.clone()),
                Some((i, rest)) => match children.get(usize::from(*i)) {
                    Some(child) => self.get_in(child, &concat(path, &[*i]), rest),
                    None => Ok(None),
                },
            },
        }
    }

    /// Sets `key` to `value`; an empty value removes the key, as in Ethereum's tries.
    pub fn insert(&mut self, key: &[u8], value: impl Into<Bytes>) -> Result<()> {
        let value = value.into();
        if value.is_empty() {
            return self.remove(key);
        }
        let nibbles = to_nibbles(key);
        let root = std::mem::replace(&mut self.root, Node::Empty);
        self.root = self.insert_at(root, Vec::new(), &nibbles, value)?;
        Ok(())
    }

    fn insert_at(&mut self, node: Node, path: Vec<u8>, key: &[u8], value: Bytes) -> Result<Node> {
        let node = self.resolve(node, &path)?;
        Ok(match node {
            Node::Empty => Node::leaf(key.to_vec(), value),
            Node::Stored(_) => unreachable_stored(&path)?,
            Node::Leaf {
                key: k,
                value: old,
                cache,
            } => {
                if k.as_slice() == key {
                    if old == value {
                        return Ok(Node::Leaf {
                            key: k,
                            value: old,
                            cache,
                        });
                    }
                    return Ok(Node::leaf(k, value));
                }
                let c = common_prefix(&k, key);
                let mut children = Node::empty_children();
                let mut branch_value = None;
                Self::place(
                    &mut children,
                    &mut branch_value,
                    k.get(c..).unwrap_or_default(),
                    old,
                );
                Self::split_into_branch(children, branch_value, key, c, value)
            }
            Node::Extension {
                key: k,
                child,
                cache,
            } => {
                let c = common_prefix(&k, key);
                if c == k.len() {
                    let child_path = concat(&path, &k);
                    let new_child = self.insert_at(
                        *child,
                        child_path,
                        key.get(c..).unwrap_or_default(),
                        value,
                    )?;
                    if new_child.cached().is_some() && cache.is_some() {
                        return Ok(Node::Extension {
                            key: k,
                            child: Box::new(new_child),
                            cache,
                        });
                    }
                    return Ok(Node::extension(k, new_child));
                }
                // Split the extension at the first differing nibble.
                let mut children = Node::empty_children();
                let (split, rest) = match k.get(c..).and_then(|r| r.split_first()) {
                    Some((s, r)) => (*s, r.to_vec()),
                    None => return Err(corrupt(&path, "extension split past its key")),
                };
                if let Some(slot) = children.get_mut(usize::from(split)) {
                    *slot = Node::extension(rest, *child);
                }
                let branch_value = None;
                Self::split_into_branch(children, branch_value, key, c, value)
            }
            Node::Branch {
                mut children,
                value: bv,
                cache,
            } => match key.split_first() {
                None => {
                    if bv.as_ref() == Some(&value) {
                        return Ok(Node::Branch {
                            children,
                            value: bv,
                            cache,
                        });
                    }
                    Node::Branch {
                        children,
                        value: Some(value),
                        cache: None,
                    }
                }
                Some((i, rest)) => {
                    let slot = children
                        .get_mut(usize::from(*i))
                        .ok_or_else(|| corrupt(&path, "nibble out of range"))?;
                    let child = std::mem::replace(slot, Node::Empty);
                    let new_child = self.insert_at(child, concat(&path, &[*i]), rest, value)?;
                    let unchanged = cache.is_some() && new_child.cached().is_some();
                    *slot = new_child;
                    Node::Branch {
                        children,
                        value: bv,
                        cache: if unchanged { cache } else { None },
                    }
                }
            },
        })
    }

    /// Puts a leaf for `key` (relative to the branch at `branch_path`) into a new branch.
    /// Ends a split at nibble `c`: places `value` under `key[c..]` beside what `children` and
    /// `branch_value` already hold, and hangs the branch under the shared prefix `key[..c]`.
    fn split_into_branch(
        mut children: Box<[Node; 16]>,
        mut branch_value: Option<Bytes>,
        key: &[u8],
        c: usize,
        value: Bytes,
    ) -> Node {
        Self::place(
            &mut children,
            &mut branch_value,
            key.get(c..).unwrap_or_default(),
            value,
        );
        let branch = Node::Branch {
            children,
            value: branch_value,
            cache: None,
        };
        Node::extension(key.get(..c).unwrap_or_default().to_vec(), branch)
    }

    fn place(children: &mut [Node; 16], value: &mut Option<Bytes>, key: &[u8], v: Bytes) {
        match key.split_first() {
            None => *value = Some(v),
            Some((i, rest)) => {
                if let Some(slot) = children.get_mut(usize::from(*i)) {
                    *slot = Node::leaf(rest.to_vec(), v);
                }
            }
        }
    }

    /// Removes `key`; removing a missing key changes nothing.
    pub fn remove(&mut self, key: &[u8]) -> Result<()> {
        let nibbles = to_nibbles(key);
        let root = std::mem::replace(&mut self.root, Node::Empty);
        self.root = self.remove_at(root, Vec::new(), &nibbles)?;
        Ok(())
    }

    fn remove_at(&mut self, node: Node, path: Vec<u8>, key: &[u8]) -> Result<Node> {
        let node = self.resolve(node, &path)?;
        match node {
            Node::Empty => Ok(Node::Empty),
            Node::Stored(_) => unreachable_stored(&path),
            Node::Leaf {
                key: k,
                value,
                cache,
            } => {
                if k.as_slice() == key {
                    self.removed.insert(path);
                    Ok(Node::Empty)
                } else {
                    Ok(Node::Leaf {
                        key: k,
                        value,
                        cache,
                    })
                }
            }
            Node::Extension {
                key: k,
                child,
                cache,
            } => {
                let Some(rest) = key.strip_prefix(k.as_slice()) else {
                    return Ok(Node::Extension {
                        key: k,
                        child,
                        cache,
                    });
                };
                let child_path = concat(&path, &k);
                let new_child = self.remove_at(*child, child_path.clone(), rest)?;
                if new_child.cached().is_some() && cache.is_some() {
                    return Ok(Node::Extension {
                        key: k,
                        child: Box::new(new_child),
                        cache,
                    });
                }
                self.merge_into_prefix(k, new_child, &path, child_path)
            }
            Node::Branch {
                mut children,
                value,
                cache,
            } => {
                let mut value = value;
                match key.split_first() {
                    None => {
                        if value.is_none() {
                            return Ok(Node::Branch {
                                children,
                                value,
                                cache,
                            });
                        }
                        value = None;
                    }
                    Some((i, rest)) => {
                        let slot = children
                            .get_mut(usize::from(*i))
                            .ok_or_else(|| corrupt(&path, "nibble out of range"))?;
                        let child = std::mem::replace(slot, Node::Empty);
                        let new_child = self.remove_at(child, concat(&path, &[*i]), rest)?;
                        let unchanged = cache.is_some() && new_child.cached().is_some();
                        *slot = new_child;
                        if unchanged {
                            return Ok(Node::Branch {
                                children,
                                value,
                                cache,
                            });
                        }
                    }
                }
                self.normalize_branch(children, value, path)
            }
        }
    }

    /// A branch left with fewer than two entries collapses into a leaf or an extension.
    fn normalize_branch(
        &mut self,
        mut children: Box<[Node; 16]>,
        value: Option<Bytes>,
        path: Vec<u8>,
    ) -> Result<Node> {
        let occupied: Vec<usize> = children
            .iter()
            .enumerate()
            .filter(|(_, c)| !matches!(c, Node::Empty))
            .map(|(i, _)| i)
            .collect();
        match (occupied.as_slice(), value) {
            ([], None) => {
                self.removed.insert(path);
                Ok(Node::Empty)
            }
            ([], Some(v)) => Ok(Node::leaf(Vec::new(), v)),
            ([only], None) => {
                let nibble = *only as u8;
                let slot = children
                    .get_mut(*only)
                    .ok_or_else(|| corrupt(&path, "nibble out of range"))?;
                let child = std::mem::replace(slot, Node::Empty);
                let child_path = concat(&path, &[nibble]);
                self.merge_into_prefix(vec![nibble], child, &path, child_path)
            }
            (_, value) => Ok(Node::Branch {
                children,
                value,
                cache: None,
            }),
        }
    }

    /// Joins `prefix` (the key from `path` to `child_path`) with what remains below it.
    fn merge_into_prefix(
        &mut self,
        prefix: Vec<u8>,
        child: Node,
        path: &[u8],
        child_path: Vec<u8>,
    ) -> Result<Node> {
        let child = self.resolve(child, &child_path)?;
        Ok(match child {
            Node::Empty => {
                self.removed.insert(path.to_vec());
                Node::Empty
            }
            Node::Leaf { key, value, .. } => {
                self.removed.insert(child_path);
                Node::leaf(concat(&prefix, &key), value)
            }
            Node::Extension { key, child, .. } => {
                self.removed.insert(child_path);
                Node::Extension {
                    key: concat(&prefix, &key),
                    child,
                    cache: None,
                }
            }
            branch @ Node::Branch { .. } => Node::Extension {
                key: prefix,
                child: Box::new(branch),
                cache: None,
            },
            Node::Stored(_) => unreachable_stored(&child_path)?,
        })
    }

    /// The root hash, hashing whatever changed since the last commit. Cheap when nothing did.
    pub fn root_hash(&mut self) -> B256 {
        let mut root = std::mem::replace(&mut self.root, Node::Empty);
        let hash = match &root {
            Node::Empty => crate::empty_root(),
            Node::Stored(h) => *h,
            _ => {
                let was_clean = root.cached().is_some();
                let rlp = hash_node(
                    &mut root,
                    &mut Vec::new(),
                    &mut self.pending,
                    &mut self.removed,
                );
                // The root is always stored, even when its encoding is short.
                if !was_clean && rlp.len() < 32 {
                    self.pending
                        .push((Vec::new(), Bytes::copy_from_slice(&rlp)));
                }
                keccak256(&rlp)
            }
        };
        if matches!(root, Node::Empty) {
            self.removed.insert(Vec::new());
        }
        self.root = root;
        hash
    }

    /// Hashes every changed node and hands out the nodes to store. The trie stays usable.
    pub fn commit(&mut self) -> TrieUpdate {
        let root = self.root_hash();
        let writes = std::mem::take(&mut self.pending);
        let written: BTreeSet<&Vec<u8>> = writes.iter().map(|(p, _)| p).collect();
        let deletes = std::mem::take(&mut self.removed)
            .into_iter()
            .filter(|p| !written.contains(p))
            .collect();
        TrieUpdate {
            root,
            writes,
            deletes,
        }
    }

    /// The nodes on the path to `key`, root first, as `eth_getProof` returns them.
    pub fn proof(&mut self, key: &[u8]) -> Result<Vec<Bytes>> {
        self.root_hash();
        let nibbles = to_nibbles(key);
        let mut proof = Vec::new();
        let mut node = match &self.root {
            Node::Empty => return Ok(proof),
            Node::Stored(h) => self.load(*h, &[])?,
            other => other.clone(),
        };
        let mut path = Vec::new();
        let mut rest: &[u8] = &nibbles;
        loop {
            if let Some(NodeRef::Hash(_)) | None = node.cached() {
                proof.push(Bytes::from(encode_clean(&node)));
            } else if path.is_empty() {
                proof.push(Bytes::from(encode_clean(&node)));
            }
            let next = match &node {
                Node::Extension { key, child, .. } => match rest.strip_prefix(key.as_slice()) {
                    Some(r) => {
                        path.extend_from_slice(key);
                        rest = r;
                        Some((**child).clone())
                    }
                    None => None,
                },
                Node::Branch { children, .. } => match rest.split_first() {
                    Some((i, r)) => {
                        path.push(*i);
                        rest = r;
                        children.get(usize::from(*i)).cloned()
                    }
                    None => None,
                },
                _ => None,
            };
            match next {
                None | Some(Node::Empty) => return Ok(proof),
                Some(Node::Stored(h)) => node = self.load(h, &path)?,
                Some(n) => node = n,
            }
        }
    }
}

fn corrupt(path: &[u8], reason: &str) -> TrieError {
    TrieError::Malformed {
        path: path_string(path),
        reason: reason.into(),
    }
}

fn unreachable_stored<T>(path: &[u8]) -> Result<T> {
    Err(corrupt(path, "stored node was not resolved"))
}

/// The encoding of a node whose children are all hashed.
fn encode_clean(node: &Node) -> Vec<u8> {
    match node {
        Node::Leaf { key, value, .. } => encode_leaf(key, value),
        Node::Extension { key, child, .. } => encode_extension(
            key,
            &child
                .cached()
                .unwrap_or(NodeRef::Inline(Bytes::from_static(&[EMPTY_STRING_CODE]))),
        ),
        Node::Branch {
            children, value, ..
        } => {
            let refs: [Option<NodeRef>; 16] =
                std::array::from_fn(|i| children.get(i).and_then(Node::cached));
            encode_branch(&refs, value.as_ref().map(|v| v.as_ref()))
        }
        Node::Empty | Node::Stored(_) => vec![EMPTY_STRING_CODE],
    }
}

/// Hashes a node and its dirty descendants; returns the node's RLP. Nodes of 32 bytes or more
/// are queued for storage at their path.
fn hash_node(
    node: &mut Node,
    path: &mut Vec<u8>,
    writes: &mut Vec<(Vec<u8>, Bytes)>,
    emptied: &mut BTreeSet<Vec<u8>>,
) -> Vec<u8> {
    if let Some(NodeRef::Inline(rlp)) = node.cached() {
        return rlp.to_vec();
    }
    if node.cached().is_some() {
        return encode_clean(node);
    }
    let rlp = match node {
        Node::Leaf { key, value, .. } => encode_leaf(key, value),
        Node::Extension { key, child, .. } => {
            let len = path.len();
            path.extend_from_slice(key);
            let child_ref = child_ref(child, path, writes, emptied);
            path.truncate(len);
            encode_extension(key, &child_ref)
        }
        Node::Branch {
            children, value, ..
        } => {
            let mut refs: [Option<NodeRef>; 16] = Default::default();
            for (i, (child, r)) in children.iter_mut().zip(refs.iter_mut()).enumerate() {
                if matches!(child, Node::Empty) {
                    continue;
                }
                path.push(i as u8);
                *r = Some(child_ref(child, path, writes, emptied));
                path.pop();
            }
            encode_branch(&refs, value.as_ref().map(|v| v.as_ref()))
        }
        Node::Empty | Node::Stored(_) => return vec![EMPTY_STRING_CODE],
    };
    let r = NodeRef::from_rlp(&rlp);
    if matches!(r, NodeRef::Hash(_)) {
        writes.push((path.clone(), Bytes::from(rlp.clone())));
    } else {
        // An inline node replaces whatever was stored at its path.
        emptied.insert(path.clone());
    }
    node.set_cache(r);
    rlp
}

fn child_ref(
    child: &mut Node,
    path: &mut Vec<u8>,
    writes: &mut Vec<(Vec<u8>, Bytes)>,
    emptied: &mut BTreeSet<Vec<u8>>,
) -> NodeRef {
    if let Some(r) = child.cached() {
        return r;
    }
    let rlp = hash_node(child, path, writes, emptied);
    NodeRef::from_rlp(&rlp)
}
