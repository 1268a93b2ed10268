//! The QBFT block format as Besu writes it (`QbftExtraDataCodec`, `BftBlockHashing`).

mod extra_data;
mod hashing;

pub use extra_data::{CommitSeal, QbftExtraData, QbftExtraDataError, Vote};
pub use hashing::{
    bft_onchain_hash, commit_seal_digest, public_key_address, recover_commit_seal_signer,
    sign_commit_seal, QBFT_MIX_HASH,
};
