//! A chain held in maps, for tests of code written against the reader traits. Compiled
//! unconditionally rather than behind a feature, so test and non-test builds share one build
//! of this crate and everything above it.

use crate::{
    Account, BlockLocation, BlockReader, Result, StateReader, StateSnapshot, StorageError,
};
use alloy_consensus::ReceiptEnvelope;
use alloy_primitives::{Address, Bytes, B256, U256};
use consort_primitives::{Header, TxEnvelope};
use std::collections::{BTreeMap, HashMap};

/// One block's state: accounts, storage slots and code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryState {
    /// Accounts by address.
    pub accounts: HashMap<Address, Account>,
    /// Storage slots by account and slot; unset slots read as zero.
    pub storage: HashMap<(Address, U256), U256>,
    /// Code by hash.
    pub code: HashMap<B256, Bytes>,
}

impl StateSnapshot for MemoryState {
    fn basic_account(&self, address: &Address) -> Result<Option<Account>> {
        Ok(self.accounts.get(address).copied())
    }

    fn storage(&self, address: &Address, slot: &U256) -> Result<U256> {
        Ok(self
            .storage
            .get(&(*address, *slot))
            .copied()
            .unwrap_or_default())
    }

    fn code(&self, hash: &B256) -> Result<Option<Bytes>> {
        Ok(self.code.get(hash).cloned())
    }
}

/// A canonical chain in memory: blocks appended with [`MemoryChain::push`], each block's
/// state set with [`MemoryChain::set_state`]. Block hashes are the headers' Keccak hashes.
#[derive(Debug, Clone, Default)]
pub struct MemoryChain {
    canonical: Vec<B256>,
    headers: HashMap<B256, Header>,
    bodies: HashMap<B256, Vec<TxEnvelope>>,
    receipts: HashMap<B256, Vec<ReceiptEnvelope>>,
    locations: HashMap<B256, BlockLocation>,
    states: BTreeMap<u64, MemoryState>,
}

impl MemoryChain {
    /// An empty chain (no genesis).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a block at the next height and returns its hash. The header's number is set to
    /// that height and its parent hash to the previous block's.
    pub fn push(
        &mut self,
        mut header: Header,
        transactions: Vec<TxEnvelope>,
        receipts: Vec<ReceiptEnvelope>,
    ) -> B256 {
        header.number = self.canonical.len() as u64;
        header.parent_hash = self.canonical.last().copied().unwrap_or_default();
        let hash = header.hash_slow();
        for (index, tx) in transactions.iter().enumerate() {
            self.locations.insert(
                *tx.tx_hash(),
                BlockLocation {
                    block_hash: hash,
                    block_number: header.number,
                    index: index as u64,
                },
            );
        }
        self.canonical.push(hash);
        self.headers.insert(hash, header);
        self.bodies.insert(hash, transactions);
        self.receipts.insert(hash, receipts);
        hash
    }

    /// Sets the state after block `number`.
    pub fn set_state(&mut self, number: u64, state: MemoryState) {
        self.states.insert(number, state);
    }

    fn unavailable(&self, requested: u64) -> StorageError {
        StorageError::StateUnavailable {
            requested,
            oldest: self.states.keys().next().copied().unwrap_or_default(),
            head: self.canonical.len().saturating_sub(1) as u64,
        }
    }
}

impl BlockReader for MemoryChain {
    fn head(&self) -> Result<Option<(u64, B256)>> {
        Ok(self
            .canonical
            .last()
            .map(|hash| ((self.canonical.len() as u64).saturating_sub(1), *hash)))
    }

    fn canonical_hash(&self, number: u64) -> Result<Option<B256>> {
        Ok(usize::try_from(number)
            .ok()
            .and_then(|n| self.canonical.get(n))
            .copied())
    }

    fn block_number(&self, hash: &B256) -> Result<Option<u64>> {
        Ok(self.headers.get(hash).map(|h| h.number))
    }

    fn header(&self, hash: &B256) -> Result<Option<Header>> {
        Ok(self.headers.get(hash).cloned())
    }

    fn transactions(&self, hash: &B256) -> Result<Option<Vec<TxEnvelope>>> {
        Ok(self.bodies.get(hash).cloned())
    }

    fn receipts(&self, hash: &B256) -> Result<Option<Vec<ReceiptEnvelope>>> {
        Ok(self.receipts.get(hash).cloned())
    }

    fn transaction_location(&self, tx_hash: &B256) -> Result<Option<BlockLocation>> {
        Ok(self.locations.get(tx_hash).copied())
    }
}

impl StateReader for MemoryChain {
    type Snapshot<'a> = &'a MemoryState;

    fn state_at(&self, number: u64) -> Result<&MemoryState> {
        self.states
            .get(&number)
            .ok_or_else(|| self.unavailable(number))
    }

    fn head_state(&self) -> Result<&MemoryState> {
        let (head, _) = self.head()?.ok_or(StorageError::Empty)?;
        self.state_at(head)
    }
}
