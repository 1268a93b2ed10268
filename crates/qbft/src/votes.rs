//! Block-header validator voting, as Besu tallies it (`VoteTally`, `VoteTallyUpdater`,
//! `EpochManager`, `VoteProposer`): each block may carry one vote by its proposer (the
//! coinbase) to add or drop an address; a subject reaching floor(n/2)+1 votes of the current
//! `n` validators joins or leaves; an epoch block discards the outstanding votes.

use alloy_primitives::Address;
use consort_primitives::Vote;
use std::collections::{BTreeMap, BTreeSet};

/// The validators after some block and the votes still outstanding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VoteTally {
    validators: BTreeSet<Address>,
    /// Subject → the validators that voted to add it.
    adds: BTreeMap<Address, BTreeSet<Address>>,
    /// Subject → the validators that voted to drop it.
    drops: BTreeMap<Address, BTreeSet<Address>>,
}

impl VoteTally {
    /// A tally of `validators` with no votes (an epoch block, a validator override).
    pub fn new(validators: impl IntoIterator<Item = Address>) -> Self {
        VoteTally {
            validators: validators.into_iter().collect(),
            ..VoteTally::default()
        }
    }

    /// The validators, sorted ascending.
    pub fn validators(&self) -> Vec<Address> {
        self.validators.iter().copied().collect()
    }

    /// Whether `a` is a validator.
    pub fn is_validator(&self, a: &Address) -> bool {
        self.validators.contains(a)
    }

    /// Votes a subject needs: floor(n/2) + 1 of the current validators.
    pub fn threshold(&self) -> usize {
        self.validators.len() / 2 + 1
    }

    /// Whether `voter` has an outstanding vote to add `subject`.
    pub fn voted_add(&self, voter: &Address, subject: &Address) -> bool {
        self.adds.get(subject).is_some_and(|v| v.contains(voter))
    }

    /// Whether `voter` has an outstanding vote to drop `subject`.
    pub fn voted_drop(&self, voter: &Address, subject: &Address) -> bool {
        self.drops.get(subject).is_some_and(|v| v.contains(voter))
    }

    /// Counts `voter`'s vote (its newest vote on a subject replaces its older opposite one).
    /// A subject reaching the threshold joins or leaves and its votes are cleared; a dropped
    /// validator's own outstanding votes go with it.
    pub fn add_vote(&mut self, voter: Address, vote: Vote) {
        let subject = vote.recipient;
        let (yes, no) = if vote.add {
            (&mut self.adds, &mut self.drops)
        } else {
            (&mut self.drops, &mut self.adds)
        };
        yes.entry(subject).or_default().insert(voter);
        if let Some(v) = no.get_mut(&subject) {
            v.remove(&voter);
        }
        let threshold = self.threshold();
        if self.adds.get(&subject).map_or(0, BTreeSet::len) >= threshold {
            self.validators.insert(subject);
            self.forget(&subject);
        }
        if self.drops.get(&subject).map_or(0, BTreeSet::len) >= threshold {
            self.validators.remove(&subject);
            self.forget(&subject);
            for voters in self.adds.values_mut().chain(self.drops.values_mut()) {
                voters.remove(&subject);
            }
        }
    }

    fn forget(&mut self, subject: &Address) {
        self.adds.remove(subject);
        self.drops.remove(subject);
    }

    /// Discards every outstanding vote, adds and drops alike (an epoch block; Besu cleared
    /// only the adds before 26.3, PR #9870).
    pub fn discard_outstanding_votes(&mut self) {
        self.adds.clear();
        self.drops.clear();
    }
}

/// Whether block `number` is an epoch block: a multiple of `epoch_length`, counted from the
/// block before `start_block` when QBFT started later than genesis (Besu `EpochManager`).
pub fn is_epoch_block(number: u64, epoch_length: u64, start_block: Option<u64>) -> bool {
    let epoch = epoch_length.max(1);
    match start_block.filter(|s| *s > 0) {
        Some(start) => {
            let first = start - 1;
            number >= first && (number - first).is_multiple_of(epoch)
        }
        None => number.is_multiple_of(epoch),
    }
}

/// Applies block `number`'s vote (cast by its coinbase `proposer`) to `tally`: an epoch
/// block's vote is ignored and its outstanding votes are discarded.
pub fn update_for_block(
    tally: &mut VoteTally,
    number: u64,
    proposer: Address,
    vote: Option<Vote>,
    epoch_length: u64,
    start_block: Option<u64>,
) {
    if is_epoch_block(number, epoch_length, start_block) {
        tally.discard_outstanding_votes();
        return;
    }
    if let Some(vote) = vote {
        tally.add_vote(proposer, vote);
    }
}

/// The votes an operator asked this validator to cast (`qbft_proposeValidatorVote`), and
/// the round-robin position over those not yet cast.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingVotes {
    votes: BTreeMap<Address, bool>,
    position: usize,
}

impl PendingVotes {
    /// Votes from a saved list.
    pub fn from_votes(votes: impl IntoIterator<Item = (Address, bool)>) -> Self {
        PendingVotes {
            votes: votes.into_iter().collect(),
            position: 0,
        }
    }

    /// Asks to add (`true`) or drop (`false`) `subject`, replacing an earlier wish for it.
    pub fn propose(&mut self, subject: Address, add: bool) {
        self.votes.insert(subject, add);
    }

    /// Forgets the wish for `subject`.
    pub fn discard(&mut self, subject: &Address) {
        self.votes.remove(subject);
    }

    /// Every wish, by address.
    pub fn all(&self) -> &BTreeMap<Address, bool> {
        &self.votes
    }

    /// The vote for `me` to put in its next block on a chain whose tally is `tally`: one of
    /// the wishes not yet in effect or already cast, in turn (Besu `VoteProposer.getVote`).
    /// Wishes stay until discarded.
    pub fn next_vote(&mut self, me: &Address, tally: &VoteTally) -> Option<Vote> {
        let open: Vec<Vote> = self
            .votes
            .iter()
            .filter(|(subject, add)| {
                let (voted_add, voted_drop) =
                    (tally.voted_add(me, subject), tally.voted_drop(me, subject));
                let validator = tally.is_validator(subject);
                if **add {
                    (!validator && !voted_add) || voted_drop
                } else {
                    (validator && !voted_drop) || voted_add
                }
            })
            .map(|(subject, add)| Vote {
                recipient: *subject,
                add: *add,
            })
            .collect();
        if open.is_empty() {
            return None;
        }
        self.position = self.position.wrapping_add(1) % open.len();
        open.get(self.position).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(n: u8) -> Address {
        Address::repeat_byte(n)
    }

    fn add(n: u8) -> Vote {
        Vote {
            recipient: a(n),
            add: true,
        }
    }

    fn drop(n: u8) -> Vote {
        Vote {
            recipient: a(n),
            add: false,
        }
    }

    #[test]
    fn a_subject_joins_at_a_majority_of_the_current_validators() {
        let mut t = VoteTally::new([a(1), a(2), a(3), a(4)]);
        assert_eq!(t.threshold(), 3);
        t.add_vote(a(1), add(5));
        t.add_vote(a(2), add(5));
        // The same voter twice counts once.
        t.add_vote(a(2), add(5));
        assert!(!t.is_validator(&a(5)));
        t.add_vote(a(3), add(5));
        assert_eq!(t.validators(), vec![a(1), a(2), a(3), a(4), a(5)]);
        assert!(
            !t.voted_add(&a(1), &a(5)),
            "votes on a decided subject are cleared"
        );
        assert_eq!(t.threshold(), 3);
    }

    #[test]
    fn a_newer_vote_replaces_the_opposite_one_and_a_dropped_validator_loses_its_votes() {
        let mut t = VoteTally::new([a(1), a(2), a(3), a(4)]);
        t.add_vote(a(1), add(9));
        t.add_vote(a(1), drop(9));
        assert!(!t.voted_add(&a(1), &a(9)));
        assert!(t.voted_drop(&a(1), &a(9)));
        // a(4) votes to add a(9), then is dropped: its vote goes with it.
        t.add_vote(a(4), add(9));
        t.add_vote(a(1), drop(4));
        t.add_vote(a(2), drop(4));
        t.add_vote(a(3), drop(4));
        assert_eq!(t.validators(), vec![a(1), a(2), a(3)]);
        assert!(!t.voted_add(&a(4), &a(9)));
    }

    #[test]
    fn epoch_blocks_discard_votes_and_ignore_their_own() {
        assert!(is_epoch_block(0, 30_000, None));
        assert!(is_epoch_block(60_000, 30_000, None));
        assert!(!is_epoch_block(5, 30_000, None));
        // QBFT from block 11 on: epochs count from block 10.
        assert!(is_epoch_block(10, 5, Some(11)));
        assert!(is_epoch_block(15, 5, Some(11)));
        assert!(!is_epoch_block(5, 5, Some(11)));
        let mut t = VoteTally::new([a(1), a(2)]);
        update_for_block(&mut t, 3, a(1), Some(add(7)), 4, None);
        assert!(t.voted_add(&a(1), &a(7)));
        update_for_block(&mut t, 4, a(2), Some(add(7)), 4, None);
        assert!(!t.voted_add(&a(1), &a(7)));
        assert!(!t.is_validator(&a(7)));
    }

    #[test]
    fn pending_votes_are_cast_in_turn_until_in_effect() {
        let me = a(1);
        let mut t = VoteTally::new([a(1), a(2), a(3)]);
        let mut p = PendingVotes::default();
        assert_eq!(p.next_vote(&me, &t), None);
        p.propose(a(8), true);
        p.propose(a(3), false);
        p.propose(a(2), true); // already a validator: nothing to cast
        let first = p.next_vote(&me, &t);
        let second = p.next_vote(&me, &t);
        assert_ne!(first, second);
        assert!([first, second].contains(&Some(add(8))));
        assert!([first, second].contains(&Some(drop(3))));
        // Cast: not proposed again.
        t.add_vote(me, add(8));
        assert_eq!(p.next_vote(&me, &t), Some(drop(3)));
        // Changing one's mind flips an outstanding vote.
        p.propose(a(8), false);
        p.discard(&a(3));
        assert_eq!(p.next_vote(&me, &t), Some(drop(8)));
    }
}
