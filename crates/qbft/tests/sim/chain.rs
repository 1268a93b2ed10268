//! What the simulated host knows about blocks: genesis, building QBFT blocks on a head, the
//! marker of blocks its checks reject, and the checks a sealed block must pass on import.

use alloy_primitives::{Address, Bytes, B256, U256};
use consort_primitives::{
    bft_onchain_hash, commit_seal_digest, recover_commit_seal_signer, CommitSeal, Header,
    QbftExtraData, TxEnvelope, QBFT_MIX_HASH,
};
use consort_qbft::{quorum, Block, Head};
use std::collections::HashMap;

/// Unix seconds of the genesis block.
pub const GENESIS_SECS: u64 = 1_700_000_000;
pub const GAS_LIMIT: u64 = 30_000_000;
/// A gas limit the simulated host treats as "does not execute": proposals carrying it fail
/// [`consort_qbft::Input::ProposalChecked`], and no sealed block may carry it.
pub const INVALID_GAS_LIMIT: u64 = 4_321;

pub fn genesis(validators: &[Address]) -> Block {
    let header = Header {
        number: 0,
        timestamp: GENESIS_SECS,
        extra_data: QbftExtraData::genesis(validators.to_vec()).encode(),
        mix_hash: QBFT_MIX_HASH,
        difficulty: U256::from(1),
        gas_limit: GAS_LIMIT,
        ..Header::default()
    };
    Block {
        header,
        body: Default::default(),
    }
}

/// The head the core decides the next height on.
pub fn head_of(block: &Block, validators: &[Address]) -> Head {
    Head {
        number: block.header.number,
        hash: onchain_hash(block),
        timestamp: block.header.timestamp,
        coinbase: block.header.beneficiary,
        validators: validators.to_vec(),
    }
}

pub fn onchain_hash(block: &Block) -> B256 {
    bft_onchain_hash(&block.header).expect("QBFT extraData")
}

/// What makes two blocks for one height and round differ.
#[derive(Debug, Clone, Copy)]
pub struct Flavour {
    /// 0: no transactions; otherwise one stand-in transaction with this nonce.
    pub tx_nonce: u64,
    /// Extra seconds on the timestamp.
    pub skew_secs: u64,
    /// Mark the block as one the host's checks reject.
    pub invalid: bool,
}

/// The block a proposer builds on `parent` for `round` at `now_ms` (Besu: timestamp is the
/// rounded wall clock, at least one block period after the parent).
pub fn build_block(
    parent: &Head,
    round: u32,
    proposer: Address,
    now_ms: u64,
    period_secs: u64,
    flavour: Flavour,
) -> Block {
    let extra = QbftExtraData {
        vanity: Bytes::from(vec![0u8; 32]),
        validators: parent.validators.clone(),
        vote: None,
        round,
        seals: vec![],
    };
    let timestamp = (parent.timestamp + period_secs).max(now_ms.div_ceil(1000)) + flavour.skew_secs;
    let header = Header {
        parent_hash: parent.hash,
        number: parent.number + 1,
        beneficiary: proposer,
        timestamp,
        extra_data: extra.encode(),
        mix_hash: QBFT_MIX_HASH,
        difficulty: U256::from(1),
        gas_limit: if flavour.invalid {
            INVALID_GAS_LIMIT
        } else {
            GAS_LIMIT
        },
        ..Header::default()
    };
    let mut block = Block {
        header,
        body: Default::default(),
    };
    if flavour.tx_nonce > 0 {
        let tx = alloy_consensus::SignableTransaction::into_signed(
            alloy_consensus::TxLegacy {
                nonce: flavour.tx_nonce,
                ..Default::default()
            },
            alloy_primitives::Signature::test_signature(),
        );
        block.body.transactions.push(TxEnvelope::Legacy(tx));
    }
    block.header.transactions_root =
        alloy_consensus::proofs::calculate_transaction_root(&block.body.transactions);
    block
}

pub fn is_marked_invalid(block: &Block) -> bool {
    block.header.gas_limit == INVALID_GAS_LIMIT
}

/// Recovered seal signers, shared by all nodes of a run (seals are deterministic signatures,
/// so every node holds the same bytes for one signer and digest).
#[derive(Debug, Default)]
pub struct SealCache {
    signers: HashMap<(B256, CommitSeal), Option<Address>>,
}

impl SealCache {
    pub fn signer(&mut self, digest: B256, seal: &CommitSeal) -> Option<Address> {
        *self
            .signers
            .entry((digest, *seal))
            .or_insert_with(|| recover_commit_seal_signer(digest, seal))
    }
}

/// The checks a host runs before importing a sealed block on `head`: it is the head's child,
/// it executes, its extraData names the validators, and it carries seals over its commit-seal
/// digest from at least a quorum of distinct validators.
pub fn check_sealed(
    block: &Block,
    head: &Head,
    validators: &[Address],
    cache: &mut SealCache,
) -> Result<(), String> {
    if block.header.number != head.number + 1 || block.header.parent_hash != head.hash {
        return Err(format!(
            "block {} (parent {}) is not a child of head {} ({})",
            block.header.number,
            short(block.header.parent_hash),
            head.number,
            short(head.hash)
        ));
    }
    if is_marked_invalid(block) {
        return Err(format!(
            "block {} is marked invalid (gas limit {})",
            block.header.number, INVALID_GAS_LIMIT
        ));
    }
    let extra = QbftExtraData::decode(&block.header.extra_data).map_err(|e| e.to_string())?;
    if extra.validators != validators {
        return Err("extraData validators differ from the validator set".into());
    }
    let digest = commit_seal_digest(&block.header).map_err(|e| e.to_string())?;
    let mut signers = Vec::new();
    for seal in &extra.seals {
        let signer = cache
            .signer(digest, seal)
            .ok_or_else(|| "a seal does not recover".to_string())?;
        if validators.binary_search(&signer).is_err() {
            return Err(format!("seal by non-validator {signer}"));
        }
        if signers.contains(&signer) {
            return Err(format!("two seals by {signer}"));
        }
        signers.push(signer);
    }
    if signers.len() < quorum(validators.len()) {
        return Err(format!(
            "{} seals, quorum is {}",
            signers.len(),
            quorum(validators.len())
        ));
    }
    Ok(())
}

/// First bytes of a hash, for traces.
pub fn short(hash: B256) -> String {
    format!("{:02x}{:02x}{:02x}", hash[0], hash[1], hash[2])
}
