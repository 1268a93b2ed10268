//! Hand-driven validators for the focused tests: fixed keys, blocks, signed messages and
//! helpers to read a core's outputs.

use super::chain::{build_block, genesis, head_of, Flavour};
use alloy_primitives::{Address, B256};
use consort_primitives::{commit_seal_digest, public_key_address, sign_commit_seal};
use consort_qbft::{
    proposer, Block, CommitPayload, Head, Input, Output, Persisted, PreparePayload, PreparedRound,
    Qbft, QbftConfig, QbftMessage, QbftTimings, RoundChangePayload, Signed,
};
use secp256k1::{SecretKey, SECP256K1};

pub const TIMINGS: QbftTimings = QbftTimings {
    block_period_ms: 1_000,
    empty_block_period_ms: 0,
    request_timeout_ms: 4_000,
};

pub const CONFIG: QbftConfig = QbftConfig {
    early_round_change: true,
    round_timeout_max_ms: 30_000,
};

/// `n` validators, indexed in address order, on their genesis block.
#[derive(Debug)]
pub struct Net {
    pub keys: Vec<SecretKey>,
    pub addrs: Vec<Address>,
    pub head: Head,
}

impl Net {
    pub fn new(n: usize) -> Net {
        let mut keys: Vec<SecretKey> = (1..=n as u8)
            .map(|i| SecretKey::from_slice(&[i; 32]).unwrap())
            .collect();
        keys.sort_by_key(|k| public_key_address(&k.public_key(SECP256K1)));
        let addrs: Vec<Address> = keys
            .iter()
            .map(|k| public_key_address(&k.public_key(SECP256K1)))
            .collect();
        let genesis = genesis(&addrs);
        let head = head_of(&genesis, &addrs);
        Net { keys, addrs, head }
    }

    /// Index of the proposer of `round` at the height after `head`.
    pub fn proposer(&self, head: &Head, round: u32) -> usize {
        let p = proposer(head.coinbase, &self.addrs, round).unwrap();
        self.addrs.iter().position(|a| *a == p).unwrap()
    }

    pub fn core(&self, i: usize) -> Qbft {
        Qbft::with_config(self.keys[i], CONFIG)
    }

    /// A block by validator `i` on `head` for `round`; `nonce` makes blocks differ.
    pub fn block(&self, head: &Head, round: u32, i: usize, nonce: u64) -> Block {
        build_block(
            head,
            round,
            self.addrs[i],
            head.timestamp * 1000 + 1000,
            1,
            Flavour {
                tx_nonce: nonce,
                skew_secs: 0,
                invalid: false,
            },
        )
    }

    pub fn prepare(&self, i: usize, height: u64, round: u32, digest: B256) -> QbftMessage {
        QbftMessage::prepare(
            PreparePayload {
                height,
                round,
                digest,
            },
            &self.keys[i],
            self.addrs[i],
        )
    }

    pub fn signed_prepare(
        &self,
        i: usize,
        height: u64,
        round: u32,
        digest: B256,
    ) -> Signed<PreparePayload> {
        match self.prepare(i, height, round, digest) {
            QbftMessage::Prepare(p) => p,
            _ => unreachable!(),
        }
    }

    pub fn commit(&self, i: usize, height: u64, round: u32, digest: B256) -> QbftMessage {
        QbftMessage::commit(
            CommitPayload {
                height,
                round,
                digest,
                seal: sign_commit_seal(digest, &self.keys[i]),
            },
            &self.keys[i],
            self.addrs[i],
        )
    }

    /// A round change by `i`, with `prepared` = (its block, the prepares for it) if any.
    pub fn round_change(
        &self,
        i: usize,
        height: u64,
        round: u32,
        prepared: Option<(&Block, Vec<Signed<PreparePayload>>)>,
    ) -> QbftMessage {
        let meta = prepared.as_ref().map(|(b, p)| PreparedRound {
            round: p.first().map_or(0, |p| p.payload.round),
            digest: commit_seal_digest(&b.header).unwrap(),
        });
        QbftMessage::round_change(
            RoundChangePayload {
                height,
                round,
                prepared: meta,
            },
            prepared.as_ref().map(|(b, _)| (*b).clone()),
            prepared.map(|(_, p)| p).unwrap_or_default(),
            &self.keys[i],
            self.addrs[i],
        )
    }

    /// A proposal by `i` justified by `round_changes` (signed payloads taken from round change
    /// messages) and `prepares`.
    pub fn proposal(
        &self,
        i: usize,
        height: u64,
        round: u32,
        block: Block,
        round_changes: &[QbftMessage],
        prepares: Vec<Signed<PreparePayload>>,
    ) -> QbftMessage {
        let rcs = round_changes
            .iter()
            .map(|m| match m {
                QbftMessage::RoundChange { round_change, .. } => round_change.clone(),
                _ => unreachable!(),
            })
            .collect();
        QbftMessage::proposal(
            height,
            round,
            block,
            rcs,
            prepares,
            &self.keys[i],
            self.addrs[i],
        )
    }
}

pub fn digest(block: &Block) -> B256 {
    commit_seal_digest(&block.header).unwrap()
}

pub fn msg(m: QbftMessage) -> Input {
    Input::Message(Box::new(m))
}

pub fn new_head(head: &Head) -> Input {
    Input::NewHead {
        head: head.clone(),
        timings: TIMINGS,
    }
}

pub fn block_timer(head: &Head) -> Input {
    Input::BlockTimer {
        height: head.number + 1,
        now_ms: head.timestamp * 1000 + 1000,
        pending_transactions: true,
    }
}

pub fn broadcasts(out: &[Output]) -> Vec<QbftMessage> {
    out.iter()
        .filter_map(|o| match o {
            Output::Broadcast(m) => Some((**m).clone()),
            _ => None,
        })
        .collect()
}

pub fn prepares_sent(out: &[Output]) -> Vec<(u32, B256)> {
    broadcasts(out)
        .into_iter()
        .filter_map(|m| match m {
            QbftMessage::Prepare(p) => Some((p.payload.round, p.payload.digest)),
            _ => None,
        })
        .collect()
}

pub fn last_persist(out: &[Output]) -> Option<Persisted> {
    out.iter().rev().find_map(|o| match o {
        Output::Persist(p) => Some((**p).clone()),
        _ => None,
    })
}

/// Answers every `CheckProposal` in `out` as valid and returns the outputs of doing so.
pub fn approve(core: &mut Qbft, out: &[Output]) -> Vec<Output> {
    let mut all = Vec::new();
    for o in out {
        if let Output::CheckProposal {
            height,
            round,
            digest,
            ..
        } = o
        {
            all.extend(core.handle(Input::ProposalChecked {
                height: *height,
                round: *round,
                digest: *digest,
                valid: true,
            }));
        }
    }
    all
}
