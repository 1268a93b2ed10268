//! The height and round state machine. Each branch names the rule of the QBFT spec (Dafny
//! `node.dfy`) it implements.

use crate::block::{proposer, quorum, seal_block, with_round, Block};
use crate::messages::{
    CommitPayload, MessageError, PreparePayload, PreparedRound, QbftMessage, RoundChangePayload,
    Signed, MAX_ROUND,
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

/// Behaviour switches of the core that are not part of the chain's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QbftConfig {
    /// The spec's f+1 rule: when f+1 validators ask for rounds above ours, move to the lowest of
    /// them at once instead of waiting for our round timer (Besu's
    /// `--Xqbft-enable-early-round-change`, off there by default).
    pub early_round_change: bool,
    /// Ceiling of the round timeout in milliseconds; `requesttimeoutseconds × 2^round` grows up
    /// to it, so a network that lost quorum for a long time moves again within one ceiling.
    pub round_timeout_max_ms: u64,
}

impl Default for QbftConfig {
    fn default() -> Self {
        QbftConfig {
            early_round_change: true,
            round_timeout_max_ms: 60_000,
        }
    }
}

/// Most buffered messages for future heights.
pub const FUTURE_MESSAGES_LIMIT: usize = 1_000;
/// Most bytes of buffered messages for future heights.
pub const FUTURE_MESSAGES_BYTES: usize = 32 << 20;
/// How many heights ahead a message may be buffered.
pub const FUTURE_HEIGHT_DISTANCE: u64 = 10;
/// Most buffered messages for rounds without an accepted proposal, per height.
pub const EARLY_MESSAGES_LIMIT: usize = 1_000;
/// Most bytes of such messages.
pub const EARLY_MESSAGES_BYTES: usize = 32 << 20;
/// Round changes kept per author (its highest target rounds); bounds what a validator asking
/// for ever higher rounds can make us hold.
pub const ROUND_CHANGES_PER_AUTHOR: usize = 4;

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
        /// Whether the host has transactions a block could include. Without any, validators
        /// that do not propose wait out `emptyblockperiodseconds` as the proposer does.
        pending_transactions: bool,
    },
    /// Send our latest round change again (a peer joined, or gossip may have lost it).
    Rebroadcast,
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
    /// Store this durably before carrying out the outputs after it: a restart that
    /// [`Qbft::restore`]s it never sends a Proposal, Prepare or Commit that conflicts with one
    /// sent before, nor acts in a round below one it asked to change to.
    Persist(Box<Persisted>),
    /// Send to every validator.
    Broadcast(Box<QbftMessage>),
    /// The height is decided: import this sealed block.
    Import(Box<Block>),
}

/// What a validator must remember across a restart at one height: the highest round it sent a
/// message in and its latest prepared certificate. A restored core resumes at the next round.
#[derive(Debug, Clone, PartialEq)]
pub struct Persisted {
    /// Height.
    pub height: u64,
    /// The highest round in which a Proposal, Prepare or Commit was sent, or that a Round
    /// Change asked for.
    pub round: u32,
    prepared: Option<PreparedCertificate>,
}

impl Persisted {
    /// RLP `[roundChangePayload, preparedBlock or [], [signed prepares]]`, the shape of a round
    /// change without its signature.
    pub fn encode(&self) -> Vec<u8> {
        let payload = RoundChangePayload {
            height: self.height,
            round: self.round,
            prepared: self.prepared.as_ref().map(|p| PreparedRound {
                round: p.round,
                digest: p.digest,
            }),
        };
        let (block, prepares) = match &self.prepared {
            Some(p) => (Some(&p.block), p.prepares.as_slice()),
            None => (None, &[][..]),
        };
        crate::messages::encode_unsigned_round_change(&payload, block, prepares)
    }

    /// Reads what [`Persisted::encode`] wrote, checking the prepares' signatures.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        let (payload, block, prepares) = crate::messages::decode_unsigned_round_change(bytes)?;
        let prepared = match (payload.prepared, block) {
            (Some(meta), Some(block)) => Some(PreparedCertificate {
                round: meta.round,
                digest: meta.digest,
                block,
                prepares,
            }),
            (None, None) => None,
            _ => return Err(MessageError::Rlp("prepared round without its block".into())),
        };
        Ok(Persisted {
            height: payload.height,
            round: payload.round,
            prepared,
        })
    }
}

/// A block prepared in some round, with the prepares that prove it.
#[derive(Debug, Clone, PartialEq)]
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
    /// Our own re-proposal of a prepared block, sent once the host has checked the block.
    reproposal: Option<QbftMessage>,
    /// The round change certificate and prepares that justified the proposal we sent.
    prepares: BTreeMap<Address, Signed<PreparePayload>>,
    /// Commit seals in arrival order.
    commits: Vec<(Address, CommitSeal)>,
    /// Our seal over the accepted proposal.
    own_seal: Option<CommitSeal>,
    sent_commit: bool,
    /// Whether we asked the host for a block for this round.
    building: bool,
    /// The round changes, none of them prepared, on which we asked for that block: the
    /// proposal's justification. Round changes arriving while the block is built may carry a
    /// prepared certificate the new block does not follow, so they are not added.
    build_justification: Vec<Signed<RoundChangePayload>>,
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
    /// Prepares and commits for rounds whose proposal has not been accepted yet, one of each
    /// per author and round, by (round, author, message code).
    early: BTreeMap<(u32, Address, u8), QbftMessage>,
    early_bytes: usize,
    decided: bool,
    /// Rounds below this are never entered (a restart resumes above the round it acted in).
    min_round: u32,
    /// The round change we sent for the current round, for [`Input::Rebroadcast`].
    last_round_change: Option<QbftMessage>,
    config: QbftConfig,
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

    /// f+1, the most faulty validators plus one.
    fn weak_quorum(&self) -> usize {
        self.parent.validators.len().saturating_sub(1) / 3 + 1
    }

    fn persisted(&self, round: u32) -> Persisted {
        Persisted {
            height: self.height,
            round,
            prepared: self.prepared.clone(),
        }
    }
}

/// The QBFT core for one validator key.
#[derive(Debug)]
pub struct Qbft {
    key: SecretKey,
    me: Address,
    config: QbftConfig,
    state: Option<HeightState>,
    /// Messages for future heights, one per (height, round, author, message code).
    future: BTreeMap<(u64, u32, Address, u8), QbftMessage>,
    future_bytes: usize,
    restored: Option<Persisted>,
}

impl Qbft {
    /// A core that signs with `key`, with the default [`QbftConfig`]. It does nothing until the
    /// first [`Input::NewHead`].
    pub fn new(key: SecretKey) -> Self {
        Qbft::with_config(key, QbftConfig::default())
    }

    /// A core with explicit behaviour switches.
    pub fn with_config(key: SecretKey, config: QbftConfig) -> Self {
        let me = public_key_address(&key.public_key(SECP256K1));
        Qbft {
            key,
            me,
            config,
            state: None,
            future: BTreeMap::new(),
            future_bytes: 0,
            restored: None,
        }
    }

    /// Resumes from what an earlier run [`Output::Persist`]ed: at that height the core starts
    /// above the round it acted in, carrying its prepared certificate. Call before the first
    /// [`Input::NewHead`].
    pub fn restore(&mut self, persisted: Persisted) {
        self.restored = Some(persisted);
    }

    /// Messages and bytes buffered for future heights.
    pub fn future_buffered(&self) -> (usize, usize) {
        (self.future.len(), self.future_bytes)
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
            Input::BlockTimer {
                height,
                now_ms,
                pending_transactions,
            } => self.upon_block_timeout(height, now_ms, pending_transactions, &mut out),
            Input::Rebroadcast => {
                if let Some(msg) = self
                    .state
                    .as_ref()
                    .and_then(|s| s.last_round_change.clone())
                {
                    out.push(Output::Broadcast(Box::new(msg)));
                }
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
        // height was decided and its import failed: then the height starts over, above the
        // round it acted in and with its prepared certificate, as after a restart.
        if self
            .state
            .as_ref()
            .is_some_and(|s| s.height == height && s.parent.hash == head.hash && !s.decided)
        {
            return;
        }
        if let Some(carried) = self
            .state
            .as_ref()
            .filter(|s| s.height == height)
            .and_then(|s| s.current_round().map(|r| s.persisted(r.max(s.min_round))))
        {
            if self
                .restored
                .as_ref()
                .is_none_or(|p| p.height != height || p.round <= carried.round)
            {
                self.restored = Some(carried);
            }
        }
        let at_ms = head
            .timestamp
            .saturating_mul(1000)
            .saturating_add(timings.block_period_ms);
        self.restored = self.restored.take().filter(|p| p.height >= height);
        let restored = self.restored.as_ref().filter(|p| p.height == height);
        self.state = Some(HeightState {
            height,
            parent: head,
            timings,
            round: None,
            round_seq: 0,
            round_changes: BTreeMap::new(),
            round_change_done: BTreeMap::new(),
            prepared: restored.and_then(|p| p.prepared.clone()),
            early: BTreeMap::new(),
            early_bytes: 0,
            decided: false,
            min_round: restored.map_or(0, |p| p.round.saturating_add(1).min(MAX_ROUND)),
            last_round_change: None,
            config: self.config,
        });
        out.push(Output::ArmBlockTimer { height, at_ms });
        // Replay what arrived early for this height; drop what is now in the past.
        let later = self
            .future
            .split_off(&(height.saturating_add(1), 0, Address::ZERO, 0));
        let replay = std::mem::replace(&mut self.future, later);
        self.future_bytes = self.future.values().map(QbftMessage::size).sum();
        for ((h, _, _, _), msg) in replay {
            if h == height {
                self.upon_message(msg, out);
            }
        }
    }

    // UponBlockTimeout: round 0 starts; its proposer builds a block. A validator restored
    // mid-height starts with a round change above the round it acted in instead.
    fn upon_block_timeout(
        &mut self,
        height: u64,
        now_ms: u64,
        pending_transactions: bool,
        out: &mut Vec<Output>,
    ) {
        let me = self.me;
        let Some(s) = self.state.as_mut() else { return };
        if s.height != height || s.round.is_some() || s.decided || !s.is_validator(&me) {
            return;
        }
        if s.min_round > 0 {
            let target = s.min_round;
            return self.do_round_change(target, out);
        }
        let proposer = s.proposer(0) == Some(me);
        // A validator that does not propose mirrors the proposer's wait for an empty block, so
        // its round timer does not run out while the proposer is idle on purpose.
        let empty_due = s
            .parent
            .timestamp
            .saturating_mul(1000)
            .saturating_add(s.timings.empty_block_period_ms);
        if !proposer && !pending_transactions && now_ms < empty_due {
            let at_ms = empty_due.min(now_ms.saturating_add(s.timings.block_period_ms));
            out.push(Output::ArmBlockTimer { height, at_ms });
            return;
        }
        start_round(s, 0, out);
        if proposer {
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
        let round_changes = std::mem::take(&mut rs.build_justification);
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
        let proposal = QbftMessage::proposal(
            height,
            round,
            block.clone(),
            round_changes,
            Vec::new(),
            &self.key,
            self.me,
        );
        self.accept_proposal(block, digest, Some(proposal), out);
    }

    /// Accepts the current round's proposal: our prepare goes out, our seal is counted. Our own
    /// `proposal` goes out just before the prepare, after the round is persisted, so a restart
    /// cannot propose a second block in this round.
    fn accept_proposal(
        &mut self,
        block: Block,
        digest: B256,
        proposal: Option<QbftMessage>,
        out: &mut Vec<Output>,
    ) {
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
        out.push(Output::Persist(Box::new(s.persisted(round))));
        if let Some(proposal) = proposal {
            out.push(Output::Broadcast(Box::new(proposal)));
        }
        out.push(Output::Broadcast(Box::new(prepare)));
        // Votes that arrived before the proposal count now; those of later rounds stay.
        let later = s
            .early
            .split_off(&(round.saturating_add(1), Address::ZERO, 0));
        let early = std::mem::replace(&mut s.early, later);
        s.early_bytes = s.early.values().map(QbftMessage::size).sum();
        for ((r, _, _), msg) in early {
            if r == round {
                self.upon_message(msg, out);
            }
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
                out.push(Output::Persist(Box::new(Persisted {
                    height,
                    round: rs.round,
                    prepared: s.prepared.clone(),
                })));
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
        let own = rs.reproposal.take();
        if checking != digest || !valid {
            return;
        }
        self.accept_proposal(block, digest, own, out);
    }

    // UponRoundTimeout: move to the next round and ask the others to follow.
    fn upon_round_timeout(&mut self, height: u64, round: u32, seq: u64, out: &mut Vec<Output>) {
        let Some(s) = self.state.as_mut() else { return };
        if s.height != height || s.round_seq != seq || s.current_round() != Some(round) || s.decided
        {
            return;
        }
        let Some(target) = round.checked_add(1).filter(|r| *r <= MAX_ROUND) else {
            return;
        };
        self.do_round_change(target, out);
    }

    /// Starts `target` and sends a round change for it carrying our prepared certificate,
    /// handled locally first.
    fn do_round_change(&mut self, target: u32, out: &mut Vec<Output>) {
        let (me, key) = (self.me, self.key);
        let Some(s) = self.state.as_mut() else { return };
        let height = s.height;
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
        s.last_round_change = Some(msg.clone());
        // Asking for `target` promises to act in no lower round at this height: a restart must
        // resume above it, or a vote in a lower round could contradict the round change.
        out.push(Output::Persist(Box::new(s.persisted(target))));
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
                        // A repeated commit costs no signature recovery.
                        if !rs.commits.iter().any(|(a, _)| *a == c.author)
                            && recover_commit_seal_signer(*digest, &c.payload.seal)
                                == Some(c.author)
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

    /// Buffers a message for a future height. An author gets one message of each kind per
    /// height and round (an honest one sends no more), and a full buffer makes room by
    /// dropping the farthest (height, round): messages for far heights and rounds, which
    /// anyone can send in bulk, never crowd out those for the next height's first rounds.
    fn buffer_future(&mut self, height: u64, msg: QbftMessage) {
        let current = self.height().unwrap_or(0);
        if height > current.saturating_add(FUTURE_HEIGHT_DISTANCE) {
            return;
        }
        let (_, round) = msg.height_and_round();
        let key = (height, round, msg.author(), msg.code());
        let size = msg.size();
        if size > FUTURE_MESSAGES_BYTES || self.future.contains_key(&key) {
            return;
        }
        while self.future.len() >= FUTURE_MESSAGES_LIMIT
            || self.future_bytes.saturating_add(size) > FUTURE_MESSAGES_BYTES
        {
            match self.future.last_key_value() {
                Some(((h, r, _, _), _)) if (*h, *r) > (height, round) => {}
                _ => return,
            }
            if let Some((_, dropped)) = self.future.pop_last() {
                self.future_bytes = self.future_bytes.saturating_sub(dropped.size());
            }
        }
        self.future.insert(key, msg);
        self.future_bytes += size;
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
        if s.current_round().is_some_and(|r| r > round) || round < s.min_round {
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
        let Some(s) = self.state.as_mut() else { return };
        let target = rc.payload.round;
        if target == 0 || target < s.min_round || s.current_round().is_some_and(|r| r > target) {
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
                // The digest covers the header only: a body swapped under it is refused here,
                // and a prepared round must name one block for every round change claiming it.
                if digest != meta.digest
                    || !body_matches_header(&block)
                    || conflicts_with_stored(s, target, meta)
                    || !prepares_prove(s, meta.round, digest, &prepares)
                {
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
        s.round_changes
            .entry(target)
            .or_default()
            .entry(author)
            .or_insert((rc, certificate));
        forget_lowest_round_changes(s, author);
        // UponRoundChange, f+1 rule: f+1 validators want rounds above ours, so at least one
        // honest validator does; follow to the lowest of them.
        if s.config.early_round_change {
            if let Some(early) = early_round_change_target(s) {
                self.do_round_change(early, out);
            }
        }
        let (me, key) = (self.me, self.key);
        let Some(s) = self.state.as_mut() else { return };
        let have = s.round_changes.get(&target).map_or(0, BTreeMap::len);
        if have < s.quorum()
            || s.round_change_done.contains_key(&target)
            || s.current_round().is_some_and(|r| r > target)
        {
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
                let proposal = QbftMessage::proposal(
                    s.height,
                    target,
                    block.clone(),
                    round_changes,
                    prepares,
                    &key,
                    me,
                );
                // A prepared block is proposed again only after the host has validated it in
                // full: the round changes that carried it are someone else's word.
                let height = s.height;
                let Some(rs) = s.round.as_mut() else { return };
                if rs.proposal.is_some() || rs.checking.is_some() {
                    return;
                }
                rs.checking = Some((block.clone(), digest));
                rs.reproposal = Some(proposal);
                out.push(Output::CheckProposal {
                    height,
                    round: target,
                    digest,
                    block: Box::new(block),
                });
            }
            None => {
                let (round_changes, _) = justification(s, target);
                if let Some(rs) = s.round.as_mut() {
                    rs.build_justification = round_changes;
                }
                request_block(s, target, out)
            }
        }
    }
}

/// The lowest of the rounds above ours that f+1 validators' latest round changes target.
fn early_round_change_target(s: &HeightState) -> Option<u32> {
    let current = s.current_round().unwrap_or(0);
    let mut latest: BTreeMap<Address, u32> = BTreeMap::new();
    for (round, by_author) in s.round_changes.range(current.saturating_add(1)..) {
        for author in by_author.keys() {
            latest.insert(*author, *round);
        }
    }
    if latest.len() < s.weak_quorum() {
        return None;
    }
    latest.values().min().copied()
}

/// Keeps only an author's [`ROUND_CHANGES_PER_AUTHOR`] highest target rounds.
fn forget_lowest_round_changes(s: &mut HeightState, author: Address) {
    let rounds: Vec<u32> = s
        .round_changes
        .iter()
        .filter(|(_, by_author)| by_author.contains_key(&author))
        .map(|(round, _)| *round)
        .collect();
    let excess = rounds.len().saturating_sub(ROUND_CHANGES_PER_AUTHOR);
    for round in rounds.into_iter().take(excess) {
        if let Some(by_author) = s.round_changes.get_mut(&round) {
            by_author.remove(&author);
            if by_author.is_empty() {
                s.round_changes.remove(&round);
            }
        }
    }
}

fn start_round(s: &mut HeightState, round: u32, out: &mut Vec<Output>) {
    s.round = Some(RoundState {
        round,
        ..RoundState::default()
    });
    s.round_seq = s.round_seq.wrapping_add(1);
    s.last_round_change = None;
    // requesttimeoutseconds × 2^round, up to the configured ceiling.
    let after_ms = s
        .timings
        .request_timeout_ms
        .saturating_mul(1u64 << round.min(40))
        .min(
            s.config
                .round_timeout_max_ms
                .max(s.timings.request_timeout_ms),
        );
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

/// Buffers a Prepare or Commit for a round whose proposal we have not accepted. An author
/// gets one of each per round (an honest one sends no more), and a full buffer makes room by
/// dropping the farthest round's votes: votes for far rounds, which anyone can send in bulk,
/// never crowd out those for the round at hand.
fn push_early(s: &mut HeightState, msg: QbftMessage, round: u32) {
    let size = msg.size();
    let key = (round, msg.author(), msg.code());
    if s.current_round().is_some_and(|r| r > round)
        || s.early.contains_key(&key)
        || size > EARLY_MESSAGES_BYTES
    {
        return;
    }
    while s.early.len() >= EARLY_MESSAGES_LIMIT
        || s.early_bytes.saturating_add(size) > EARLY_MESSAGES_BYTES
    {
        match s.early.last_key_value() {
            Some(((far, _, _), _)) if *far > round => {}
            _ => return,
        }
        if let Some((_, dropped)) = s.early.pop_last() {
            s.early_bytes = s.early_bytes.saturating_sub(dropped.size());
        }
    }
    s.early.insert(key, msg);
    s.early_bytes += size;
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
/// Certificates of one prepared round name one block ([`conflicts_with_stored`]), so ties
/// are the same block; the first by author is taken.
fn best_prepared(s: &HeightState, round: u32) -> Option<PreparedCertificate> {
    s.round_changes
        .get(&round)?
        .values()
        .filter_map(|(_, cert)| cert.as_ref())
        .reduce(|best, c| if c.round > best.round { c } else { best })
        .cloned()
}

/// Whether a stored round change for `target` claims `meta.round` prepared with another block.
/// The first one stored wins, as Besu keeps the first round change per author.
fn conflicts_with_stored(s: &HeightState, target: u32, meta: PreparedRound) -> bool {
    s.round_changes.get(&target).is_some_and(|by_author| {
        by_author
            .values()
            .filter_map(|(_, cert)| cert.as_ref())
            .any(|c| c.round == meta.round && c.digest != meta.digest)
    })
}

/// A block's body is the one its header commits to: the transactions root matches and a QBFT
/// block has no ommers or withdrawals.
fn body_matches_header(block: &Block) -> bool {
    let body = &block.body;
    body.ommers.is_empty()
        && body.withdrawals.as_ref().is_none_or(|w| w.is_empty())
        && alloy_consensus::proofs::calculate_transaction_root(&body.transactions)
            == block.header.transactions_root
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
    // Round changes that claim the same prepared round must name the same block.
    let mut claims: BTreeMap<u32, B256> = BTreeMap::new();
    for meta in round_changes.iter().filter_map(|rc| rc.payload.prepared) {
        if *claims.entry(meta.round).or_insert(meta.digest) != meta.digest {
            return false;
        }
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
