use super::extra_data::{CommitSeal, QbftExtraData, QbftExtraDataError};
use alloy_consensus::Header;
use alloy_primitives::{b256, keccak256, Address, B256};
use secp256k1::{
    ecdsa::{RecoverableSignature, RecoveryId},
    Message, PublicKey, SecretKey, SECP256K1,
};

/// The constant `mixHash` of every QBFT block: ASCII "ctical byzantine fault tolerance".
pub const QBFT_MIX_HASH: B256 =
    b256!("63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365");

fn hash_with_extra(header: &Header, extra: alloy_primitives::Bytes) -> B256 {
    let mut copy = header.clone();
    copy.extra_data = extra;
    copy.hash_slow()
}

/// The block hash Besu stores and serves for a QBFT block: the header hashed with round 0 and
/// no committed seals, so the hash does not depend on the round or the seal order. Genesis is
/// hashed as it is.
pub fn bft_onchain_hash(header: &Header) -> Result<B256, QbftExtraDataError> {
    if header.number == 0 {
        return Ok(header.hash_slow());
    }
    let extra = QbftExtraData::decode(&header.extra_data)?;
    Ok(hash_with_extra(header, extra.encode_for_onchain_hash()))
}

/// The digest every committed seal signs: the header with its round kept and no seals. It is also
/// the digest that Prepare and Commit messages carry.
pub fn commit_seal_digest(header: &Header) -> Result<B256, QbftExtraDataError> {
    let extra = QbftExtraData::decode(&header.extra_data)?;
    Ok(hash_with_extra(header, extra.encode_for_commit_seal()))
}

/// Signs a commit-seal digest with a validator key.
pub fn sign_commit_seal(digest: B256, key: &SecretKey) -> CommitSeal {
    let sig = SECP256K1.sign_ecdsa_recoverable(&Message::from_digest(digest.0), key);
    let (rec_id, compact) = sig.serialize_compact();
    let rec = i32::from(rec_id) as u8;
    let mut out = [0u8; 65];
    for (slot, byte) in out
        .iter_mut()
        .zip(compact.iter().chain(std::iter::once(&rec)))
    {
        *slot = *byte;
    }
    CommitSeal::from(out)
}

/// Recovers the validator address that produced a seal over `digest`, or `None` if the seal is
/// not a valid signature.
pub fn recover_commit_seal_signer(digest: B256, seal: &CommitSeal) -> Option<Address> {
    let (compact, rec) = seal.0.split_at(64);
    let rec_id = RecoveryId::try_from(i32::from(*rec.first()?)).ok()?;
    let sig = RecoverableSignature::from_compact(compact, rec_id).ok()?;
    let key = SECP256K1
        .recover_ecdsa(&Message::from_digest(digest.0), &sig)
        .ok()?;
    Some(public_key_address(&key))
}

/// The Ethereum address of a secp256k1 public key.
pub fn public_key_address(key: &PublicKey) -> Address {
    let uncompressed = key.serialize_uncompressed();
    let digest = keccak256(uncompressed.get(1..).unwrap_or_default());
    Address::from_word(digest)
}
