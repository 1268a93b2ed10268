//! What subscribers hear when a block becomes the chain head.

use alloy_consensus::ReceiptEnvelope;
use alloy_primitives::B256;
use consort_primitives::Header;

/// A block that became the chain head, as committed: the node announces it after each commit,
/// and RPC subscriptions turn it into `newHeads` and `logs` notifications.
#[derive(Debug, Clone)]
pub struct NewBlock {
    /// Its header.
    pub header: Header,
    /// Its (BFT on-chain) hash.
    pub hash: B256,
    /// Its transactions' hashes, in block order.
    pub transaction_hashes: Vec<B256>,
    /// Its receipts, one per transaction.
    pub receipts: Vec<ReceiptEnvelope>,
}
