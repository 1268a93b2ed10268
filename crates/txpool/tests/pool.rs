//! Transaction pool behaviour: validation errors, replacement, pending/queued, bounds, ordering
//! and re-validation on a new head.

use alloy_consensus::{SignableTransaction, TxEip1559, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, Signature, TxKind, B256, U256};
use consort_chainspec::Hardfork;
use consort_primitives::TxEnvelope;
use consort_txpool::{AccountState, HeadContext, PoolConfig, PoolError, TxPool};
use secp256k1::{Message, SecretKey, SECP256K1};
use std::cell::RefCell;
use std::collections::HashMap;

const CHAIN_ID: u64 = 1337;

fn head() -> HeadContext {
    HeadContext {
        chain_id: CHAIN_ID,
        fork: Hardfork::Cancun,
        base_fee: Some(7),
        block_gas_limit: 30_000_000,
    }
}

#[derive(Default)]
struct State(RefCell<HashMap<Address, (u64, U256)>>);

impl State {
    fn set(&self, a: Address, nonce: u64, balance: u128) {
        self.0.borrow_mut().insert(a, (nonce, U256::from(balance)));
    }
}

impl AccountState for State {
    fn nonce_and_balance(&self, address: &Address) -> Result<(u64, U256), String> {
        Ok(self
            .0
            .borrow()
            .get(address)
            .copied()
            .unwrap_or((0, U256::ZERO)))
    }
}

struct Key(SecretKey);

impl Key {
    fn new(seed: u8) -> Self {
        Key(SecretKey::from_slice(&[seed; 32]).unwrap())
    }

    fn address(&self) -> Address {
        let pk = self.0.public_key(SECP256K1).serialize_uncompressed();
        Address::from_raw_public_key(&pk[1..])
    }

    fn sign<T: SignableTransaction<Signature>>(&self, tx: T) -> TxEnvelope
    where
        alloy_consensus::Signed<T>: Into<TxEnvelope>,
    {
        let digest = tx.signature_hash();
        let msg = Message::from_digest(digest.0);
        let sig = SECP256K1.sign_ecdsa_recoverable(&msg, &self.0);
        let (rec, bytes) = sig.serialize_compact();
        let signature = Signature::new(
            U256::from_be_slice(&bytes[..32]),
            U256::from_be_slice(&bytes[32..]),
            i32::from(rec) == 1,
        );
        tx.into_signed(signature).into()
    }

    /// An EIP-1559 transfer with the given nonce, fee cap and tip.
    fn transfer(&self, nonce: u64, max_fee: u128, tip: u128) -> TxEnvelope {
        self.sign(TxEip1559 {
            chain_id: CHAIN_ID,
            nonce,
            gas_limit: 21_000,
            max_fee_per_gas: max_fee,
            max_priority_fee_per_gas: tip,
            to: TxKind::Call(Address::repeat_byte(0xee)),
            value: U256::from(1),
            access_list: Default::default(),
            input: Bytes::new(),
        })
    }
}

fn pool_with(config: PoolConfig) -> TxPool {
    TxPool::new(config, head())
}

fn pool() -> TxPool {
    pool_with(PoolConfig::default())
}

const RICH: u128 = 10u128.pow(24);

#[test]
fn rejections_carry_geth_messages_and_leave_the_pool_unchanged() {
    let alice = Key::new(1);
    let state = State::default();
    state.set(alice.address(), 5, RICH);
    let mut pool = pool();
    pool.add(alice.transfer(5, 2_000, 1_000), &state).unwrap();

    let wrong_chain = alice.sign(TxLegacy {
        chain_id: Some(1),
        nonce: 6,
        gas_price: 2_000,
        gas_limit: 21_000,
        to: TxKind::Call(Address::ZERO),
        value: U256::ZERO,
        input: Bytes::new(),
    });
    let low_gas = alice.sign(TxEip1559 {
        chain_id: CHAIN_ID,
        nonce: 6,
        gas_limit: 20_000,
        max_fee_per_gas: 2_000,
        max_priority_fee_per_gas: 1,
        to: TxKind::Call(Address::ZERO),
        value: U256::ZERO,
        access_list: Default::default(),
        input: Bytes::new(),
    });
    let huge_gas = alice.sign(TxEip1559 {
        chain_id: CHAIN_ID,
        nonce: 6,
        gas_limit: 30_000_001,
        max_fee_per_gas: 2_000,
        max_priority_fee_per_gas: 1,
        to: TxKind::Call(Address::ZERO),
        value: U256::ZERO,
        access_list: Default::default(),
        input: Bytes::new(),
    });
    let poor = Key::new(2);
    let cases: Vec<(&str, TxEnvelope, &str)> = vec![
        (
            "same transaction twice",
            alice.transfer(5, 2_000, 1_000),
            "already known",
        ),
        (
            "used nonce",
            alice.transfer(4, 2_000, 1_000),
            "nonce too low",
        ),
        (
            "same nonce, same price",
            alice.transfer(5, 2_100, 1_050),
            "replacement transaction underpriced",
        ),
        (
            "no balance",
            poor.transfer(0, 2_000, 1),
            "insufficient funds for gas * price + value",
        ),
        ("below intrinsic gas", low_gas, "intrinsic gas too low"),
        ("above block gas limit", huge_gas, "exceeds block gas limit"),
        ("other chain", wrong_chain, "invalid chain id"),
        (
            "below min gas price",
            alice.transfer(6, 999, 1),
            "transaction underpriced",
        ),
        (
            "nonce far ahead",
            alice.transfer(500, 2_000, 1),
            "nonce too far in future",
        ),
    ];
    for (what, tx, message) in cases {
        let err = pool.add(tx, &state).unwrap_err();
        assert!(
            err.to_string().starts_with(message),
            "{what}: got {err}, want {message}"
        );
        assert_eq!(pool.len(), 1, "{what}: pool changed");
    }
}

#[test]
fn garbage_bytes_and_bad_signatures_are_rejected() {
    let state = State::default();
    let mut pool = pool();
    assert!(matches!(
        pool.add_raw(&[0x02, 0xc0], &state),
        Err(PoolError::Decode(_))
    ));
    let alice = Key::new(1);
    let mut raw = alice.transfer(0, 2_000, 1).encoded_2718();
    let trailing = raw.len();
    raw.push(0);
    assert!(matches!(
        pool.add_raw(&raw, &state),
        Err(PoolError::Decode(_))
    ));
    raw.truncate(trailing);
    // Corrupt s to zero: no sender recovers.
    let tx = alice.transfer(0, 2_000, 1);
    let TxEnvelope::Eip1559(signed) = tx else {
        unreachable!()
    };
    let bad = Signature::new(signed.signature().r(), U256::ZERO, false);
    let bad = TxEnvelope::Eip1559(alloy_consensus::Signed::new_unchecked(
        signed.tx().clone(),
        bad,
        B256::repeat_byte(9),
    ));
    assert!(matches!(
        pool.add(bad, &state),
        Err(PoolError::InvalidSender(_))
    ));
    assert!(pool.is_empty());
}

#[test]
fn replacement_needs_a_ten_percent_bump_of_fee_cap_and_tip() {
    let alice = Key::new(1);
    let state = State::default();
    state.set(alice.address(), 0, RICH);
    let mut pool = pool();
    let first = pool.add(alice.transfer(0, 10_000, 1_000), &state).unwrap();
    assert_eq!(
        pool.add(alice.transfer(0, 11_000, 1_099), &state)
            .unwrap_err(),
        PoolError::ReplacementUnderpriced
    );
    let second = pool.add(alice.transfer(0, 11_000, 1_100), &state).unwrap();
    assert_eq!(pool.len(), 1);
    assert!(pool.get(&first.hash).is_none());
    assert!(pool.get(&second.hash).is_some());
}

#[test]
fn queued_transactions_become_pending_when_the_gap_fills() {
    let alice = Key::new(1);
    let state = State::default();
    state.set(alice.address(), 0, RICH);
    let mut pool = pool();
    pool.add(alice.transfer(2, 2_000, 1), &state).unwrap();
    pool.add(alice.transfer(1, 2_000, 1), &state).unwrap();
    assert_eq!(pool.status().pending, 0);
    assert_eq!(pool.status().queued, 2);
    assert!(pool.best_transactions().is_empty());
    pool.add(alice.transfer(0, 2_000, 1), &state).unwrap();
    assert_eq!(pool.status().pending, 3);
    assert_eq!(pool.pending_nonce(&alice.address()), Some(3));
    let nonces: Vec<u64> = pool.best_transactions().iter().map(|t| t.nonce()).collect();
    assert_eq!(nonces, vec![0, 1, 2]);
}

#[test]
fn thousands_of_consecutive_nonces_from_one_sender_are_accepted() {
    let alice = Key::new(1);
    let state = State::default();
    state.set(alice.address(), 0, RICH);
    let mut pool = pool();
    for nonce in 0..5_000 {
        pool.add(alice.transfer(nonce, 2_000, 1), &state)
            .unwrap_or_else(|e| panic!("nonce {nonce}: {e}"));
    }
    assert_eq!(pool.status().pending, 5_000);
    assert_eq!(pool.best_transactions().len(), 5_000);
}

#[test]
fn ordering_is_by_effective_tip_then_nonce_per_sender() {
    let (a, b) = (Key::new(1), Key::new(2));
    let state = State::default();
    state.set(a.address(), 0, RICH);
    state.set(b.address(), 0, RICH);
    let mut pool = pool();
    pool.add(a.transfer(0, 1_000_000, 5), &state).unwrap();
    pool.add(a.transfer(1, 1_000_000, 50), &state).unwrap();
    pool.add(b.transfer(0, 1_000_000, 10), &state).unwrap();
    // Below the minimum gas price of 1000 wei.
    pool.add(b.transfer(1, 12, 12), &state).unwrap_err();
    pool.add(b.transfer(1, 1_000, 1_000), &state).unwrap();
    let order: Vec<(Address, u64)> = pool
        .best_transactions()
        .iter()
        .map(|t| (t.sender, t.nonce()))
        .collect();
    assert_eq!(
        order,
        vec![
            (b.address(), 0),
            (b.address(), 1),
            (a.address(), 0),
            (a.address(), 1)
        ]
    );
}

#[test]
fn bounds_hold_under_a_flood() {
    let config = PoolConfig {
        max_transactions: 50,
        max_per_sender: 20,
        max_future_by_sender: 5,
        ..PoolConfig::default()
    };
    let state = State::default();
    let keys: Vec<Key> = (1..=10).map(Key::new).collect();
    for k in &keys {
        state.set(k.address(), 0, RICH);
    }
    let mut pool = pool_with(config);
    for k in &keys {
        for nonce in 0..30 {
            let _ = pool.add(k.transfer(nonce, 2_000, 1), &state);
            assert!(pool.len() <= 50);
        }
    }
    assert_eq!(pool.len(), 50);
    for k in &keys {
        assert!(pool.pending_nonce(&k.address()).unwrap_or(0) <= 20);
    }
    // Per sender.
    let mut small = pool_with(PoolConfig {
        max_per_sender: 3,
        ..PoolConfig::default()
    });
    for nonce in 0..3 {
        small
            .add(keys[0].transfer(nonce, 2_000, 1), &state)
            .unwrap();
    }
    assert_eq!(
        small
            .add(keys[0].transfer(3, 2_000, 1), &state)
            .unwrap_err(),
        PoolError::SenderLimit(3)
    );
}

#[test]
fn a_full_pool_evicts_the_cheapest_tail_for_a_better_transaction() {
    let config = PoolConfig {
        max_transactions: 2,
        ..PoolConfig::default()
    };
    let (a, b, c) = (Key::new(1), Key::new(2), Key::new(3));
    let state = State::default();
    for k in [&a, &b, &c] {
        state.set(k.address(), 0, RICH);
    }
    let mut pool = pool_with(config);
    let cheap = pool.add(a.transfer(0, 2_000, 10), &state).unwrap();
    pool.add(b.transfer(0, 2_000, 100), &state).unwrap();
    assert_eq!(
        pool.add(c.transfer(0, 2_000, 5), &state).unwrap_err(),
        PoolError::PoolFull
    );
    pool.add(c.transfer(0, 2_000, 50), &state).unwrap();
    assert_eq!(pool.len(), 2);
    assert!(pool.get(&cheap.hash).is_none());
}

#[test]
fn a_new_head_drops_included_and_unpayable_transactions() {
    let (a, b) = (Key::new(1), Key::new(2));
    let state = State::default();
    state.set(a.address(), 0, RICH);
    state.set(b.address(), 0, RICH);
    let mut pool = pool();
    for nonce in 0..4 {
        pool.add(a.transfer(nonce, 2_000, 1), &state).unwrap();
    }
    let bs = pool.add(b.transfer(0, 2_000, 1), &state).unwrap();
    // A block included a's nonces 0 and 1, and b spent its balance elsewhere.
    state.set(a.address(), 2, RICH);
    state.set(b.address(), 1, 0);
    pool.add(b.transfer(1, 2_000, 1), &state).unwrap();
    let (confirmed, invalidated) = pool.on_new_head(head(), &state);
    assert_eq!(confirmed.len(), 3, "a's 0 and 1, b's 0");
    assert!(confirmed.contains(&bs.hash));
    assert_eq!(invalidated.len(), 1, "b's 1 can no longer be paid for");
    assert_eq!(pool.status().pending, 2);
    assert_eq!(pool.pending_nonce(&a.address()), Some(4));
}

#[test]
fn a_sender_cannot_pool_more_than_its_balance_pays_for() {
    let alice = Key::new(1);
    let state = State::default();
    // Enough for two transfers at 21,000 × 2,000 wei plus 1 wei each, not three.
    state.set(alice.address(), 0, 2 * (21_000 * 2_000 + 1));
    let mut pool = pool();
    pool.add(alice.transfer(0, 2_000, 1), &state).unwrap();
    pool.add(alice.transfer(1, 2_000, 1), &state).unwrap();
    assert!(matches!(
        pool.add(alice.transfer(2, 2_000, 1), &state),
        Err(PoolError::InsufficientFunds { .. })
    ));
}

#[test]
fn a_zero_tip_is_not_bumped_by_repeating_it() {
    let alice = Key::new(1);
    let state = State::default();
    state.set(alice.address(), 0, RICH);
    let mut pool = pool();
    pool.add(alice.transfer(0, 10_000, 0), &state).unwrap();
    assert_eq!(
        pool.add(alice.transfer(0, 20_000, 0), &state).unwrap_err(),
        PoolError::ReplacementUnderpriced
    );
    pool.add(alice.transfer(0, 20_000, 1), &state).unwrap();
}

#[test]
fn the_pool_is_bounded_in_bytes() {
    let keys: Vec<Key> = (1..=5).map(Key::new).collect();
    let state = State::default();
    for k in &keys {
        state.set(k.address(), 0, RICH);
    }
    let one = keys[0].transfer(0, 2_000, 1).encode_2718_len();
    let mut pool = pool_with(PoolConfig {
        max_pool_bytes: 3 * one,
        ..PoolConfig::default()
    });
    for (i, k) in keys.iter().enumerate() {
        // Each newcomer pays more, so it evicts the cheapest once the byte budget is used.
        let _ = pool.add(k.transfer(0, 2_000, 1 + i as u128), &state);
        assert!(pool.bytes() <= 3 * one);
    }
    assert_eq!(pool.len(), 3);
}

/// A transfer from `key` carrying `data_len` zero bytes of call data, so it is larger than a
/// plain one.
fn padded_transfer(key: &Key, nonce: u64, max_fee: u128, tip: u128, data_len: usize) -> TxEnvelope {
    key.sign(TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: 100_000,
        max_fee_per_gas: max_fee,
        max_priority_fee_per_gas: tip,
        to: TxKind::Call(Address::repeat_byte(0xee)),
        value: U256::from(1),
        access_list: Default::default(),
        input: Bytes::from(vec![0u8; data_len]),
    })
}

#[test]
fn a_larger_replacement_keeps_the_pool_within_its_byte_bound() {
    let (a, b, c) = (Key::new(1), Key::new(2), Key::new(3));
    let state = State::default();
    for k in [&a, &b, &c] {
        state.set(k.address(), 0, RICH);
    }
    let first = [
        a.transfer(0, 2_000, 10),
        b.transfer(0, 2_000, 20),
        c.transfer(0, 2_000, 30),
    ];
    let one = first[0].encode_2718_len();
    // Exactly full with the three.
    let limit: usize = first.iter().map(|t| t.encode_2718_len()).sum();
    let full_pool = || {
        let mut pool = pool_with(PoolConfig {
            max_pool_bytes: limit,
            ..PoolConfig::default()
        });
        for tx in &first {
            pool.add(tx.clone(), &state).unwrap();
        }
        assert_eq!(pool.bytes(), limit);
        pool
    };
    // Half again a transfer's size: room for it means evicting someone else.
    let bigger = |tip| padded_transfer(&a, 0, 4_000, tip, one / 2);
    assert!(bigger(25).encode_2718_len() > one + one / 3);

    // Paying more than b, the replacement takes b's place (b's tip is the lowest of the
    // others); the pool stays within its bytes.
    let mut pool = full_pool();
    let replacement = pool.add(bigger(25), &state).unwrap();
    assert!(pool.bytes() <= limit, "{} bytes > {limit}", pool.bytes());
    assert!(pool.get(&replacement.hash).is_some());
    assert_eq!(pool.pending_nonce(&b.address()), None, "b was evicted");
    assert_eq!(pool.pending_nonce(&c.address()), Some(1));

    // Paying less than every transaction it would have to evict, the replacement is refused
    // and the pool is as it was: the original still pooled, nothing evicted.
    let mut pool = full_pool();
    let original = pool.get(first[0].tx_hash()).unwrap();
    assert_eq!(
        pool.add(bigger(11), &state).unwrap_err(),
        PoolError::PoolFull
    );
    assert_eq!((pool.len(), pool.bytes()), (3, limit));
    assert!(pool.get(&original.hash).is_some());
}

#[test]
fn one_sender_holds_at_most_its_share_of_the_pool_bytes() {
    let (a, b) = (Key::new(1), Key::new(2));
    let state = State::default();
    for k in [&a, &b] {
        state.set(k.address(), 0, RICH);
    }
    let big = |key: &Key, nonce| padded_transfer(key, nonce, 2_000, 1, 1_000);
    let size = big(&a, 0).encode_2718_len();
    let mut pool = pool_with(PoolConfig {
        max_bytes_per_sender: 3 * size,
        ..PoolConfig::default()
    });
    for nonce in 0..3 {
        pool.add(big(&a, nonce), &state).unwrap();
    }
    let before = pool.bytes();
    assert_eq!(
        pool.add(big(&a, 3), &state).unwrap_err(),
        PoolError::SenderBytesLimit(3 * size)
    );
    assert_eq!(pool.bytes(), before, "a refusal changes nothing");
    // A small transaction does not fit either once the budget is used; a replacement of the
    // same size does, and another sender is unaffected.
    assert_eq!(
        pool.add(a.transfer(3, 2_000, 1), &state).unwrap_err(),
        PoolError::SenderBytesLimit(3 * size)
    );
    pool.add(padded_transfer(&a, 2, 4_000, 2, 1_000), &state)
        .unwrap();
    for nonce in 0..3 {
        pool.add(big(&b, nonce), &state).unwrap();
    }
    // Once a's first transaction is mined, a has room again.
    state.set(a.address(), 1, RICH);
    pool.on_new_head(head(), &state);
    pool.add(big(&a, 3), &state).unwrap();
}
