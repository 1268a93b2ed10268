//! Storage behaviour: blocks, state, history window, proofs, persistence and bad input.

mod common;

use alloy_primitives::{keccak256, Address, Bloom, BloomInput, B256, U256};
use common::*;
use consort_primitives::TrieAccount;
use consort_storage::{Account, AccountChange, StateChanges, StorageError, Store, StoreOptions};
use consort_trie::verify_proof;

fn open(dir: &std::path::Path, window: Option<u64>) -> Store {
    Store::open(
        dir,
        StoreOptions {
            history_window: window,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn blocks_receipts_and_transactions_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Some(512));
    assert_eq!(store.head().unwrap(), None);
    let genesis = commit_next(&store, &changes_for(0));
    let one = commit_next(&store, &changes_for(1));
    assert_eq!(store.head().unwrap(), Some((1, one)));
    assert_eq!(store.canonical_hash(0).unwrap(), Some(genesis));
    assert_eq!(
        store.header_by_number(1).unwrap().unwrap().parent_hash,
        genesis
    );
    assert_eq!(store.block_number(&one).unwrap(), Some(1));
    assert_eq!(
        store.transactions(&one).unwrap().unwrap(),
        vec![transaction(1)]
    );
    assert_eq!(store.receipts(&one).unwrap().unwrap(), vec![receipt(1)]);
    assert_eq!(
        store.transaction_hashes(&one).unwrap().unwrap(),
        consort_storage::TxHashes::of(&[transaction(1)])
    );
    assert_eq!(
        store.transaction_hashes(&B256::repeat_byte(9)).unwrap(),
        None
    );
    let loc = store
        .transaction_location(transaction(1).tx_hash())
        .unwrap()
        .unwrap();
    assert_eq!((loc.block_hash, loc.block_number, loc.index), (one, 1, 0));
    assert_eq!(
        store.transaction_location(&B256::repeat_byte(9)).unwrap(),
        None
    );
}

#[test]
fn blocks_are_found_by_their_logs_bloom_with_or_without_the_bloom_index() {
    let dir = tempfile::tempdir().unwrap();
    let emitter = Address::repeat_byte(0xee);
    let mut hashes = Vec::new();
    {
        let store = open(dir.path(), Some(512));
        for n in 0..=20u64 {
            let mut bloom = Bloom::ZERO;
            if n > 0 && n % 5 == 0 {
                bloom.accrue(BloomInput::Raw(emitter.as_slice()));
            }
            hashes.push(commit_next_with_bloom(&store, &changes_for(n), bloom));
        }
    }
    let expect = |numbers: &[u64]| -> Vec<(u64, B256)> {
        numbers.iter().map(|&n| (n, hashes[n as usize])).collect()
    };
    let check = |store: &Store| {
        let emitted = |b: &Bloom| b.contains_input(BloomInput::Raw(emitter.as_slice()));
        assert_eq!(
            store.blocks_by_bloom(1, 20, &emitted).unwrap(),
            expect(&[5, 10, 15, 20])
        );
        assert_eq!(
            store.blocks_by_bloom(3, 12, &emitted).unwrap(),
            expect(&[5, 10])
        );
        // Past the head the scan stops; an empty range finds nothing.
        assert_eq!(
            store.blocks_by_bloom(15, 1_000, &emitted).unwrap(),
            expect(&[15, 20])
        );
        assert_eq!(store.blocks_by_bloom(9, 8, &emitted).unwrap(), vec![]);
        assert_eq!(
            store.blocks_by_bloom(0, 3, &|_| true).unwrap(),
            expect(&[0, 1, 2, 3])
        );
        assert_eq!(
            store.blocks_by_bloom(18, 1_000, &|_| true).unwrap(),
            expect(&[18, 19, 20])
        );
    };
    check(&open(dir.path(), Some(512)));

    // A store written before the index (no entries for blocks 0-12, nor, as if written by
    // versions in turn, 16-18) reads those blooms from the headers and the rest from the index.
    {
        let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.path()).unwrap();
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), dir.path(), names).unwrap();
        let blooms = db.cf_handle("log_blooms").unwrap();
        db.delete_range_cf(blooms, 0u64.to_be_bytes(), 13u64.to_be_bytes())
            .unwrap();
        db.delete_range_cf(blooms, 16u64.to_be_bytes(), 19u64.to_be_bytes())
            .unwrap();
        assert!(db.get_cf(blooms, 12u64.to_be_bytes()).unwrap().is_none());
        assert!(db.get_cf(blooms, 13u64.to_be_bytes()).unwrap().is_some());
    }
    check(&open(dir.path(), Some(512)));
}

#[test]
fn a_block_that_does_not_extend_the_head_is_rejected_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Some(512));
    commit_next(&store, &changes_for(0));
    let prepared = store.prepare_state(&changes_for(5)).unwrap();
    let header = consort_primitives::Header {
        number: 5,
        state_root: prepared.state_root,
        ..Default::default()
    };
    let err = store
        .commit_block(&header, header.hash_slow(), &[], &[], prepared)
        .unwrap_err();
    assert!(
        matches!(err, StorageError::NotOnHead { number: 5, .. }),
        "{err}"
    );
    assert_eq!(store.head().unwrap().unwrap().0, 0);

    // State prepared before another block landed is refused.
    let stale = store.prepare_state(&changes_for(1)).unwrap();
    let one = commit_next(&store, &changes_for(1));
    let header = consort_primitives::Header {
        number: 2,
        parent_hash: one,
        state_root: stale.state_root,
        ..Default::default()
    };
    let err = store
        .commit_block(&header, header.hash_slow(), &[], &[], stale)
        .unwrap_err();
    assert!(
        matches!(err, StorageError::StalePreparedState { .. }),
        "{err}"
    );
}

#[test]
fn historical_state_is_readable_inside_the_window_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Some(3));
    for n in 0..=10 {
        commit_next(&store, &changes_for(n));
    }
    // Block 9 wrote account 9 (balance 9, slot 2 = 9); block 10 does not touch it.
    let a9 = account(9);
    for at in 7..=10u64 {
        let view = store.state_at(at).unwrap();
        let expected = if at >= 9 { Some(U256::from(9)) } else { None };
        assert_eq!(
            view.basic_account(&a9).unwrap().map(|a| a.balance),
            expected,
            "balance at {at}"
        );
        let slot = if at >= 9 { U256::from(9) } else { U256::ZERO };
        assert_eq!(
            view.storage(&a9, &U256::from(2)).unwrap(),
            slot,
            "slot at {at}"
        );
    }
    let err = store.state_at(6).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::StateUnavailable {
                requested: 6,
                oldest: 7,
                head: 10
            }
        ),
        "{err}"
    );
    assert!(matches!(
        store.state_at(11).unwrap_err(),
        StorageError::StateUnavailable { .. }
    ));
}

#[test]
fn archive_mode_keeps_all_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), None);
    for n in 0..=20 {
        commit_next(&store, &changes_for(n));
    }
    assert_eq!(
        store
            .state_at(1)
            .unwrap()
            .basic_account(&account(1))
            .unwrap()
            .unwrap()
            .balance,
        U256::from(1)
    );
    assert_eq!(
        store
            .state_at(0)
            .unwrap()
            .basic_account(&account(1))
            .unwrap(),
        None
    );
}

#[test]
fn wiping_and_deleting_accounts_clears_storage_and_history_remembers_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Some(16));
    let a = account(100);
    let mut genesis = StateChanges::default();
    genesis.accounts.insert(
        a,
        AccountChange {
            account: Some(Account::with_balance(U256::from(5))),
            wipe_storage: false,
            storage: [
                (U256::from(1), U256::from(11)),
                (U256::from(2), U256::from(22)),
            ]
            .into_iter()
            .collect(),
        },
    );
    commit_next(&store, &genesis);
    // Block 1: storage wiped and one slot written again (a self-destruct and re-creation).
    let mut wipe = StateChanges::default();
    wipe.accounts.insert(
        a,
        AccountChange {
            account: Some(Account::with_balance(U256::from(6))),
            wipe_storage: true,
            storage: [(U256::from(2), U256::from(33))].into_iter().collect(),
        },
    );
    commit_next(&store, &wipe);
    let now = store.state_at(1).unwrap();
    assert_eq!(now.storage(&a, &U256::from(1)).unwrap(), U256::ZERO);
    assert_eq!(now.storage(&a, &U256::from(2)).unwrap(), U256::from(33));
    let before = store.state_at(0).unwrap();
    assert_eq!(before.storage(&a, &U256::from(1)).unwrap(), U256::from(11));
    assert_eq!(before.storage(&a, &U256::from(2)).unwrap(), U256::from(22));

    // The storage root equals a fresh trie with only the surviving slot.
    let mut expected = consort_trie::Trie::new(
        consort_trie::MemoryNodeStore::default(),
        consort_trie::empty_root(),
    );
    expected
        .insert(
            keccak256(U256::from(2).to_be_bytes::<32>()).as_slice(),
            alloy_rlp::encode(U256::from(33)),
        )
        .unwrap();
    assert_eq!(
        now.account(&a).unwrap().unwrap().storage_root,
        expected.root_hash()
    );

    // Block 2: the account is deleted.
    let mut delete = StateChanges::default();
    delete.accounts.insert(
        a,
        AccountChange {
            account: None,
            wipe_storage: true,
            storage: Default::default(),
        },
    );
    commit_next(&store, &delete);
    let gone = store.state_at(2).unwrap();
    assert_eq!(gone.account(&a).unwrap(), None);
    assert_eq!(gone.storage(&a, &U256::from(2)).unwrap(), U256::ZERO);
    assert_eq!(store.head_state_root().unwrap(), consort_trie::empty_root());
}

#[test]
fn proofs_verify_against_the_head_state_root() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Some(512));
    for n in 0..60 {
        commit_next(&store, &changes_for(n));
    }
    let root = store.head_state_root().unwrap();
    for i in [0u64, 7, 49, 1000] {
        let address = account(i);
        let slots = [B256::from(U256::from(3).to_be_bytes::<32>()), B256::ZERO];
        let (acct, proof, storage) = store.proof(&address, &slots).unwrap();
        let proven = verify_proof(root, keccak256(address).as_slice(), &proof).unwrap();
        assert_eq!(
            proven,
            acct.map(|a: TrieAccount| alloy_rlp::encode(a).into()),
            "account {i}"
        );
        for (slot, value, proof) in storage {
            let storage_root = acct.map_or(consort_trie::empty_root(), |a| a.storage_root);
            let proven = verify_proof(storage_root, keccak256(slot).as_slice(), &proof).unwrap();
            assert_eq!(
                proven
                    .map(|v| alloy_rlp::decode_exact::<U256>(&v).unwrap())
                    .unwrap_or_default(),
                value
            );
        }
    }
}

#[test]
fn state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let root = {
        let store = open(dir.path(), Some(512));
        for n in 0..5 {
            commit_next(&store, &changes_for(n));
        }
        store.head_state_root().unwrap()
    };
    let store = open(dir.path(), Some(512));
    store.verify_head_state().unwrap();
    assert_eq!(store.head_state_root().unwrap(), root);
    assert_eq!(store.head().unwrap().unwrap().0, 4);
    commit_next(&store, &changes_for(5));
}

#[test]
fn incremental_state_root_matches_a_full_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), Some(0));
    let mut all = std::collections::BTreeMap::new();
    for n in 0..40 {
        let changes = changes_for(n);
        for (a, c) in &changes.accounts {
            let entry = all
                .entry(*a)
                .or_insert_with(|| (Account::default(), std::collections::BTreeMap::new()));
            entry.0 = c.account.unwrap();
            for (k, v) in &c.storage {
                entry.1.insert(*k, *v);
            }
        }
        commit_next(&store, &changes);
    }
    // Build the same state from scratch in one block on a fresh store.
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = open(fresh_dir.path(), Some(0));
    let mut changes = StateChanges::default();
    for (a, (acct, storage)) in all {
        changes.accounts.insert(
            a,
            AccountChange {
                account: Some(acct),
                wipe_storage: false,
                storage,
            },
        );
    }
    assert_eq!(
        fresh.prepare_state(&changes).unwrap().state_root,
        store.head_state_root().unwrap()
    );
}
