//! State: computing a block's new state root from its changes, writing flat state with its
//! history, and reading state at the head or at a block inside the history window.

use crate::changes::{Account, StateChanges};
use crate::db::{decode, Store};
use crate::schema::*;
use crate::{Result, StorageError};
use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_rlp::{RlpDecodable, RlpEncodable};
use consort_primitives::{TrieAccount, EMPTY_ROOT_HASH};
use consort_trie::{NodeStore, Trie, TrieUpdate};
use rocksdb::{Direction, IteratorMode, Snapshot, WriteBatch};
use std::collections::BTreeMap;
use std::sync::Arc;

struct AccountTrieStore<'a> {
    store: &'a Store,
    snapshot: Option<&'a Snapshot<'a>>,
}

impl NodeStore for AccountTrieStore<'_> {
    fn node(&self, path: &[u8]) -> consort_trie::Result<Option<Bytes>> {
        self.store
            .get_in(self.snapshot, ACCOUNT_TRIE, path)
            .map(|v| v.map(Bytes::from))
            .map_err(|e| consort_trie::TrieError::Store(e.to_string()))
    }
}

struct StorageTrieStore<'a> {
    store: &'a Store,
    snapshot: Option<&'a Snapshot<'a>>,
    hashed_address: B256,
}

impl NodeStore for StorageTrieStore<'_> {
    fn node(&self, path: &[u8]) -> consort_trie::Result<Option<Bytes>> {
        self.store
            .get_in(
                self.snapshot,
                STORAGE_TRIE,
                &storage_trie_key(&self.hashed_address, path),
            )
            .map(|v| v.map(Bytes::from))
            .map_err(|e| consort_trie::TrieError::Store(e.to_string()))
    }
}

/// What `eth_getProof` returns: the account (if it exists), its proof, and each requested
/// slot's value and proof.
pub type AccountProof = (
    Option<TrieAccount>,
    Vec<Bytes>,
    Vec<(B256, U256, Vec<Bytes>)>,
);
/// The keys a block changed, kept to prune its history later.
#[derive(Debug, Default, RlpEncodable, RlpDecodable)]
struct ChangeSet {
    accounts: Vec<Address>,
    slots: Vec<SlotKey>,
}

#[derive(Debug, RlpEncodable, RlpDecodable)]
struct SlotKey {
    address: Address,
    slot: U256,
}

/// A block's state changes turned into a new state root and the writes that store it. Made by
/// [`Store::prepare_state`], consumed by [`Store::commit_block`].
#[derive(Debug)]
pub struct PreparedState {
    /// The head this was computed on (`None` for genesis).
    pub(crate) parent: Option<u64>,
    /// The state root after the changes.
    pub state_root: B256,
    wiped: Vec<(Address, B256)>,
    accounts: Vec<(Address, Option<TrieAccount>)>,
    account_history: Vec<(Address, Vec<u8>)>,
    storage: Vec<(Address, U256, U256)>,
    storage_history: Vec<(Address, U256, U256)>,
    code: Vec<(B256, Bytes)>,
    account_trie: TrieUpdate,
    storage_tries: Vec<(B256, TrieUpdate)>,
}

impl Store {
    fn trie_account(
        &self,
        snapshot: Option<&Snapshot<'_>>,
        address: &Address,
    ) -> Result<Option<TrieAccount>> {
        let raw = self.get_in(snapshot, ACCOUNTS, address.as_slice())?;
        if let Some(m) = &self.metrics {
            m.reads.account.inc();
            match raw {
                Some(_) => m.reads.account_found.inc(),
                None => m.reads.account_missing.inc(),
            }
        }
        raw.map(|raw| decode(ACCOUNTS, &raw)).transpose()
    }

    fn flat_storage(
        &self,
        snapshot: Option<&Snapshot<'_>>,
        address: &Address,
        slot: &U256,
    ) -> Result<U256> {
        let raw = self.get_in(snapshot, STORAGE, &storage_key(address, slot))?;
        if let Some(m) = &self.metrics {
            m.reads.slot.inc();
            match raw {
                Some(_) => m.reads.slot_found.inc(),
                None => m.reads.slot_missing.inc(),
            }
        }
        Ok(raw.map(|v| U256::from_be_slice(&v)).unwrap_or_default())
    }

    /// Every stored slot of an account.
    fn all_storage(&self, address: &Address) -> Result<Vec<(U256, U256)>> {
        let cf = self.cf(STORAGE)?;
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            cf,
            IteratorMode::From(address.as_slice(), Direction::Forward),
        );
        for item in iter {
            let (key, value) = item?;
            let Some(slot) = key.strip_prefix(address.as_slice()) else {
                break;
            };
            out.push((U256::from_be_slice(slot), U256::from_be_slice(&value)));
        }
        Ok(out)
    }

    /// The state root at the head (empty before genesis).
    pub fn head_state_root(&self) -> Result<B256> {
        self.head_state_root_in(None)
    }

    fn head_state_root_in(&self, snapshot: Option<&Snapshot<'_>>) -> Result<B256> {
        let Some((_, hash)) = self.head_in(snapshot)? else {
            return Ok(EMPTY_ROOT_HASH);
        };
        let header = self
            .header_in(snapshot, &hash)?
            .ok_or(StorageError::Corrupt {
                table: HEADERS,
                reason: format!("head {hash} has no header"),
            })?;
        Ok(header.state_root)
    }

    /// Applies `changes` to the head state in memory and computes the new state root, reading
    /// only the trie nodes on the changed paths. Nothing is written.
    pub fn prepare_state(&self, changes: &StateChanges) -> Result<PreparedState> {
        let parent = self.head()?.map(|(n, _)| n);
        let mut account_trie = Trie::new(
            AccountTrieStore {
                store: self,
                snapshot: None,
            },
            self.head_state_root()?,
        );
        let mut out = PreparedState {
            parent,
            state_root: EMPTY_ROOT_HASH,
            wiped: Vec::new(),
            accounts: Vec::new(),
            account_history: Vec::new(),
            storage: Vec::new(),
            storage_history: Vec::new(),
            code: changes.code.iter().map(|(h, c)| (*h, c.clone())).collect(),
            account_trie: TrieUpdate::default(),
            storage_tries: Vec::new(),
        };
        for (address, change) in &changes.accounts {
            let old_raw = self.get(ACCOUNTS, address.as_slice())?;
            let old: Option<TrieAccount> = old_raw
                .as_deref()
                .map(|raw| decode(ACCOUNTS, raw))
                .transpose()?;
            let hashed = keccak256(address);
            let wipe = change.wipe_storage || change.account.is_none();
            // Old values of every slot this block changes, for the history.
            let mut old_slots: BTreeMap<U256, U256> = BTreeMap::new();
            if wipe && old.is_some() {
                let existing = self.all_storage(address)?;
                if !existing.is_empty() || old.is_some_and(|a| a.storage_root != EMPTY_ROOT_HASH) {
                    out.wiped.push((*address, hashed));
                }
                old_slots.extend(existing);
            }
            let new = match change.account {
                None => None,
                Some(account) => {
                    let base_root = match (&old, wipe) {
                        (Some(o), false) => o.storage_root,
                        _ => EMPTY_ROOT_HASH,
                    };
                    let mut trie = Trie::new(
                        StorageTrieStore {
                            store: self,
                            snapshot: None,
                            hashed_address: hashed,
                        },
                        base_root,
                    );
                    for (slot, value) in &change.storage {
                        if !wipe {
                            let before = self.flat_storage(None, address, slot)?;
                            old_slots.insert(*slot, before);
                        } else {
                            old_slots.entry(*slot).or_default();
                        }
                        let key = keccak256(slot.to_be_bytes::<32>());
                        if value.is_zero() {
                            trie.remove(key.as_slice())?;
                        } else {
                            trie.insert(key.as_slice(), alloy_rlp::encode(value))?;
                        }
                        out.storage.push((*address, *slot, *value));
                    }
                    let update = trie.commit();
                    let storage_root = update.root;
                    if !update.writes.is_empty() || !update.deletes.is_empty() {
                        out.storage_tries.push((hashed, update));
                    }
                    Some(TrieAccount {
                        nonce: account.nonce,
                        balance: account.balance,
                        storage_root,
                        code_hash: account.code_hash,
                    })
                }
            };
            for (slot, before) in old_slots {
                let after = change.storage.get(&slot).copied().unwrap_or_default();
                if before != after || (wipe && !before.is_zero()) {
                    out.storage_history.push((*address, slot, before));
                }
            }
            if new == old {
                continue;
            }
            match &new {
                Some(account) => {
                    account_trie.insert(hashed.as_slice(), alloy_rlp::encode(account))?
                }
                None => account_trie.remove(hashed.as_slice())?,
            }
            out.account_history
                .push((*address, old_raw.unwrap_or_default()));
            out.accounts.push((*address, new));
        }
        out.account_trie = account_trie.commit();
        out.state_root = out.account_trie.root;
        Ok(out)
    }

    pub(crate) fn prune_history(&self, batch: &mut WriteBatch, block: u64) -> Result<()> {
        let Some(raw) = self.get(CHANGE_SETS, &number_key(block))? else {
            return Ok(());
        };
        let set: ChangeSet = decode(CHANGE_SETS, &raw)?;
        let account_cf = self.cf(ACCOUNT_HISTORY)?;
        for address in &set.accounts {
            batch.delete_cf(account_cf, account_history_key(address, block));
        }
        let storage_cf = self.cf(STORAGE_HISTORY)?;
        for key in &set.slots {
            batch.delete_cf(
                storage_cf,
                storage_history_key(&key.address, &key.slot, block),
            );
        }
        batch.delete_cf(self.cf(CHANGE_SETS)?, number_key(block));
        Ok(())
    }

    /// The state as of the head, read live without a snapshot: for the block executor, the
    /// only writer, whose head cannot move under it.
    pub fn latest_state(&self) -> StateView<'_> {
        StateView {
            store: self,
            snapshot: None,
            head: None,
            at: None,
        }
    }

    /// The state as of block `number` (after its transactions), if inside the history window.
    /// Every read of the view comes from one RocksDB snapshot taken here, so a block committed
    /// (or history pruned) while the view is in use changes nothing it returns.
    pub fn state_at(&self, number: u64) -> Result<StateView<'_>> {
        let snapshot = self.db.snapshot();
        let (head, _) = self.head_in(Some(&snapshot))?.ok_or(StorageError::Empty)?;
        let oldest = self.oldest_state(head);
        if number > head || number < oldest {
            return Err(StorageError::StateUnavailable {
                requested: number,
                oldest,
                head,
            });
        }
        Ok(StateView {
            store: self,
            snapshot: Some(Arc::new(snapshot)),
            head: Some(head),
            at: Some(number),
        })
    }

    /// The state as of the head, pinned to one snapshot like [`Store::state_at`].
    pub fn head_state(&self) -> Result<StateView<'_>> {
        let snapshot = self.db.snapshot();
        let (head, _) = self.head_in(Some(&snapshot))?.ok_or(StorageError::Empty)?;
        Ok(StateView {
            store: self,
            snapshot: Some(Arc::new(snapshot)),
            head: Some(head),
            at: Some(head),
        })
    }

    /// Contract code by hash.
    pub fn code(&self, hash: &B256) -> Result<Option<Bytes>> {
        Ok(self.get(CODE, hash.as_slice())?.map(Bytes::from))
    }

    /// Merkle proofs at the head, read from one snapshot: see [`StateView::proof`].
    pub fn proof(&self, address: &Address, slots: &[B256]) -> Result<AccountProof> {
        self.head_state()?.proof(address, slots)
    }

    /// Checks that the head's state root is what the stored trie hashes to. Run on open.
    pub fn verify_head_state(&self) -> Result<()> {
        let Some(_) = self.head()? else { return Ok(()) };
        let expected = self.head_state_root()?;
        if expected == EMPTY_ROOT_HASH {
            return Ok(());
        }
        let root = self.get(ACCOUNT_TRIE, &[])?.ok_or(StorageError::Corrupt {
            table: ACCOUNT_TRIE,
            reason: format!("root node of state {expected} is missing"),
        })?;
        let found = keccak256(&root);
        if found != expected {
            return Err(StorageError::Corrupt {
                table: ACCOUNT_TRIE,
                reason: format!("root node hashes to {found}, head state root is {expected}"),
            });
        }
        Ok(())
    }
}

impl PreparedState {
    pub(crate) fn write_into(
        self,
        store: &Store,
        batch: &mut WriteBatch,
        number: u64,
    ) -> Result<()> {
        let storage_cf = store.cf(STORAGE)?;
        let storage_trie_cf = store.cf(STORAGE_TRIE)?;
        for (address, hashed) in &self.wiped {
            batch.delete_range_cf(
                storage_cf,
                address.as_slice(),
                prefix_end(address.as_slice()).as_slice(),
            );
            batch.delete_range_cf(
                storage_trie_cf,
                hashed.as_slice(),
                prefix_end(hashed.as_slice()).as_slice(),
            );
        }
        for (address, slot, value) in &self.storage {
            let key = storage_key(address, slot);
            if value.is_zero() {
                batch.delete_cf(storage_cf, key);
            } else {
                batch.put_cf(storage_cf, key, value.to_be_bytes::<32>());
            }
        }
        let accounts_cf = store.cf(ACCOUNTS)?;
        for (address, account) in &self.accounts {
            match account {
                Some(a) => batch.put_cf(accounts_cf, address, alloy_rlp::encode(a)),
                None => batch.delete_cf(accounts_cf, address),
            }
        }
        let code_cf = store.cf(CODE)?;
        for (hash, code) in &self.code {
            batch.put_cf(code_cf, hash, code);
        }
        let account_trie_cf = store.cf(ACCOUNT_TRIE)?;
        for path in &self.account_trie.deletes {
            batch.delete_cf(account_trie_cf, path);
        }
        for (path, node) in &self.account_trie.writes {
            batch.put_cf(account_trie_cf, path, node);
        }
        for (hashed, update) in &self.storage_tries {
            for path in &update.deletes {
                batch.delete_cf(storage_trie_cf, storage_trie_key(hashed, path));
            }
            for (path, node) in &update.writes {
                batch.put_cf(storage_trie_cf, storage_trie_key(hashed, path), node);
            }
        }
        if store.options.history_window == Some(0) {
            return Ok(());
        }
        let account_history_cf = store.cf(ACCOUNT_HISTORY)?;
        for (address, old) in &self.account_history {
            batch.put_cf(
                account_history_cf,
                account_history_key(address, number),
                old,
            );
        }
        let storage_history_cf = store.cf(STORAGE_HISTORY)?;
        for (address, slot, old) in &self.storage_history {
            batch.put_cf(
                storage_history_cf,
                storage_history_key(address, slot, number),
                old.to_be_bytes::<32>(),
            );
        }
        let set = ChangeSet {
            accounts: self.account_history.iter().map(|(a, _)| *a).collect(),
            slots: self
                .storage_history
                .iter()
                .map(|(address, slot, _)| SlotKey {
                    address: *address,
                    slot: *slot,
                })
                .collect(),
        };
        batch.put_cf(
            store.cf(CHANGE_SETS)?,
            number_key(number),
            alloy_rlp::encode(set),
        );
        Ok(())
    }
}

/// A read-only view of the state at one block. Views from [`Store::state_at`] and
/// [`Store::head_state`] read from one RocksDB snapshot, so all their values belong to the
/// same block however many blocks commit meanwhile.
#[derive(Clone)]
pub struct StateView<'a> {
    store: &'a Store,
    /// The snapshot every read goes through; `None` reads the live database.
    snapshot: Option<Arc<Snapshot<'a>>>,
    /// The head when the snapshot was taken.
    head: Option<u64>,
    /// `None` reads the latest state directly.
    at: Option<u64>,
}

impl std::fmt::Debug for StateView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateView")
            .field("at", &self.at)
            .field("head", &self.head)
            .field("snapshot", &self.snapshot.is_some())
            .finish()
    }
}

impl StateView<'_> {
    /// The block this view reads, `None` for the unpinned latest state.
    pub fn block(&self) -> Option<u64> {
        self.at
    }

    fn snapshot(&self) -> Option<&Snapshot<'_>> {
        self.snapshot.as_deref()
    }

    /// The value of `prefix` before the first change after `self.at`, if one was recorded.
    fn history(&self, table: &'static str, prefix: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(at) = self.at else { return Ok(None) };
        // A view of its snapshot's head: no change after it is in the snapshot, so the current
        // tables answer without a seek (most reads: `latest`, and the pool after each block).
        if self.head == Some(at) {
            return Ok(None);
        }
        let Some(next) = at.checked_add(1) else {
            return Ok(None);
        };
        let mut key = prefix.to_vec();
        key.extend_from_slice(&next.to_be_bytes());
        let cf = self.store.cf(table)?;
        let mode = IteratorMode::From(&key, Direction::Forward);
        let first = match &self.snapshot {
            Some(snapshot) => snapshot.iterator_cf(cf, mode).next(),
            None => self.store.db.iterator_cf(cf, mode).next(),
        };
        match first {
            Some(item) => {
                let (k, v) = item?;
                Ok((k.len() == prefix.len() + 8 && k.starts_with(prefix)).then(|| v.to_vec()))
            }
            None => Ok(None),
        }
    }

    /// An account, with its storage root.
    pub fn account(&self, address: &Address) -> Result<Option<TrieAccount>> {
        match self.history(ACCOUNT_HISTORY, address.as_slice())? {
            Some(old) if old.is_empty() => Ok(None),
            Some(old) => decode(ACCOUNT_HISTORY, &old).map(Some),
            None => self.store.trie_account(self.snapshot(), address),
        }
    }

    /// An account's nonce, balance and code hash.
    pub fn basic_account(&self, address: &Address) -> Result<Option<Account>> {
        Ok(self.account(address)?.map(|a| Account {
            nonce: a.nonce,
            balance: a.balance,
            code_hash: a.code_hash,
        }))
    }

    /// A storage slot (zero when unset).
    pub fn storage(&self, address: &Address, slot: &U256) -> Result<U256> {
        match self.history(STORAGE_HISTORY, &storage_key(address, slot))? {
            Some(old) => Ok(U256::from_be_slice(&old)),
            None => self.store.flat_storage(self.snapshot(), address, slot),
        }
    }

    /// Contract code by hash.
    pub fn code(&self, hash: &B256) -> Result<Option<Bytes>> {
        Ok(self
            .store
            .get_in(self.snapshot(), CODE, hash.as_slice())?
            .map(Bytes::from))
    }

    /// The canonical hash of block `number`.
    pub fn block_hash(&self, number: u64) -> Result<Option<B256>> {
        self.store.canonical_hash_in(self.snapshot(), number)
    }

    /// Merkle proofs for an account and some of its storage slots, as `eth_getProof` returns
    /// them: the account (if it exists), its proof, and each slot's value and proof. The trie
    /// is stored for the head only, so the view must be of the head it was taken at.
    pub fn proof(&self, address: &Address, slots: &[B256]) -> Result<AccountProof> {
        let snapshot = self.snapshot();
        let head = match self.head {
            Some(head) => head,
            None => self.store.head_in(None)?.ok_or(StorageError::Empty)?.0,
        };
        if let Some(at) = self.at.filter(|at| *at != head) {
            return Err(StorageError::ProofUnavailable {
                requested: at,
                head,
            });
        }
        let store = self.store;
        let mut trie = Trie::new(
            AccountTrieStore { store, snapshot },
            store.head_state_root_in(snapshot)?,
        );
        let hashed = keccak256(address);
        let account_proof = trie.proof(hashed.as_slice())?;
        let account = store.trie_account(snapshot, address)?;
        let storage_root = account.map_or(EMPTY_ROOT_HASH, |a| a.storage_root);
        let mut storage_trie = Trie::new(
            StorageTrieStore {
                store,
                snapshot,
                hashed_address: hashed,
            },
            storage_root,
        );
        let mut storage_proofs = Vec::with_capacity(slots.len());
        for slot in slots {
            let value = store.flat_storage(snapshot, address, &U256::from_be_bytes(slot.0))?;
            let proof = storage_trie.proof(keccak256(slot).as_slice())?;
            storage_proofs.push((*slot, value, proof));
        }
        Ok((account, account_proof, storage_proofs))
    }
}
