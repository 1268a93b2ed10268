//! A state view and a proof read one block's state, even while later blocks commit and the
//! history they would need is pruned: every read goes through one RocksDB snapshot.

mod common;

use alloy_primitives::{keccak256, Address, B256, U256};
use common::*;
use consort_storage::{Account, AccountChange, StateChanges, StateReader, Store, StoreOptions};
use consort_trie::verify_proof;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Accounts every block rewrites.
const ACCOUNTS: u64 = 200;
/// Storage slots of each account every block rewrites.
const SLOTS: u64 = 4;

/// Block `n` sets every account's balance and nonce, and each of its slots, to `n`.
fn everything_is(n: u64) -> StateChanges {
    let mut changes = StateChanges::default();
    for i in 0..ACCOUNTS {
        changes.accounts.insert(
            account(i),
            AccountChange {
                account: Some(Account {
                    nonce: n,
                    ..Account::with_balance(U256::from(n))
                }),
                wipe_storage: false,
                storage: (0..SLOTS).map(|s| (U256::from(s), U256::from(n))).collect(),
            },
        );
    }
    changes
}

fn store(window: Option<u64>) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        StoreOptions {
            history_window: window,
            ..Default::default()
        },
    )
    .unwrap();
    (dir, store)
}

/// Reads accounts `range` through `view` and returns the block numbers their values name.
fn read_accounts(view: &consort_storage::StateView<'_>, range: std::ops::Range<u64>) -> Vec<u64> {
    let mut seen = Vec::new();
    for i in range {
        let a = view.basic_account(&account(i)).unwrap().unwrap();
        seen.push(a.balance.to::<u64>());
        seen.push(a.nonce);
        for s in 0..SLOTS {
            seen.push(
                view.storage(&account(i), &U256::from(s))
                    .unwrap()
                    .to::<u64>(),
            );
        }
    }
    seen
}

/// The blocks other than `block` whose values are in `seen`.
fn others(seen: &[u64], block: u64) -> BTreeSet<u64> {
    seen.iter().copied().filter(|n| *n != block).collect()
}

#[test]
fn a_view_reads_its_block_after_later_blocks_commit_and_prune_its_history() {
    // A window of one block: two commits later, the history a history-based read of block 1
    // would need is gone.
    let (_dir, store) = store(Some(1));
    commit_next(&store, &everything_is(0));
    commit_next(&store, &everything_is(1));
    let view = store.state_at(1).unwrap();
    let mut seen = read_accounts(&view, 0..ACCOUNTS / 2);
    std::thread::scope(|s| {
        s.spawn(|| {
            for n in 2..5 {
                commit_next(&store, &everything_is(n));
            }
        });
    });
    assert_eq!(store.head().unwrap().unwrap().0, 4);
    seen.extend(read_accounts(&view, ACCOUNTS / 2..ACCOUNTS));
    assert_eq!(
        others(&seen, 1),
        BTreeSet::new(),
        "a view of block 1 read these blocks"
    );
    // A view taken now reads the new head.
    let now = store.state_at(4).unwrap();
    assert_eq!(
        others(&read_accounts(&now, 0..ACCOUNTS), 4),
        BTreeSet::new()
    );
}

/// Commits blocks 1 to `BLOCKS` on another thread while `read` runs again and again on this
/// one; returns how many times it ran.
fn while_blocks_commit(store: &Store, mut read: impl FnMut()) -> u32 {
    const BLOCKS: u64 = 40;
    let done = AtomicBool::new(false);
    let mut rounds = 0;
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for n in 1..=BLOCKS {
                commit_next(store, &everything_is(n));
            }
            done.store(true, Ordering::SeqCst);
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
            read();
            rounds += 1;
        }
        writer.join().unwrap();
    });
    assert_eq!(store.head().unwrap().unwrap().0, BLOCKS);
    rounds
}

#[test]
fn a_view_reads_one_block_while_blocks_commit_concurrently() {
    let (_dir, store) = store(Some(512));
    commit_next(&store, &everything_is(0));
    let rounds = while_blocks_commit(&store, || {
        // A view at the head: its many reads all answer for that block.
        let head = store.head().unwrap().unwrap().0;
        let view = store.state_at(head).unwrap();
        let seen = read_accounts(&view, 0..ACCOUNTS);
        assert_eq!(
            others(&seen, head),
            BTreeSet::new(),
            "a view of block {head} read these blocks"
        );
    });
    assert!(rounds > 1, "{rounds} rounds");
}

#[test]
fn a_head_account_read_answers_for_a_committed_head_while_blocks_commit() {
    let (_dir, store) = store(Some(512));
    commit_next(&store, &everything_is(0));
    let rounds = while_blocks_commit(&store, || {
        // Read without a snapshot: the answer is the account of a head committed between the
        // two head reads around it, all of it from that block.
        for i in (0..ACCOUNTS).step_by(10) {
            let before = store.head().unwrap().unwrap().0;
            let a = store.head_account(&account(i)).unwrap().unwrap();
            let after = store.head().unwrap().unwrap().0;
            let block = a.nonce;
            assert_eq!(a.balance, U256::from(block), "account {i}");
            assert!(
                (before..=after).contains(&block),
                "account {i} of block {block} read between heads {before} and {after}"
            );
        }
    });
    assert!(rounds > 1, "{rounds} rounds");
    assert_eq!(
        store.head_account(&Address::repeat_byte(0xee)).unwrap(),
        None
    );
}

#[test]
fn a_proof_reads_one_block_while_blocks_commit_concurrently() {
    let (_dir, store) = store(Some(512));
    commit_next(&store, &everything_is(0));
    let slots: Vec<B256> = (0..SLOTS).map(|s| B256::from(U256::from(s))).collect();
    let rounds = while_blocks_commit(&store, || {
        // Account, slots and both proofs belong to the state root of one block.
        for i in (0..ACCOUNTS).step_by(20) {
            let address = account(i);
            let (acct, proof, storage) = store.proof(&address, &slots).unwrap();
            let acct = acct.unwrap();
            let block = acct.balance.to::<u64>();
            check_proof(&store, block, &address, &acct, &proof);
            for (slot, value, proof) in storage {
                assert_eq!(
                    value,
                    U256::from(block),
                    "slot {slot} of a block-{block} account"
                );
                let proven = verify_proof(acct.storage_root, keccak256(slot).as_slice(), &proof)
                    .unwrap_or_else(|e| panic!("storage proof at block {block}: {e}"));
                // Zero slots are absent from the trie.
                assert_eq!(
                    proven
                        .map(|v| alloy_rlp::decode_exact::<U256>(&v).unwrap())
                        .unwrap_or_default(),
                    value
                );
            }
        }
    });
    assert!(rounds > 1, "{rounds} rounds");
}

/// The account proof verifies against the state root of the block the account's values name.
fn check_proof(
    store: &Store,
    block: u64,
    address: &Address,
    acct: &consort_primitives::TrieAccount,
    proof: &[alloy_primitives::Bytes],
) {
    assert_eq!(acct.nonce, block);
    let root = store.header_by_number(block).unwrap().unwrap().state_root;
    let proven = verify_proof(root, keccak256(address).as_slice(), proof)
        .unwrap_or_else(|e| panic!("account proof against block {block}'s root: {e}"));
    assert_eq!(
        proven,
        Some(alloy_rlp::encode(acct).into()),
        "block {block}"
    );
}
