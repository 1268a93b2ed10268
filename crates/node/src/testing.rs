//! What the node's unit tests share.

use alloy_primitives::{Address, U256};

/// Funded development keys of `chainspecs/dev.json` (public, for tests only).
pub(crate) const DEV_KEY_0: &str =
    "8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63";
pub(crate) const DEV_KEY_1: &str =
    "c87509a1c067bbde78beb793e6fa76530b6382a4c0241e5e4a9ec0a0f44dc0d3";

/// The address of a hex secret key.
pub(crate) fn address_of(key: &str) -> Address {
    let key = secp256k1::SecretKey::from_slice(&hex::decode(key).unwrap_or_default())
        .unwrap_or_else(|_| unreachable!());
    let public = secp256k1::PublicKey::from_secret_key(secp256k1::SECP256K1, &key);
    let hash = alloy_primitives::keccak256(&public.serialize_uncompressed()[1..]);
    Address::from_slice(&hash[12..])
}

/// A legacy transfer of 1 wei signed by `key` (hex).
pub(crate) fn transfer(key: &str, chain_id: u64, nonce: u64) -> consort_primitives::TxEnvelope {
    let tx = alloy_consensus::TxLegacy {
        chain_id: Some(chain_id),
        nonce,
        gas_price: 2_000_000_000,
        gas_limit: 21_000,
        to: alloy_primitives::TxKind::Call(Address::repeat_byte(0x77)),
        value: U256::from(1),
        input: Default::default(),
    };
    consort_primitives::TxEnvelope::Legacy(signed(key, tx))
}

/// An EIP-1559 transfer of 1 wei signed by `key` (hex).
pub(crate) fn typed_transfer(
    key: &str,
    chain_id: u64,
    nonce: u64,
) -> consort_primitives::TxEnvelope {
    let tx = alloy_consensus::TxEip1559 {
        chain_id,
        nonce,
        max_fee_per_gas: 2_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        gas_limit: 21_000,
        to: alloy_primitives::TxKind::Call(Address::repeat_byte(0x77)),
        value: U256::from(1),
        ..Default::default()
    };
    consort_primitives::TxEnvelope::Eip1559(signed(key, tx))
}

fn signed<T: alloy_consensus::SignableTransaction<alloy_primitives::Signature>>(
    key: &str,
    tx: T,
) -> alloy_consensus::Signed<T> {
    let key = secp256k1::SecretKey::from_slice(&hex::decode(key).unwrap_or_default())
        .unwrap_or_else(|_| unreachable!());
    let hash = tx.signature_hash();
    let sig =
        secp256k1::SECP256K1.sign_ecdsa_recoverable(&secp256k1::Message::from_digest(hash.0), &key);
    let (rec, bytes) = sig.serialize_compact();
    let signature = alloy_primitives::Signature::new(
        U256::from_be_slice(&bytes[..32]),
        U256::from_be_slice(&bytes[32..]),
        i32::from(rec) == 1,
    );
    tx.into_signed(signature)
}
