//! Narrow read-only views of the chain, in the manner of reth's provider traits. RPC and the
//! sync server are written against these; [`Store`] implements them over RocksDB and
//! [`crate::MemoryChain`] over a few maps, so those callers can be tested without a database.

use crate::{Account, BlockLocation, Result, StateView, StorageError, Store, TxHashes};
use alloy_consensus::ReceiptEnvelope;
use alloy_primitives::{Address, Bloom, Bytes, B256, U256};
use consort_primitives::{Header, TxEnvelope};
use std::sync::Arc;

/// Blocks of the canonical chain: headers, bodies and receipts by hash, hashes by number.
pub trait BlockReader {
    /// The head block's number and hash, `None` before genesis.
    fn head(&self) -> Result<Option<(u64, B256)>>;
    /// The canonical block hash at a height.
    fn canonical_hash(&self, number: u64) -> Result<Option<B256>>;
    /// The number of a stored block.
    fn block_number(&self, hash: &B256) -> Result<Option<u64>>;
    /// A header by block hash.
    fn header(&self, hash: &B256) -> Result<Option<Header>>;
    /// A block's transactions.
    fn transactions(&self, hash: &B256) -> Result<Option<Vec<TxEnvelope>>>;
    /// A block's receipts.
    fn receipts(&self, hash: &B256) -> Result<Option<Vec<ReceiptEnvelope>>>;
    /// A block's transaction hashes and the length of their encoded list.
    fn transaction_hashes(&self, hash: &B256) -> Result<Option<TxHashes>> {
        Ok(self.transactions(hash)?.map(|txs| TxHashes::of(&txs)))
    }
    /// Where a transaction was included.
    fn transaction_location(&self, tx_hash: &B256) -> Result<Option<BlockLocation>>;

    /// A canonical header by number.
    fn header_by_number(&self, number: u64) -> Result<Option<Header>> {
        match self.canonical_hash(number)? {
            Some(hash) => self.header(&hash),
            None => Ok(None),
        }
    }

    /// Number and hash of the canonical blocks in `from..=to` whose logs bloom `wanted`
    /// accepts, in order, stopping at the first height without a block.
    fn blocks_by_bloom(
        &self,
        from: u64,
        to: u64,
        wanted: &dyn Fn(&Bloom) -> bool,
    ) -> Result<Vec<(u64, B256)>> {
        let mut out = Vec::new();
        for n in from..=to {
            let Some(hash) = self.canonical_hash(n)? else {
                break;
            };
            let Some(header) = self.header(&hash)? else {
                break;
            };
            if wanted(&header.logs_bloom) {
                out.push((n, hash));
            }
        }
        Ok(out)
    }

    /// The head block's header.
    fn head_header(&self) -> Result<Header> {
        let (_, hash) = self.head()?.ok_or(StorageError::Empty)?;
        self.header(&hash)?.ok_or(StorageError::Corrupt {
            table: crate::schema::HEADERS,
            reason: format!("head {hash} has no header"),
        })
    }
}

/// The state after one block, every read from the same snapshot.
pub trait StateSnapshot {
    /// An account's nonce, balance and code hash.
    fn basic_account(&self, address: &Address) -> Result<Option<Account>>;
    /// A storage slot (zero when unset).
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256>;
    /// Contract code by hash.
    fn code(&self, hash: &B256) -> Result<Option<Bytes>>;
}

/// Snapshots of the state at a block.
pub trait StateReader {
    /// One block's state.
    type Snapshot<'a>: StateSnapshot
    where
        Self: 'a;

    /// The state after block `number`, if it is kept.
    fn state_at(&self, number: u64) -> Result<Self::Snapshot<'_>>;
    /// The state after the head, with the head taken from the same snapshot.
    fn head_state(&self) -> Result<Self::Snapshot<'_>>;

    /// One account in the head state. A single read is consistent by itself, so a store
    /// answers it without pinning a snapshot or reading the head first.
    fn head_account(&self, address: &Address) -> Result<Option<Account>> {
        self.head_state()?.basic_account(address)
    }
}

impl BlockReader for Store {
    fn head(&self) -> Result<Option<(u64, B256)>> {
        Store::head(self)
    }

    fn canonical_hash(&self, number: u64) -> Result<Option<B256>> {
        Store::canonical_hash(self, number)
    }

    fn block_number(&self, hash: &B256) -> Result<Option<u64>> {
        Store::block_number(self, hash)
    }

    fn header(&self, hash: &B256) -> Result<Option<Header>> {
        Store::header(self, hash)
    }

    fn transactions(&self, hash: &B256) -> Result<Option<Vec<TxEnvelope>>> {
        Store::transactions(self, hash)
    }

    fn receipts(&self, hash: &B256) -> Result<Option<Vec<ReceiptEnvelope>>> {
        Store::receipts(self, hash)
    }

    fn transaction_hashes(&self, hash: &B256) -> Result<Option<TxHashes>> {
        Store::transaction_hashes(self, hash)
    }

    fn transaction_location(&self, tx_hash: &B256) -> Result<Option<BlockLocation>> {
        Store::transaction_location(self, tx_hash)
    }

    fn header_by_number(&self, number: u64) -> Result<Option<Header>> {
        Store::header_by_number(self, number)
    }

    fn blocks_by_bloom(
        &self,
        from: u64,
        to: u64,
        wanted: &dyn Fn(&Bloom) -> bool,
    ) -> Result<Vec<(u64, B256)>> {
        Store::blocks_by_bloom(self, from, to, wanted)
    }

    fn head_header(&self) -> Result<Header> {
        Store::head_header(self)
    }
}

impl StateReader for Store {
    type Snapshot<'a> = StateView<'a>;

    fn state_at(&self, number: u64) -> Result<StateView<'_>> {
        Store::state_at(self, number)
    }

    fn head_state(&self) -> Result<StateView<'_>> {
        Store::head_state(self)
    }

    fn head_account(&self, address: &Address) -> Result<Option<Account>> {
        self.latest_state().basic_account(address)
    }
}

impl StateSnapshot for StateView<'_> {
    fn basic_account(&self, address: &Address) -> Result<Option<Account>> {
        StateView::basic_account(self, address)
    }

    fn storage(&self, address: &Address, slot: &U256) -> Result<U256> {
        StateView::storage(self, address, slot)
    }

    fn code(&self, hash: &B256) -> Result<Option<Bytes>> {
        StateView::code(self, hash)
    }
}

// Shared handles read like what they point to (reth's `auto_impl(&, Arc)`).
impl<T: BlockReader + ?Sized> BlockReader for Arc<T> {
    fn head(&self) -> Result<Option<(u64, B256)>> {
        (**self).head()
    }

    fn canonical_hash(&self, number: u64) -> Result<Option<B256>> {
        (**self).canonical_hash(number)
    }

    fn block_number(&self, hash: &B256) -> Result<Option<u64>> {
        (**self).block_number(hash)
    }

    fn header(&self, hash: &B256) -> Result<Option<Header>> {
        (**self).header(hash)
    }

    fn transactions(&self, hash: &B256) -> Result<Option<Vec<TxEnvelope>>> {
        (**self).transactions(hash)
    }

    fn receipts(&self, hash: &B256) -> Result<Option<Vec<ReceiptEnvelope>>> {
        (**self).receipts(hash)
    }

    fn transaction_hashes(&self, hash: &B256) -> Result<Option<TxHashes>> {
        (**self).transaction_hashes(hash)
    }

    fn transaction_location(&self, tx_hash: &B256) -> Result<Option<BlockLocation>> {
        (**self).transaction_location(tx_hash)
    }

    fn header_by_number(&self, number: u64) -> Result<Option<Header>> {
        (**self).header_by_number(number)
    }

    fn blocks_by_bloom(
        &self,
        from: u64,
        to: u64,
        wanted: &dyn Fn(&Bloom) -> bool,
    ) -> Result<Vec<(u64, B256)>> {
        (**self).blocks_by_bloom(from, to, wanted)
    }

    fn head_header(&self) -> Result<Header> {
        (**self).head_header()
    }
}

impl<T: StateReader + ?Sized> StateReader for Arc<T> {
    type Snapshot<'a>
        = T::Snapshot<'a>
    where
        Self: 'a;

    fn state_at(&self, number: u64) -> Result<T::Snapshot<'_>> {
        (**self).state_at(number)
    }

    fn head_state(&self) -> Result<T::Snapshot<'_>> {
        (**self).head_state()
    }

    fn head_account(&self, address: &Address) -> Result<Option<Account>> {
        (**self).head_account(address)
    }
}

impl<T: StateSnapshot + ?Sized> StateSnapshot for &T {
    fn basic_account(&self, address: &Address) -> Result<Option<Account>> {
        (**self).basic_account(address)
    }

    fn storage(&self, address: &Address, slot: &U256) -> Result<U256> {
        (**self).storage(address, slot)
    }

    fn code(&self, hash: &B256) -> Result<Option<Bytes>> {
        (**self).code(hash)
    }
}
