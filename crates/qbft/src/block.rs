//! QBFT blocks: quorum size, proposer selection, and the round and seals in a block's extraData.

use alloy_primitives::{Address, B256};
use consort_primitives::{
    commit_seal_digest, CommitSeal, QbftExtraData, QbftExtraDataError, TxEnvelope,
};

/// A full block: header, transactions, no ommers.
pub type Block = alloy_consensus::Block<TxEnvelope>;

/// A block whose extraData is not QBFT's.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("block extraData is not QBFT extraData: {0}")]
pub struct BlockError(#[from] pub QbftExtraDataError);

/// Votes needed out of `n` validators: ceil(2n/3) (Besu `BftHelpers.calculateRequiredValidatorQuorum`).
pub fn quorum(n: usize) -> usize {
    (2 * n).div_ceil(3)
}

/// The proposer of `round` at the height after a block proposed by `previous` (its coinbase),
/// among the sorted `validators` for that height (Besu `BftProposerSelector`, QBFT rotates
/// every block). None only if there are no validators.
pub fn proposer(previous: Address, validators: &[Address], round: u32) -> Option<Address> {
    if validators.is_empty() {
        return None;
    }
    let n = validators.len();
    let (base, offset) = match validators.binary_search(&previous) {
        Ok(i) => (i, round as usize + 1),
        Err(i) => (if i == n { 0 } else { i }, round as usize),
    };
    validators.get((base + offset % n) % n).copied()
}

/// The block with its extraData round replaced and its seals removed, and that block's
/// commit-seal digest (what Prepare and Commit messages carry).
pub fn with_round(block: &Block, round: u32) -> Result<(Block, B256), BlockError> {
    let mut extra = QbftExtraData::decode(&block.header.extra_data)?;
    extra.round = round;
    extra.seals.clear();
    let mut out = block.clone();
    out.header.extra_data = extra.encode();
    let digest = commit_seal_digest(&out.header)?;
    Ok((out, digest))
}

/// The final block: extraData with round `round` and the committed seals, in order.
pub fn seal_block(block: &Block, round: u32, seals: Vec<CommitSeal>) -> Result<Block, BlockError> {
    let mut extra = QbftExtraData::decode(&block.header.extra_data)?;
    extra.round = round;
    extra.seals = seals;
    let mut out = block.clone();
    out.header.extra_data = extra.encode();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_matches_besu() {
        let table = [
            (1, 1),
            (2, 2),
            (3, 2),
            (4, 3),
            (5, 4),
            (6, 4),
            (7, 5),
            (10, 7),
        ];
        for (n, q) in table {
            assert_eq!(quorum(n), q, "n = {n}");
        }
    }

    #[test]
    fn proposer_rotates_from_the_previous_proposer() {
        let v: Vec<Address> = (1..=4u8).map(Address::repeat_byte).collect();
        // Previous proposer not a validator (genesis coinbase 0x0): round 0 is the lowest.
        assert_eq!(proposer(Address::ZERO, &v, 0), Some(v[0]));
        assert_eq!(proposer(Address::ZERO, &v, 1), Some(v[1]));
        // Previous proposer v[1]: round 0 is the next one, wrapping around.
        assert_eq!(proposer(v[1], &v, 0), Some(v[2]));
        assert_eq!(proposer(v[3], &v, 0), Some(v[0]));
        assert_eq!(proposer(v[3], &v, 5), Some(v[1]));
        // Previous proposer removed: the first validator above it takes round 0.
        let after = Address::repeat_byte(2).0;
        let mut between = after;
        between[19] = 3;
        assert_eq!(proposer(Address::from(between), &v, 0), Some(v[2]));
        assert_eq!(proposer(Address::repeat_byte(9), &v, 0), Some(v[0]));
        assert_eq!(proposer(Address::ZERO, &[], 0), None);
    }
}
