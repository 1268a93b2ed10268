//! The height and round state machine. Each branch names the rule of the QBFT spec (Dafny
//! `node.dfy`) it implements.

use crate::block::{proposer, quorum, seal_block, with_round, Block};
use crate::messages::{
    CommitPayload, PreparePayload, PreparedRound, QbftMessage, RoundChangePayload, Signed,
    MAX_ROUND,
};
use alloy_primitives::{Address, B256};
use consort_primitives::{
    commit_seal_digest, public_key_address, recover_commit_seal_signer, sign_commit_seal,
    CommitSeal,
};
use secp256k1::{SecretKey, SECP256K1};
use std::collections::BTreeMap;

/// Timing parameters in force for a height (from the genesis `config.qbft` and transitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QbftTimings {
    /// `blockperiodseconds` in milliseconds.
    pub block_period_ms: u64,
    /// `emptyblockperiodseconds` in milliseconds (0: empty blocks at the block period).
    pub empty_block_period_ms: u64,
    /// `requesttimeoutseconds` in milliseconds: the round-0 timeout, doubled each round.
    pub request_timeout_ms: u64,
}

/// The round timeout stops doubling after this many rounds (Besu's grows without bound).
const MAX_TIMEOUT_DOUBLINGS: u32 = 6;
/// Most buffered messages for future heights.
const FUTURE_MESSAGES_LIMIT: usize = 1_000;
/// How many heights ahead a message may be buffered.
const FUTURE_HEIGHT_DISTANCE: u64 = 10;
/// Most buffered messages for rounds without an accepted proposal, per height.
const EARLY_MESSAGES_LIMIT: usize = 1_000;

/// The chain head a height is decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Block number of the head.
    pub number: u64,
    /// Its (on-chain) hash.
    pub hash: B256,
    /// Its timestamp in seconds.
    pub timestamp: u64,
    /// Its proposer.
    pub coinbase: Address,
    /// The validators for the next height, sorted ascending.
    pub validators: Vec<Address>,
}

/// What the host tells the core.
#[derive(Debug, Clone)]
pub enum Input {
    /// A block was imported and is the new head; `timings` apply to the next height.
    NewHead {
        /// The new head.
        head: Head,
        /// Timings for the height after it.
        timings: QbftTimings,
    },
    /// The block timer armed by [`Output::ArmBlockTimer`] fired.
    BlockTimer {
        /// The height it was armed for.
        height: u64,
        /// Wall-clock time now, in Unix milliseconds.
        now_ms: u64,
    },
    /// A round timer armed by [`Output::ArmRoundTimer`] fired.
    RoundTimer {
        /// The height it was armed for.
        height: u64,
        /// The round it was armed for.
        round: u32,
        /// The arming it belongs to.
        seq: u64,
    },
    /// A message from the network (or one of ours, looped back: it is ignored).
    Message(Box<QbftMessage>),
    /// The block the core asked for with [`Output::BuildBlock`].
    BlockBuilt {
        /// Height it was asked for.
        height: u64,
        /// Round it was asked for.
        round: u32,
        /// The block (extraData with this round, no seals).
        block: Box<Block>,
        /// Wall-clock time now, in Unix milliseconds.
        now_ms: u64,
    },
    /// The verdict on a proposal the core asked to check with [`Output::CheckProposal`].
    ProposalChecked {
        /// Height of the proposal.
        height: u64,
        /// Round of the proposal.
        round: u32,
        /// Its digest.
        digest: B256,
        /// Whether it executes and validates.
        valid: bool,
    },
}

/// What the core asks the host to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Deliver [`Input::BlockTimer`] at `at_ms` (Unix milliseconds), at once if that has passed.
    ArmBlockTimer {
        /// Height the timer is for.
        height: u64,
        /// When to fire.
        at_ms: u64,
    },
    /// Deliver [`Input::RoundTimer`] after `after_ms`.
    ArmRoundTimer {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// Identifies this arming; older ones are stale.
        seq: u64,
        /// Delay in milliseconds.
        after_ms: u64,
    },
    /// Build a block on `parent` for `round`, answer with [`Input::BlockBuilt`].
    BuildBlock {
        /// Height of the block.
        height: u64,
        /// Round to write in its extraData.
        round: u32,
        /// Hash of the parent.
        parent: B256,
    },
    /// Validate and execute a proposed block, answer with [`Input::ProposalChecked`].
    CheckProposal {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// The block's digest.
        digest: B256,
        /// The block.
        block: Box<Block>,
    },
    /// Send to every validator.
    Broadcast(Box<QbftMessage>),
    /// The height is decided: import this sealed block.
    Import(Box<Block>),
}

/// A block prepared in some round, with the prepares that prove it.
#[derive(Debug, Clone)]
struct PreparedCertificate {
    round: u32,
    digest: B256,
    block: Block,
    prepares: Vec<Signed<PreparePayload>>,
}

#[derive(Debug, Default)]
struct RoundState {
    round: u32,
    /// The accepted proposal and its digest.
    proposal: Option<(Block, B256)>,
    /// A proposal waiting for the host's verdict.
    checking: Option<(Block, B256)>,
    /// The round change certificate and prepares that justified the proposal we sent.
    prepares: BTreeMap<Address, Signed<PreparePayload>>,
    /// Commit seals in arrival order.
    commits: Vec<(Address, CommitSeal)>,
    /// Our seal over the accepted proposal.
    own_seal: Option<CommitSeal>,
    sent_commit: bool,
    /// Whether we asked the host for a block for this round.
    building: bool,
}

/// The valid round changes for one target round, by author, with their prepared certificates.
type RoundChanges = BTreeMap<Address, (Signed<RoundChangePayload>, Option<PreparedCertificate>)>;

#[derive(Debug)]
struct HeightState {
    height: u64,
    parent: Head,
    timings: QbftTimings,
    round: Option<RoundState>,
    round_seq: u64,
    /// Valid round changes by target round, one per author (the first wins).
    round_changes: BTreeMap<u32, RoundChanges>,
    /// Rounds whose round-change quorum we already acted on.
    round_change_done: BTreeMap<u32, ()>,
    /// Our latest prepared certificate at this height.
    prepared: Option<PreparedCertificate>,
    /// Prepares and commits for rounds whose proposal has not been accepted yet.
    early: Vec<QbftMessage>,
    decided: bool,
}

impl HeightState {
    fn quorum(&self) -> usize {
        quorum(self.parent.validators.len())
    }

    fn is_validator(&self, a: &Address) -> bool {
        self.parent.validators.binary_search(a).is_ok()
    }

    fn proposer(&self, round: u32) -> Option<Address> {
        proposer(self.parent.coinbase, &self.parent.validators, round)
    }

    fn current_round(&self) -> Option<u32> {
        self.round.as_ref().map(|r| r.round)
    }
}

/// The QBFT core for one validator key.
#[derive(Debug)]
pub struct Qbft {
    key: SecretKey,
    me: Address,
    state: Option<HeightState>,
    future: BTreeMap<u64, Vec<QbftMessage>>,
    future_len: usize,
}

impl Qbft {
    /// A core that signs with `key`. It does nothing until the first [`Input::NewHead`].
    pub fn new(key: SecretKey) -> Self {
        let me = public_key_address(&key.public_key(SECP256K1));
        Qbft {
            key,
            me,
            state: None,
            future: BTreeMap::new(),
            future_len: 0,
        }
    }

    /// This validator's address.
    pub fn address(&self) -> Address {
        self.me
    }

    /// The height being decided, if any.
    pub fn height(&self) -> Option<u64> {
        self.state.as_ref().map(|s| s.height)
    }

    /// The current round, if one has started.
    pub fn round(&self) -> Option<u32> {
        self.state.as_ref().and_then(HeightState::current_round)
    }

    /// Feeds one input, returns what the host must do, in order.
    pub fn handle(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::NewHead { head, timings } => self.upon_new_block(head, timings, &mut out),
            Input::BlockTimer { height, now_ms } => {
                self.upon_block_timeout(height, now_ms, &mut out)
            }
            Input::RoundTimer { height, round, seq } => {
                self.upon_round_timeout(height, round, seq, &mut out)
            }
            Input::Message(msg) => self.upon_message(*msg, &mut out),
            Input::BlockBuilt {
                height,
                round,
                block,
                now_ms,
            } => self.upon_block_built(height, round, *block, now_ms, &mut out),
            Input::ProposalChecked {
                height,
                round,
                digest,
                valid,
            } => self.upon_proposal_checked(height, round, digest, valid, &mut out),
        }
        out
    }

    // UponNewBlock: a new head starts the next height and arms its block timer.
    fn upon_new_block(&mut self, head: Head, timings: QbftTimings, out: &mut Vec<Output>) {
        let height = head.number.saturating_add(1);
        if self.state.as_ref().is_some_and(|s| s.height > height) {
            return;
        }
        // The same head again keeps the round state (and any prepared certificate), unless the
        // height was decided and its import failed: then the height starts over.
        if self
            .state
            .as_ref()
            .is_some_and(|s| s.height == height && s.parent.hash == head.hash && !s.decided)
        {
            return;
        }
        let at_ms = head
            .timestamp
            .saturating_mul(1000)
            .saturating_add(timings.block_period_ms);
        self.state = Some(HeightState {
            height,
            parent: head,
            timings,
            round: None,
            round_seq: 0,
            round_changes: BTreeMap::new(),
            round_change_done: BTreeMap::new(),
            prepared: None,
            early: Vec::new(),
            decided: false,
        });
        out.push(Output::ArmBlockTimer { height, at_ms });
        // Replay what arrived early for this height; drop what is now in the past.
        let replay = self.future.remove(&height).unwrap_or_default();
        self.future.retain(|h, _| *h > height);
        self.future_len = self.future.values().map(Vec::len).sum();
        for msg in replay {
            self.upon_message(msg, out);
        }
    }

    // UponBlockTimeout: round 0 starts; its proposer builds a block.
    fn upon_block_timeout(&mut self, height: u64, _now_ms: u64, out: &mut Vec<Output>) {
        let me = self.me;
        let Some(s) = self.state.as_mut() else { return };
        if s.height != height || s.round.is_some() || s.decided || !s.is_validator(&me) {
            return;
        }
        start_round(s, 0, out);
        if s.proposer(0) == Some(me) {
            request_block(s, 0, out);
        }
    }

    fn upon_block_built(
        &mut self,
        height: u64,
        round: u32,
        block: Block,
        now_ms: u64,
        out: &mut Vec<Output>,
    ) {
        let Some(s) = self.state.as_mut() else { return };
        let Some(rs) = s.round.as_mut() else { return };
        if s.height != height || rs.round != round || !rs.building || rs.proposal.is_some() {
            return;
        }
        rs.building = false;
        // emptyblockperiodseconds: an empty round-0 block waits until the empty period passes,
        // polling at the block period in case transactions arrive.
        let empty_due = s
            .parent
            .timestamp
            .saturating_mul(1000)
            .saturating_add(s.timings.empty_block_period_ms);
        if round == 0 && block.body.transactions.is_empty() && now_ms < empty_due {
            s.round = None;
            s.round_seq = s.round_seq.wrapping_add(1);
            let at_ms = empty_due.min(now_ms.saturating_add(s.timings.block_period_ms));
            out.push(Output::ArmBlockTimer { height, at_ms });
            return;
        }
        let Ok((block, digest)) = with_round(&block, round) else {
            return;
        };
        let (round_changes, prepares) = justification(s, round);
        out.push(Output::Broadcast(Box::new(QbftMessage::proposal(
            height,
            round,
            block.clone(),
            round_changes,
            prepares,
            &self.key,
            self.me,
        ))));
        self.accept_proposal(block, digest, out);
    }

    /// Accepts the current round's proposal: our prepare goes out, our seal is counted.
    fn accept_proposal(&mut self, block: Block, digest: B256, out: &mut Vec<Output>) {
        let (me, key) = (self.me, self.key);
        let Some(s) = self.state.as_mut() else { return };
        let height = s.height;
        let Some(rs) = s.round.as_mut() else { return };
        if rs.proposal.is_some() {
            return;
        }
        let round = rs.round;
        let seal = sign_commit_seal(digest, &key);
        rs.own_seal = Some(seal);
        rs.commits.retain(|(a, _)| *a != me);
        rs.commits.push((me, seal));
        rs.proposal = Some((block, digest));
        rs.checking = None;
        let prepare = QbftMessage::prepare(
            PreparePayload {
                height,
                round,
                digest,
            },
            &key,
            me,
        );
        if let QbftMessage::Prepare(signed) = &prepare {
            rs.prepares.insert(me, signed.clone());
        }
        out.push(Output::Broadcast(Box::new(prepare)));
        // Votes that arrived before the proposal count now.
        let early = std::mem::take(&mut s.early);
        for msg in early {
            self.upon_message(msg, out);
        }
        self.check_quorums(out);
    }

    // UponPrepare / UponCommit: quorum of prepares sends our commit; quorum of commits decides.
    fn check_quorums(&mut self, out: &mut Vec<Output>) {
        let (me, key) = (self.me, self.key);
        let Some(s) = self.state.as_mut() else { return };
        let quorum = s.quorum();
        let height = s.height;
        let Some(rs) = s.round.as_mut() else { return };
        let Some((block, digest)) = rs.proposal.clone() else {
            return;
        };
        if !rs.sent_commit && rs.prepares.len() >= quorum {
            rs.sent_commit = true;
            s.prepared = Some(PreparedCertificate {
                round: rs.round,
                digest,
                block: block.clone(),
                prepares: rs.prepares.values().cloned().collect(),
            });
            if let Some(seal) = rs.own_seal {
                out.push(Output::Broadcast(Box::new(QbftMessage::commit(
                    CommitPayload {
                        height,
                        round: rs.round,
                        digest,
                        seal,
                    },
                    &key,
                    me,
                ))));
            }
        }
        if !s.decided && rs.commits.len() >= quorum {
            let seals = rs.commits.iter().map(|(_, seal)| *seal).collect();
            if let Ok(sealed) = seal_block(&block, rs.round, seals) {
                s.decided = true;
                out.push(Output::Import(Box::new(sealed)));
            }
        }
    }

    fn upon_proposal_checked(
        &mut self,
        height: u64,
        round: u32,
        digest: B256,
        valid: bool,
        out: &mut Vec<Output>,
    ) {
        let Some(s) = self.state.as_mut() else { return };
        let Some(rs) = s.round.as_mut() else { return };
        if s.height != height || rs.round != round {
            return;
        }
        let Some((block, checking)) = rs.checking.take() else {
            return;
        };
        if checking != digest || !valid {
            return;
        }
        self.accept_proposal(block, digest, out);
    }

    // UponRoundTimeout: move to the next round and ask the others to follow.
    fn upon_round_timeout(&mut self, height: u64, round: u32, seq: u64, out: &mut Vec<Output>) {
        let (me, key) = (self.me, self.key);
        let Some(s) = self.state.as_mut() else { return };
        if s.height != height || s.round_seq != seq || s.current_round() != Some(round) || s.decided
        {
            return;
        }
        let Some(target) = round.checked_add(1).filter(|r| *r <= MAX_ROUND) else {
            return;
        };
        start_round(s, target, out);
        let prepared = s.prepared.clone();
        let msg = QbftMessage::round_change(
            RoundChangePayload {
                height,
                round: target,
                prepared: prepared.as_ref().map(|p| PreparedRound {
                    round: p.round,
                    digest: p.digest,
                }),
            },
            prepared.as_ref().map(|p| p.block.clone()),
            prepared.map(|p| p.prepares).unwrap_or_default(),
            &key,
            me,
        );
        out.push(Output::Broadcast(Box::new(msg.clone())));
        self.upon_message(msg, out);
    }

    fn upon_message(&mut self, msg: QbftMessage, out: &mut Vec<Output>) {
        let me = self.me;
        let (height, round) = msg.height_and_round();
        let Some(s) = self.state.as_mut() else {
            return self.buffer_future(height, msg);
        };
        if height < s.height {
            return;
        }
        if height > s.height {
            return self.buffer_future(height, msg);
        }
        if !s.is_validator(&me) || !s.is_validator(&msg.author()) || s.decided {
            return;
        }
        match msg {
            QbftMessage::Proposal { .. } => self.upon_proposal(msg, out),
            QbftMessage::Prepare(p) => {
                // Our own prepare is recorded when we send it.
                if p.author == me {
                    return;
                }
                let Some(rs) = s.round.as_mut().filter(|rs| rs.round == round) else {
                    return push_early(s, QbftMessage::Prepare(p), round);
                };
                match &rs.proposal {
                    Some((_, digest)) if *digest == p.payload.digest => {
                        rs.prepares.entry(p.author).or_insert(p);
                    }
                    Some(_) => {}
                    None => return push_early(s, QbftMessage::Prepare(p), round),
                }
                self.check_quorums(out);
            }
            QbftMessage::Commit(c) => {
                if c.author == me {
                    return;
                }
                let Some(rs) = s.round.as_mut().filter(|rs| rs.round == round) else {
                    return push_early(s, QbftMessage::Commit(c), round);
                };
                match &rs.proposal {
                    Some((_, digest)) if *digest == c.payload.digest => {
                        let signer = recover_commit_seal_signer(*digest, &c.payload.seal);
                        if signer == Some(c.author)
                            && !rs.commits.iter().any(|(a, _)| *a == c.author)
                        {
                            rs.commits.push((c.author, c.payload.seal));
                        }
                    }
                    Some(_) => {}
                    None => return push_early(s, QbftMessage::Commit(c), round),
                }
                self.check_quorums(out);
            }
            QbftMessage::RoundChange {
                round_change,
                prepared_block,
                prepares,
            } => self.upon_round_change(round_change, prepared_block, prepares, out),
        }
    }

    fn buffer_future(&mut self, height: u64, msg: QbftMessage) {
        let current = self.height().unwrap_or(0);
        if height > current.saturating_add(FUTURE_HEIGHT_DISTANCE) {
            return;
        }
        if self.future_len >= FUTURE_MESSAGES_LIMIT {
            // Evict the farthest height to make room for a nearer one.
            let Some((&far, _)) = self.future.last_key_value() else {
                return;
            };
            if far <= height {
                return;
            }
            if let Some(dropped) = self.future.remove(&far) {
                self.future_len = self.future_len.saturating_sub(dropped.len());
            }
        }
        self.future.entry(height).or_default().push(msg);
        self.future_len += 1;
    }

    // UponProposal: a valid proposal from the round's proposer is checked by the host, then
    // accepted; a valid proposal for a later round moves us to that round.
    fn upon_proposal(&mut self, msg: QbftMessage, out: &mut Vec<Output>) {
        let me = self.me;
        let QbftMessage::Proposal {
            proposal,
            round_changes,
            prepares,
        } = msg
        else {
            return;
        };
        if proposal.author == me {
            return;
        }
        let Some(s) = self.state.as_mut() else { return };
        let round = proposal.payload.round;
        if s.current_round().is_some_and(|r| r > round) {
            return;
        }
        if s.proposer(round) != Some(proposal.author) {
            return;
        }
        let block = proposal.payload.block;
        if block.header.number != s.height || block.header.parent_hash != s.parent.hash {
            return;
        }
        let Ok(digest) = commit_seal_digest(&block.header) else {
            return;
        };
        let Ok((_, expected)) = with_round(&block, round) else {
            return;
        };
        if digest != expected {
            return;
        }
        if !justification_is_valid(
            s,
            round,
            &block,
            &proposal.author,
            &round_changes,
            &prepares,
        ) {
            return;
        }
        if s.current_round() != Some(round) {
            start_round(s, round, out);
        }
        let Some(rs) = s.round.as_mut() else { return };
        if rs.proposal.is_some() || rs.checking.is_some() {
            return;
        }
        rs.checking = Some((block.clone(), digest));
        out.push(Output::CheckProposal {
            height: s.height,
            round,
            digest,
            block: Box::new(block),
        });
    }

    // UponRoundChange: a quorum of round changes for a round at least ours moves us there, and
    // its proposer proposes the best prepared block (or a new one).
    fn upon_round_change(
        &mut self,
        rc: Signed<RoundChangePayload>,
        block: Option<Block>,
        prepares: Vec<Signed<PreparePayload>>,
        out: &mut Vec<Output>,
    ) {
        let (me, key) = (self.me, self.key);
        let Some(s) = self.state.as_mut() else { return };
        let target = rc.payload.round;
        if target == 0 || s.current_round().is_some_and(|r| r > target) {
            return;
        }
        let certificate = match (rc.payload.prepared, block) {
            (None, None) => None,
            (Some(meta), Some(block)) => {
                if meta.round >= target {
                    return;
                }
                let Ok(digest) = commit_seal_digest(&block.header) else {
                    return;
                };
                if digest != meta.digest || !prepares_prove(s, meta.round, digest, &prepares) {
                    return;
                }
                Some(PreparedCertificate {
                    round: meta.round,
                    digest,
                    block,
                    prepares,
                })
            }
            _ => return,
        };
        let author = rc.author;
        let for_round = s.round_changes.entry(target).or_default();
        for_round.entry(author).or_insert((rc, certificate));
        if for_round.len() < s.quorum() || s.round_change_done.contains_key(&target) {
            return;
        }
        s.round_change_done.insert(target, ());
        if s.current_round() != Some(target) {
            start_round(s, target, out);
        }
        if s.proposer(target) != Some(me) {
            return;
        }
        let best = best_prepared(s, target);
        match best {
            Some(cert) => {
                let Ok((block, digest)) = with_round(&cert.block, target) else {
                    return;
                };
                let (round_changes, prepares) = justification(s, target);
                out.push(Output::Broadcast(Box::new(QbftMessage::proposal(
                    s.height,
                    target,
                    block.clone(),
                    round_changes,
                    prepares,
                    &key,
                    me,
                ))));
                self.accept_proposal(block, digest, out);
            }
            None => request_block(s, target, out),
        }
    }
}

fn start_round(s: &mut HeightState, round: u32, out: &mut Vec<Output>) {
    s.round = Some(RoundState {
        round,
        ..RoundState::default()
    });
    s.round_seq = s.round_seq.wrapping_add(1);
    let after_ms = s
        .timings
        .request_timeout_ms
        .saturating_mul(1u64 << round.min(MAX_TIMEOUT_DOUBLINGS));
    out.push(Output::ArmRoundTimer {
        height: s.height,
        round,
        seq: s.round_seq,
        after_ms,
    });
    // Round changes for rounds below the new one no longer matter.
    s.round_changes.retain(|r, _| *r >= round);
}

fn request_block(s: &mut HeightState, round: u32, out: &mut Vec<Output>) {
    if let Some(rs) = s.round.as_mut() {
        rs.building = true;
    }
    out.push(Output::BuildBlock {
        height: s.height,
        round,
        parent: s.parent.hash,
    });
}

fn push_early(s: &mut HeightState, msg: QbftMessage, round: u32) {
    if s.current_round().is_some_and(|r| r > round) || s.early.len() >= EARLY_MESSAGES_LIMIT {
        return;
    }
    s.early.push(msg);
}

/// The round-change certificate for `round` and the prepares of its best prepared block.
fn justification(
    s: &HeightState,
    round: u32,
) -> (Vec<Signed<RoundChangePayload>>, Vec<Signed<PreparePayload>>) {
    if round == 0 {
        return (Vec::new(), Vec::new());
    }
    let rcs = s
        .round_changes
        .get(&round)
        .map(|m| m.values().map(|(rc, _)| rc.clone()).collect())
        .unwrap_or_default();
    let prepares = best_prepared(s, round)
        .map(|c| c.prepares)
        .unwrap_or_default();
    (rcs, prepares)
}

/// The prepared certificate with the highest round among the round changes for `round`.
fn best_prepared(s: &HeightState, round: u32) -> Option<PreparedCertificate> {
    s.round_changes
        .get(&round)?
        .values()
        .filter_map(|(_, cert)| cert.as_ref())
        .max_by_key(|c| c.round)
        .cloned()
}

/// At least a quorum of distinct validators prepared `digest` in `round`.
fn prepares_prove(
    s: &HeightState,
    round: u32,
    digest: B256,
    prepares: &[Signed<PreparePayload>],
) -> bool {
    let mut authors: Vec<Address> = prepares
        .iter()
        .filter(|p| {
            p.payload.height == s.height
                && p.payload.round == round
                && p.payload.digest == digest
                && s.is_validator(&p.author)
        })
        .map(|p| p.author)
        .collect();
    authors.sort();
    authors.dedup();
    authors.len() >= s.quorum()
}

/// Besu's `ProposalPayloadValidator` justification rules.
fn justification_is_valid(
    s: &HeightState,
    round: u32,
    block: &Block,
    author: &Address,
    round_changes: &[Signed<RoundChangePayload>],
    prepares: &[Signed<PreparePayload>],
) -> bool {
    if round == 0 {
        return round_changes.is_empty()
            && prepares.is_empty()
            && block.header.beneficiary == *author;
    }
    let mut authors: Vec<Address> = Vec::new();
    for rc in round_changes {
        let p = &rc.payload;
        if p.height != s.height || p.round != round || !s.is_validator(&rc.author) {
            return false;
        }
        if p.prepared.is_some_and(|m| m.round >= round) {
            return false;
        }
        authors.push(rc.author);
    }
    authors.sort();
    authors.dedup();
    if authors.len() != round_changes.len() || authors.len() < s.quorum() {
        return false;
    }
    let best = round_changes
        .iter()
        .filter_map(|rc| rc.payload.prepared)
        .max_by_key(|m| m.round);
    match best {
        Some(meta) => {
            let Ok((_, digest)) = with_round(block, meta.round) else {
                return false;
            };
            digest == meta.digest && prepares_prove(s, meta.round, meta.digest, prepares)
        }
        None => prepares.is_empty() && block.header.beneficiary == *author,
    }
}
