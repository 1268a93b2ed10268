//! The Byzantine validators: each wraps a real core (except the silent one) and mutates,
//! redirects or adds to what it sends, signing with its own key only.

use super::chain::{build_block, short, Flavour};
use super::scenario::ByzKind;
use super::world::{Payload, World};
use alloy_primitives::B256;
use consort_primitives::{commit_seal_digest, sign_commit_seal};
use consort_qbft::{
    quorum, with_round, Block, CommitPayload, PreparePayload, PreparedRound, QbftMessage,
    RoundChangePayload, MAX_ROUND,
};

/// Messages a Replayer keeps to re-send.
const SEEN_LIMIT: usize = 300;

impl World {
    /// A Byzantine node remembers what it needs from a message it received or sent.
    pub fn byz_observe(&mut self, i: usize, msg: &QbftMessage) {
        let head = self.nodes[i].head.number;
        let kind = self.nodes[i].byz;
        let mem = &mut self.nodes[i].memory;
        match kind {
            Some(ByzKind::Replayer) => {
                if mem.seen.len() == SEEN_LIMIT {
                    mem.seen.pop_front();
                }
                mem.seen.push_back(msg.clone());
            }
            Some(ByzKind::EquivocatingProposer) => {
                if let QbftMessage::RoundChange { round_change, .. } = msg {
                    let p = &round_change.payload;
                    if p.height > head {
                        mem.round_changes
                            .entry((p.height, p.round))
                            .or_default()
                            .entry(round_change.author)
                            .or_insert_with(|| msg.clone());
                    }
                }
                mem.round_changes.retain(|(h, _), _| *h > head);
            }
            Some(ByzKind::ConflictingRoundChanger) => {
                match msg {
                    QbftMessage::Proposal { proposal, .. } => {
                        let p = &proposal.payload;
                        if let Ok(digest) = commit_seal_digest(&p.block.header) {
                            mem.blocks
                                .insert((p.height, p.round, digest), p.block.clone());
                        }
                    }
                    QbftMessage::Prepare(p) => {
                        let k = (p.payload.height, p.payload.round, p.payload.digest);
                        mem.prepares
                            .entry(k)
                            .or_default()
                            .insert(p.author, msg.clone());
                    }
                    QbftMessage::RoundChange {
                        round_change,
                        prepared_block: Some(block),
                        prepares,
                    } => {
                        if let Some(meta) = round_change.payload.prepared {
                            let k = (round_change.payload.height, meta.round, meta.digest);
                            mem.blocks.insert(k, block.clone());
                            for p in prepares {
                                mem.prepares
                                    .entry(k)
                                    .or_default()
                                    .insert(p.author, QbftMessage::Prepare(p.clone()));
                            }
                        }
                    }
                    _ => {}
                }
                mem.blocks.retain(|(h, _, _), _| *h > head);
                mem.prepares.retain(|(h, _, _), _| *h > head);
            }
            _ => {}
        }
    }

    fn send_all(&mut self, i: usize, msg: &QbftMessage) {
        for j in 0..self.nodes.len() {
            if j != i {
                self.send(i, j, Payload::Qbft(Box::new(msg.clone())));
            }
        }
    }

    /// What a Byzantine node does with a broadcast of its core.
    pub fn byz_broadcast(&mut self, i: usize, msg: QbftMessage) -> Result<(), String> {
        self.byz_observe(i, &msg);
        match (self.nodes[i].byz, &msg) {
            (Some(ByzKind::SilentValidator), _) => Ok(()),
            (Some(ByzKind::EquivocatingProposer), QbftMessage::Proposal { .. }) => {
                self.equivocate(i, msg)
            }
            (Some(ByzKind::ConflictingRoundChanger), QbftMessage::RoundChange { .. }) => {
                let (height, _) = msg.height_and_round();
                self.conflicting_round_changes(i, height);
                Ok(())
            }
            (Some(ByzKind::ConflictingRoundChanger | ByzKind::Replayer), _)
                if !self.sc.byz_participates =>
            {
                Ok(())
            }
            // Its other votes reach a random part of the validators, so some of them may
            // decide while the others go on to round changes.
            (Some(ByzKind::EquivocatingProposer), _) => {
                for j in 0..self.nodes.len() {
                    if j != i && self.rng.chance(600) {
                        self.send(i, j, Payload::Qbft(Box::new(msg.clone())));
                    }
                }
                Ok(())
            }
            _ => {
                self.send_all(i, &msg);
                Ok(())
            }
        }
    }

    /// EquivocatingProposer: proposal A to some validators, a different valid proposal B to
    /// the others (for a round > 0, justified by another quorum of the round changes it holds,
    /// chosen so that a prepared block may be left out), and Prepare and Commit for B at once;
    /// its core goes on to vote for A.
    fn equivocate(&mut self, i: usize, msg: QbftMessage) -> Result<(), String> {
        let QbftMessage::Proposal {
            proposal,
            round_changes,
            prepares,
        } = &msg
        else {
            unreachable!()
        };
        let (h, r) = (proposal.payload.height, proposal.payload.round);
        let key = self.nodes[i].key;
        let me = self.nodes[i].addr;
        let digest_a =
            commit_seal_digest(&proposal.payload.block.header).map_err(|e| e.to_string())?;
        let q = quorum(self.sc.n);
        let mut rcs_b = round_changes.clone();
        let mut prepares_b = prepares.clone();
        let mut prepared_block: Option<Block> = None;
        if r > 0 {
            let mut held: Vec<QbftMessage> = self.nodes[i]
                .memory
                .round_changes
                .get(&(h, r))
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default();
            if held.len() >= q {
                self.rng.shuffle(&mut held);
                held.truncate(q);
                let best = held
                    .iter()
                    .filter_map(|m| match m {
                        QbftMessage::RoundChange {
                            round_change,
                            prepared_block: Some(b),
                            prepares,
                        } => round_change
                            .payload
                            .prepared
                            .map(|meta| (meta.round, b.clone(), prepares.clone())),
                        _ => None,
                    })
                    .max_by_key(|(round, ..)| *round);
                rcs_b = held
                    .iter()
                    .filter_map(|m| match m {
                        QbftMessage::RoundChange { round_change, .. } => Some(round_change.clone()),
                        _ => None,
                    })
                    .collect();
                match best {
                    Some((_, b, p)) => {
                        prepared_block = Some(b);
                        prepares_b = p;
                    }
                    None => prepares_b = Vec::new(),
                }
            } else if !prepares.is_empty() {
                prepared_block = Some(proposal.payload.block.clone());
            }
        }
        // Or claim, in a round change of its own, to have prepared a new block in the round
        // before: a certificate no prepares prove, which must get B refused.
        let forge = r > 0
            && self
                .rng
                .chance(if prepared_block.is_some() { 700 } else { 200 });
        if forge {
            prepared_block = None;
        }
        let block_b = match prepared_block {
            Some(b) => with_round(&b, r).map_err(|e| e.to_string())?.0,
            None => {
                let flavour = Flavour {
                    tx_nonce: self.rng.range(1, 1 << 40),
                    skew_secs: self.rng.range(0, 2),
                    invalid: false,
                };
                let head = self.nodes[i].head.clone();
                build_block(&head, r, me, self.local_now(i), 1, flavour)
            }
        };
        let digest_b = commit_seal_digest(&block_b.header).map_err(|e| e.to_string())?;
        if forge {
            let claimed = with_round(&block_b, r - 1).map_err(|e| e.to_string())?.1;
            let fake = QbftMessage::round_change(
                RoundChangePayload {
                    height: h,
                    round: r,
                    prepared: Some(PreparedRound {
                        round: r - 1,
                        digest: claimed,
                    }),
                },
                None,
                Vec::new(),
                &key,
                me,
            );
            if let QbftMessage::RoundChange { round_change, .. } = fake {
                rcs_b.retain(|rc| rc.author != me);
                rcs_b.push(round_change);
            }
            prepares_b = Vec::new();
        }
        if digest_b == digest_a {
            self.send_all(i, &msg);
            return Ok(());
        }
        let mut others: Vec<usize> = (0..self.nodes.len()).filter(|j| *j != i).collect();
        self.rng.shuffle(&mut others);
        let split = self.rng.range(1, others.len() as u64 - 1) as usize;
        let (group_a, group_b) = others.split_at(split);
        let (group_a, group_b) = (group_a.to_vec(), group_b.to_vec());
        self.trace(|| {
            format!(
                "n{i} EQUIVOCATES h{h} r{r}: {} to {group_a:?}, {} to {group_b:?}",
                short(digest_a),
                short(digest_b)
            )
        });
        self.cov.equivocations += 1;
        if r > 0 {
            self.cov.equivocations_in_later_rounds += 1;
        }
        let proposal_b = QbftMessage::proposal(h, r, block_b, rcs_b, prepares_b, &key, me);
        let prepare_b = QbftMessage::prepare(
            PreparePayload {
                height: h,
                round: r,
                digest: digest_b,
            },
            &key,
            me,
        );
        let commit_b = QbftMessage::commit(
            CommitPayload {
                height: h,
                round: r,
                digest: digest_b,
                seal: sign_commit_seal(digest_b, &key),
            },
            &key,
            me,
        );
        for &j in &group_a {
            self.send(i, j, Payload::Qbft(Box::new(msg.clone())));
        }
        let votes_to_all = self.rng.chance(500);
        for &j in &group_b {
            self.send(i, j, Payload::Qbft(Box::new(proposal_b.clone())));
        }
        for j in 0..self.nodes.len() {
            if j != i && (votes_to_all || group_b.contains(&j)) {
                self.send(i, j, Payload::Qbft(Box::new(prepare_b.clone())));
                self.send(i, j, Payload::Qbft(Box::new(commit_b.clone())));
            }
        }
        Ok(())
    }

    /// A round change for `height` with a random target round and a valid, bogus or no
    /// prepared certificate.
    fn conflicting_round_change(&mut self, i: usize, height: u64) -> QbftMessage {
        // The rounds the others are about to enter, or any round up to the last.
        let current = self.nodes[i]
            .core
            .as_ref()
            .filter(|c| c.height() == Some(height))
            .and_then(|c| c.round())
            .unwrap_or(0) as u64;
        let target = match self.rng.below(7) {
            0 | 1 => current + self.rng.range(1, 2),
            2 => self.rng.range(1, 4),
            3 => self.rng.range(1, 50),
            4 => self.rng.range(1, MAX_ROUND as u64),
            5 => MAX_ROUND as u64,
            _ => MAX_ROUND as u64 - self.rng.below(8),
        }
        .min(MAX_ROUND as u64) as u32;
        let key = self.nodes[i].key;
        let me = self.nodes[i].addr;
        let q = quorum(self.sc.n);
        let mut prepared = None;
        let mut block = None;
        let mut prepares = Vec::new();
        match self.rng.below(3) {
            // A real prepared certificate it saw, possibly an old one.
            1 => {
                let mem = &self.nodes[i].memory;
                let certs: Vec<(u32, B256)> = mem
                    .prepares
                    .iter()
                    .filter(|((h, r, d), by)| {
                        *h == height
                            && *r < target
                            && by.len() >= q
                            && mem.blocks.contains_key(&(*h, *r, *d))
                    })
                    .map(|((_, r, d), _)| (*r, *d))
                    .collect();
                if !certs.is_empty() {
                    let (round, digest) = *self.rng.pick(&certs);
                    let mem = &self.nodes[i].memory;
                    prepared = Some(PreparedRound { round, digest });
                    block = mem.blocks.get(&(height, round, digest)).cloned();
                    prepares = mem.prepares[&(height, round, digest)]
                        .values()
                        .filter_map(|m| match m {
                            QbftMessage::Prepare(p) => Some(p.clone()),
                            _ => None,
                        })
                        .collect();
                }
            }
            // A claimed certificate without the prepares to prove it.
            2 => {
                let head = self.nodes[i].head.clone();
                // Mostly the highest round it could claim, to outrank real certificates.
                let round = if self.rng.chance(500) {
                    target - 1
                } else {
                    self.rng.below(target as u64) as u32
                };
                let b = build_block(
                    &head,
                    round,
                    me,
                    self.now,
                    1,
                    Flavour {
                        tx_nonce: self.rng.range(1, 1 << 40),
                        skew_secs: 0,
                        invalid: false,
                    },
                );
                let digest = commit_seal_digest(&b.header).unwrap_or_default();
                prepared = Some(PreparedRound { round, digest });
                if let QbftMessage::Prepare(p) = QbftMessage::prepare(
                    PreparePayload {
                        height,
                        round,
                        digest,
                    },
                    &key,
                    me,
                ) {
                    prepares.push(p);
                }
                block = Some(b);
            }
            _ => {}
        }
        QbftMessage::round_change(
            RoundChangePayload {
                height,
                round: target,
                prepared,
            },
            block,
            prepares,
            &key,
            me,
        )
    }

    /// ConflictingRoundChanger: two different round changes, each peer gets one of them.
    fn conflicting_round_changes(&mut self, i: usize, height: u64) {
        self.cov.flood_messages += 2;
        let a = self.conflicting_round_change(i, height);
        let b = self.conflicting_round_change(i, height);
        for j in 0..self.nodes.len() {
            if j != i {
                let m = if self.rng.chance(500) { &a } else { &b };
                self.send(i, j, Payload::Qbft(Box::new(m.clone())));
            }
        }
    }

    /// The periodic extra sends of replaying and flooding validators.
    pub fn byz_tick(&mut self, i: usize) -> Result<(), String> {
        if !self.nodes[i].up {
            return Ok(());
        }
        let n = self.nodes.len();
        match self.nodes[i].byz {
            Some(ByzKind::Replayer) => {
                let seen = self.nodes[i].memory.seen.len();
                if seen == 0 {
                    return Ok(());
                }
                for _ in 0..self.rng.range(1, 4) {
                    self.cov.replays += 1;
                    let k = self.rng.index(seen);
                    let msg = self.nodes[i].memory.seen[k].clone();
                    if self.rng.chance(200) {
                        self.send_all(i, &msg);
                    } else {
                        let j = (i + 1 + self.rng.index(n - 1)) % n;
                        self.send(i, j, Payload::Qbft(Box::new(msg)));
                    }
                }
            }
            Some(ByzKind::ConflictingRoundChanger) => {
                let current = self.nodes[i].head.number + 1;
                let height = match self.rng.below(10) {
                    0 | 1 => current + self.rng.range(1, 12),
                    2 => current - 1,
                    _ => current,
                };
                self.conflicting_round_changes(i, height);
                // Votes for rounds nobody reached, with digests of no block, for this height
                // and the next few: `flood_burst` of them to everyone.
                for _ in 0..self.sc.flood_burst {
                    let h = if self.rng.chance(700) {
                        height
                    } else {
                        current + self.rng.range(1, 3)
                    };
                    let vote = self.junk_vote(i, h);
                    self.cov.flood_messages += 1;
                    self.send_all(i, &vote);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A signed Prepare or Commit for `height` in a random round (mostly far ahead) with the
    /// digest of no block, from a pool per height so floods do not cost a signature each.
    fn junk_vote(&mut self, i: usize, height: u64) -> QbftMessage {
        const POOL: usize = 64;
        let head = self.nodes[i].head.number;
        let pool_len = self.nodes[i].memory.junk.get(&height).map_or(0, Vec::len);
        if pool_len == POOL {
            let k = self.rng.index(POOL);
            return self.nodes[i].memory.junk[&height][k].clone();
        }
        let key = self.nodes[i].key;
        let me = self.nodes[i].addr;
        let round = if self.rng.chance(200) {
            self.rng.range(0, 3)
        } else {
            self.rng.range(1, MAX_ROUND as u64)
        } as u32;
        let digest = B256::from(alloy_primitives::U256::from(self.rng.next_u64()));
        let vote = if self.rng.chance(500) {
            QbftMessage::prepare(
                PreparePayload {
                    height,
                    round,
                    digest,
                },
                &key,
                me,
            )
        } else {
            QbftMessage::commit(
                CommitPayload {
                    height,
                    round,
                    digest,
                    seal: sign_commit_seal(digest, &key),
                },
                &key,
                me,
            )
        };
        let junk = &mut self.nodes[i].memory.junk;
        junk.retain(|h, _| *h > head);
        junk.entry(height).or_default().push(vote.clone());
        vote
    }
}
