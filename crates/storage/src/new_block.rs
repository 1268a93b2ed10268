//! What subscribers hear when a block becomes the chain head.

use alloy_primitives::B256;
use consort_primitives::Header;

/// A block that became the chain head, as committed: the node announces it after each commit,
/// and RPC subscriptions turn it into `newHeads` and (reading the block's receipts from the
/// store, which holds them by then) `logs` notifications. It carries no transactions or
/// receipts, so the announcements a slow subscriber has not read yet hold little memory.
#[derive(Debug, Clone)]
pub struct NewBlock {
    /// Its header.
    pub header: Header,
    /// Its (BFT on-chain) hash.
    pub hash: B256,
}
