//! Transaction sender recovery with libsecp256k1.

use crate::public_key_address;
use alloy_consensus::TxEnvelope;
use alloy_primitives::{Address, Signature, B256, U256};
use secp256k1::{
    ecdsa::{RecoverableSignature, RecoveryId},
    Message, SECP256K1,
};

/// Half the secp256k1 group order: EIP-2 rejects signatures with a larger `s`.
const SECP256K1N_HALF: U256 = U256::from_be_slice(&[
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
]);

/// Why a signature yields no sender.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignerError {
    /// `s` is above half the curve order (EIP-2).
    #[error("invalid sender: signature s value is too high")]
    HighS,
    /// `r` or `s` is zero or out of range, or recovery failed.
    #[error("invalid sender: signature does not recover a public key")]
    Unrecoverable,
}

/// Recovers the address that signed `digest`, enforcing EIP-2's low-`s` rule.
pub fn recover_address(digest: B256, signature: &Signature) -> Result<Address, SignerError> {
    if signature.s() > SECP256K1N_HALF {
        return Err(SignerError::HighS);
    }
    recover_address_unchecked_s(digest, signature)
}

/// Recovers the signer without EIP-2's low-`s` rule (Frontier transactions).
pub fn recover_address_unchecked_s(
    digest: B256,
    signature: &Signature,
) -> Result<Address, SignerError> {
    let mut compact = [0u8; 64];
    for (dst, src) in compact.iter_mut().zip(
        signature
            .r()
            .to_be_bytes::<32>()
            .into_iter()
            .chain(signature.s().to_be_bytes::<32>()),
    ) {
        *dst = src;
    }
    let rec_id =
        RecoveryId::try_from(i32::from(signature.v())).map_err(|_| SignerError::Unrecoverable)?;
    let sig = RecoverableSignature::from_compact(&compact, rec_id)
        .map_err(|_| SignerError::Unrecoverable)?;
    let key = SECP256K1
        .recover_ecdsa(&Message::from_digest(digest.0), &sig)
        .map_err(|_| SignerError::Unrecoverable)?;
    Ok(public_key_address(&key))
}

/// The sender of a signed transaction.
pub fn recover_signer(tx: &TxEnvelope) -> Result<Address, SignerError> {
    recover_address(tx.signature_hash(), tx.signature())
}
