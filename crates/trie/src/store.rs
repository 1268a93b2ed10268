use crate::Result;
use alloy_primitives::Bytes;
use std::collections::HashMap;

/// Where trie nodes live, keyed by their nibble path from the root. The root node is stored at
/// the empty path.
pub trait NodeStore {
    /// The RLP of the node stored at `path`, if any.
    fn node(&self, path: &[u8]) -> Result<Option<Bytes>>;
}

impl<T: NodeStore + ?Sized> NodeStore for &T {
    fn node(&self, path: &[u8]) -> Result<Option<Bytes>> {
        (**self).node(path)
    }
}

/// A node store held in memory, for tests, genesis building and state tests.
#[derive(Debug, Default, Clone)]
pub struct MemoryNodeStore {
    nodes: HashMap<Vec<u8>, Bytes>,
}

impl MemoryNodeStore {
    /// Applies the writes and deletions of a committed update.
    pub fn apply(&mut self, update: &crate::TrieUpdate) {
        for path in &update.deletes {
            self.nodes.remove(path);
        }
        for (path, node) in &update.writes {
            self.nodes.insert(path.clone(), node.clone());
        }
    }

    /// How many nodes are stored.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the store holds no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

impl NodeStore for MemoryNodeStore {
    fn node(&self, path: &[u8]) -> Result<Option<Bytes>> {
        Ok(self.nodes.get(path).cloned())
    }
}
