//! Shared types of consort: Ethereum primitives re-exported from alloy, and the QBFT block
//! format (extraData codec, on-chain and commit-seal hashes, seal recovery) that every other crate
//! agrees on.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod qbft;
mod signer;

pub use alloy_consensus::{Header, TxEnvelope, EMPTY_OMMER_ROOT_HASH};
pub use alloy_primitives::{
    address, b256, bytes, hex, keccak256, Address, Bloom, Bytes, Log, TxKind, B256, B64, U256,
};
pub use alloy_trie::{TrieAccount, EMPTY_ROOT_HASH, KECCAK_EMPTY};
pub use qbft::{
    bft_onchain_hash, commit_seal_digest, public_key_address, recover_commit_seal_signer,
    sign_commit_seal, CommitSeal, QbftExtraData, QbftExtraDataError, Vote, QBFT_MIX_HASH,
};
pub use signer::{recover_address, recover_address_unchecked_s, recover_signer, SignerError};

/// The root of an empty requests list (EIP-7685): `sha256("")`.
pub const EMPTY_REQUESTS_HASH: B256 =
    b256!("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
