//! Helpers shared by the storage tests: deterministic blocks with state changes.
#![allow(dead_code)]

use alloy_consensus::{Receipt, ReceiptEnvelope, Signed, TxLegacy};
use alloy_primitives::{Address, Bloom, Signature, TxKind, B256, U256};
use consort_primitives::{Header, TxEnvelope};
use consort_storage::{Account, AccountChange, StateChanges, Store};

pub fn account(i: u64) -> Address {
    Address::left_padding_from(&(i + 1).to_be_bytes())
}

/// The state changes of block `n`: account `n % 50` gets balance `n`, storage slot `n % 7`
/// becomes `n`, and every 10th block deletes account `(n / 10) % 50`'s slot 0.
pub fn changes_for(n: u64) -> StateChanges {
    let mut changes = StateChanges::default();
    let mut storage = std::collections::BTreeMap::new();
    storage.insert(U256::from(n % 7), U256::from(n));
    changes.accounts.insert(
        account(n % 50),
        AccountChange {
            account: Some(Account {
                nonce: n,
                ..Account::with_balance(U256::from(n))
            }),
            wipe_storage: false,
            storage,
        },
    );
    changes
}

pub fn transaction(n: u64) -> TxEnvelope {
    let tx = TxLegacy {
        nonce: n,
        gas_price: 1,
        gas_limit: 21_000,
        to: TxKind::Call(account(n)),
        ..Default::default()
    };
    let sig = Signature::new(U256::from(n + 1), U256::from(n + 2), false);
    TxEnvelope::Legacy(Signed::new_unhashed(tx, sig))
}

pub fn receipt(n: u64) -> ReceiptEnvelope {
    ReceiptEnvelope::Legacy(
        Receipt {
            status: true.into(),
            cumulative_gas_used: 21_000 + n,
            logs: vec![],
        }
        .with_bloom(),
    )
}

/// Commits the next block with `changes`, one transaction and its receipt; returns its hash.
pub fn commit_next(store: &Store, changes: &StateChanges) -> B256 {
    commit_next_with_bloom(store, changes, Bloom::ZERO)
}

/// [`commit_next`] with `logs_bloom` in the header.
pub fn commit_next_with_bloom(store: &Store, changes: &StateChanges, logs_bloom: Bloom) -> B256 {
    let (number, parent_hash) = match store.head().unwrap() {
        Some((n, h)) => (n + 1, h),
        None => (0, B256::ZERO),
    };
    let prepared = store.prepare_state(changes).unwrap();
    let header = Header {
        number,
        parent_hash,
        state_root: prepared.state_root,
        timestamp: number,
        logs_bloom,
        ..Default::default()
    };
    let hash = header.hash_slow();
    store
        .commit_block(
            &header,
            hash,
            &[transaction(number)],
            &[receipt(number)],
            prepared,
        )
        .unwrap();
    hash
}
