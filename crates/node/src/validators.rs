//! The validator set of each block, as Besu derives it: in block-header mode by tallying the
//! votes in extraData from the last epoch block or validator override (`ForkingVoteTallyCache`),
//! in contract mode by calling `getValidators()` on the state after the parent
//! (`TransactionValidatorProvider`). The mode of block N is the fork schedule's at N.

use alloy_primitives::{Address, Bytes, B256};
use consort_chainspec::{Genesis, QbftConfig, ValidatorSelection};
use consort_evm::{CallLimits, CallRequest};
use consort_primitives::{bft_onchain_hash, Header, QbftExtraData, Vote};
use consort_qbft::{update_for_block, PendingVotes, VoteTally};
use consort_storage::Store;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `getValidators()`.
pub const GET_VALIDATORS: [u8; 4] = [0xb7, 0xab, 0x4d, 0xb5];
/// Validator sets kept, by the hash of the block they follow (Besu keeps 100).
const CACHED_SETS: usize = 256;
/// How long one `getValidators()` call may run.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Most validators a contract may return.
pub const MAX_VALIDATORS: usize = 1024;

/// Why a validator set could not be found.
#[derive(Debug, thiserror::Error)]
pub enum ValidatorError {
    /// A header the tally needs is not stored.
    #[error("block {0} is not stored: cannot tally the votes up to it")]
    MissingHeader(B256),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] consort_storage::StorageError),
    /// The validator contract could not be read.
    #[error("validator contract {address} after block {number}: {reason}")]
    Contract {
        /// The contract.
        address: Address,
        /// The block whose state was read.
        number: u64,
        /// What went wrong.
        reason: String,
    },
    /// Block-header mode follows contract mode without a `validators` list to start from.
    #[error(
        "block {0} switches to block-header validators without a \"validators\" list in its \
         transition"
    )]
    NoStartingValidators(u64),
    /// The chain is not a QBFT chain.
    #[error("the genesis file has no config.qbft section")]
    NotQbft,
}

/// The validators that follow a block, and in block-header mode the votes still open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidatorSet {
    /// Block-header mode: the tally after the block.
    Header(VoteTally),
    /// Contract mode: what `getValidators()` returned, sorted.
    Contract(Vec<Address>),
}

impl ValidatorSet {
    /// The validators, sorted ascending.
    pub fn validators(&self) -> Vec<Address> {
        match self {
            ValidatorSet::Header(t) => t.validators(),
            ValidatorSet::Contract(v) => v.clone(),
        }
    }

    /// The tally, in block-header mode.
    pub fn tally(&self) -> Option<&VoteTally> {
        match self {
            ValidatorSet::Header(t) => Some(t),
            ValidatorSet::Contract(_) => None,
        }
    }
}

/// The vote a block carries, if its extraData decodes.
pub fn vote_of(header: &Header) -> Option<Vote> {
    QbftExtraData::decode(&header.extra_data)
        .ok()
        .and_then(|e| e.vote)
}

/// Sets by the hash of the block they follow; when full, the one stored first goes.
#[derive(Debug, Default)]
struct SetCache {
    sets: HashMap<B256, Arc<ValidatorSet>>,
    order: VecDeque<B256>,
}

impl SetCache {
    fn insert(&mut self, hash: B256, set: Arc<ValidatorSet>) {
        if self.sets.insert(hash, set).is_some() {
            return;
        }
        self.order.push_back(hash);
        while self.order.len() > CACHED_SETS {
            if let Some(old) = self.order.pop_front() {
                self.sets.remove(&old);
            }
        }
    }
}

/// Validator sets by block, cached.
#[derive(Debug)]
pub struct ValidatorSets {
    store: Arc<Store>,
    genesis: Arc<Genesis>,
    cache: Mutex<SetCache>,
}

impl ValidatorSets {
    /// Sets for the chain in `store`.
    pub fn new(store: Arc<Store>, genesis: Arc<Genesis>) -> Self {
        ValidatorSets {
            store,
            genesis,
            cache: Mutex::default(),
        }
    }

    fn qbft(&self) -> Result<&QbftConfig, ValidatorError> {
        self.genesis.qbft.as_ref().ok_or(ValidatorError::NotQbft)
    }

    /// How the validators of block `number` are chosen.
    pub fn selection(&self, number: u64) -> Result<ValidatorSelection, ValidatorError> {
        Ok(self.qbft()?.params_at(number).validator_selection)
    }

    /// The validators a `transitions` entry sets for block `number`, if one does.
    fn override_for(&self, number: u64) -> Result<Option<Vec<Address>>, ValidatorError> {
        Ok(self
            .qbft()?
            .transitions
            .iter()
            .find(|t| t.block == number)
            .and_then(|t| t.validators.clone()))
    }

    fn cached(&self, hash: &B256) -> Option<Arc<ValidatorSet>> {
        self.cache.lock().ok()?.sets.get(hash).cloned()
    }

    fn remember(&self, hash: B256, set: Arc<ValidatorSet>) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(hash, set);
        }
    }

    /// The validators of the block after `header` (a stored block).
    pub fn after(&self, header: &Header) -> Result<Arc<ValidatorSet>, ValidatorError> {
        let hash =
            bft_onchain_hash(header).map_err(|_| ValidatorError::MissingHeader(B256::ZERO))?;
        if let Some(set) = self.cached(&hash) {
            return Ok(set);
        }
        let set = match self.selection(header.number.saturating_add(1))? {
            ValidatorSelection::Contract(address) => {
                Arc::new(ValidatorSet::Contract(self.read_contract(header, address)?))
            }
            ValidatorSelection::BlockHeader => return self.tally_after(header, hash),
        };
        self.remember(hash, set.clone());
        Ok(set)
    }

    /// The validators after `child` given those after its parent, without the store: how
    /// a batch of headers not yet imported is checked. `None` when the set after `child`
    /// comes from a contract (its state is needed).
    pub fn next(
        &self,
        parent_set: &ValidatorSet,
        child: &Header,
    ) -> Result<Option<ValidatorSet>, ValidatorError> {
        let number = child.number.saturating_add(1);
        if matches!(self.selection(number)?, ValidatorSelection::Contract(_)) {
            return Ok(None);
        }
        let qbft = self.qbft()?;
        let mut tally = if let Some(list) = self.override_for(number)? {
            VoteTally::new(list)
        } else if consort_qbft::is_epoch_block(child.number, qbft.epoch_length, qbft.start_block) {
            VoteTally::new(crate::chain::validators_of(child))
        } else {
            match parent_set {
                ValidatorSet::Header(t) => t.clone(),
                ValidatorSet::Contract(_) => {
                    return Err(ValidatorError::NoStartingValidators(number))
                }
            }
        };
        self.apply(&mut tally, child)?;
        Ok(Some(ValidatorSet::Header(tally)))
    }

    fn apply(&self, tally: &mut VoteTally, header: &Header) -> Result<(), ValidatorError> {
        let qbft = self.qbft()?;
        update_for_block(
            tally,
            header.number,
            header.beneficiary,
            vote_of(header),
            qbft.epoch_length,
            qbft.start_block,
        );
        Ok(())
    }

    /// Besu's walk: back from `header` to a block whose tally is known (cached, an epoch
    /// block, a validator override or genesis), then forward applying each block's vote.
    fn tally_after(
        &self,
        header: &Header,
        hash: B256,
    ) -> Result<Arc<ValidatorSet>, ValidatorError> {
        let qbft = self.qbft()?;
        let mut pending: Vec<(B256, Header)> = Vec::new();
        let mut h = header.clone();
        let mut h_hash = hash;
        let mut tally = loop {
            let number = h.number;
            let parent_hash = h.parent_hash;
            pending.push((h_hash, h));
            if let Some(list) = self.override_for(number.saturating_add(1))? {
                break VoteTally::new(list);
            }
            let h_ref = pending.last().map(|(_, h)| h);
            if number == 0
                || consort_qbft::is_epoch_block(number, qbft.epoch_length, qbft.start_block)
            {
                break VoteTally::new(h_ref.map(crate::chain::validators_of).unwrap_or_default());
            }
            if let Some(set) = self.cached(&parent_hash) {
                match set.tally() {
                    Some(t) => break t.clone(),
                    None => return Err(ValidatorError::NoStartingValidators(number)),
                }
            }
            if matches!(self.selection(number)?, ValidatorSelection::Contract(_)) {
                return Err(ValidatorError::NoStartingValidators(number));
            }
            h = self
                .store
                .header(&parent_hash)?
                .ok_or(ValidatorError::MissingHeader(parent_hash))?;
            h_hash = parent_hash;
        };
        let mut last = None;
        for (hash, h) in pending.iter().rev() {
            self.apply(&mut tally, h)?;
            let set = Arc::new(ValidatorSet::Header(tally.clone()));
            self.remember(*hash, set.clone());
            last = Some(set);
        }
        last.ok_or(ValidatorError::MissingHeader(hash))
    }

    /// `getValidators()` on the state after `header`, sorted.
    fn read_contract(
        &self,
        header: &Header,
        address: Address,
    ) -> Result<Vec<Address>, ValidatorError> {
        let failed = |reason: String| ValidatorError::Contract {
            address,
            number: header.number,
            reason,
        };
        let req = CallRequest {
            to: Some(address),
            input: Bytes::from(GET_VALIDATORS.to_vec()),
            gas: Some(header.gas_limit),
            ..CallRequest::default()
        };
        let limits = CallLimits {
            gas_cap: header.gas_limit,
            timeout: CALL_TIMEOUT,
        };
        let outcome = consort_evm::call(&self.store, &self.genesis, header, &req, &limits)
            .map_err(|e| failed(e.to_string()))?;
        if !outcome.success {
            return Err(failed(if outcome.reverted {
                format!("reverted (0x{})", hex::encode(&outcome.output))
            } else {
                outcome.halt.unwrap_or_else(|| "halted".into())
            }));
        }
        if outcome.output.is_empty() {
            return Err(failed(
                "nothing answered getValidators() (no contract code at the address?)".into(),
            ));
        }
        let mut validators = decode_addresses(&outcome.output).map_err(failed)?;
        validators.sort();
        validators.dedup();
        if validators.is_empty() {
            return Err(failed("it lists no validators".into()));
        }
        Ok(validators)
    }
}

/// Pending votes as stored: 21 bytes each, the address then 1 (add) or 0 (drop).
pub fn encode_votes(votes: &PendingVotes) -> Vec<u8> {
    let mut out = Vec::with_capacity(votes.all().len() * 21);
    for (subject, add) in votes.all() {
        out.extend_from_slice(subject.as_slice());
        out.push(u8::from(*add));
    }
    out
}

/// Pending votes from their stored form.
pub fn decode_votes(bytes: &[u8]) -> Result<PendingVotes, String> {
    if !bytes.len().is_multiple_of(21) {
        return Err(format!(
            "{} bytes is not a list of 21-byte votes",
            bytes.len()
        ));
    }
    bytes
        .chunks(21)
        .map(|c| match c.split_last() {
            Some((0, a)) => Ok((Address::from_slice(a), false)),
            Some((1, a)) => Ok((Address::from_slice(a), true)),
            _ => Err("a vote is neither add (1) nor drop (0)".to_string()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(PendingVotes::from_votes)
}

/// The `qbft_*` methods' view: validator sets by block and this validator's votes, which
/// are written to the store before a call returns, so they outlive a restart.
#[derive(Debug, Clone)]
pub struct NodeVoting {
    /// The database.
    pub store: Arc<Store>,
    /// Validator sets.
    pub sets: Arc<ValidatorSets>,
    /// The votes the block builder casts.
    pub votes: Arc<Mutex<PendingVotes>>,
}

impl NodeVoting {
    /// Voting over `store`, with the votes saved there.
    pub fn open(store: Arc<Store>, sets: Arc<ValidatorSets>) -> Result<Self, String> {
        let votes = match store.validator_votes().map_err(|e| e.to_string())? {
            Some(bytes) => decode_votes(&bytes)?,
            None => PendingVotes::default(),
        };
        Ok(NodeVoting {
            store,
            sets,
            votes: Arc::new(Mutex::new(votes)),
        })
    }

    fn change(&self, f: impl FnOnce(&mut PendingVotes)) -> Result<(), String> {
        let mut votes = self
            .votes
            .lock()
            .map_err(|_| "vote lock poisoned".to_string())?;
        let mut next = votes.clone();
        f(&mut next);
        self.store
            .put_validator_votes(&encode_votes(&next))
            .map_err(|e| e.to_string())?;
        *votes = next;
        Ok(())
    }

    fn head_header(&self) -> Result<Header, String> {
        self.store.head_header().map_err(|e| e.to_string())
    }
}

impl consort_rpc::ValidatorVoting for NodeVoting {
    fn validators_of_block(&self, hash: B256) -> Result<Option<Vec<Address>>, String> {
        let Some(header) = self.store.header(&hash).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        match self
            .sets
            .selection(header.number)
            .map_err(|e| e.to_string())?
        {
            ValidatorSelection::BlockHeader => {
                let mut v = QbftExtraData::decode(&header.extra_data)
                    .map_err(|e| e.to_string())?
                    .validators;
                v.sort();
                Ok(Some(v))
            }
            ValidatorSelection::Contract(_) => self
                .sets
                .after(&header)
                .map(|s| Some(s.validators()))
                .map_err(|e| e.to_string()),
        }
    }

    fn validators_after(&self, hash: B256) -> Result<Option<Vec<Address>>, String> {
        let Some(header) = self.store.header(&hash).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        self.sets
            .after(&header)
            .map(|s| Some(s.validators()))
            .map_err(|e| e.to_string())
    }

    fn header_voting(&self) -> bool {
        self.head_header().is_ok_and(|h| {
            matches!(
                self.sets.selection(h.number.saturating_add(1)),
                Ok(ValidatorSelection::BlockHeader)
            )
        })
    }

    fn propose(&self, subject: Address, add: bool) -> Result<(), String> {
        self.change(|v| v.propose(subject, add))
    }

    fn discard(&self, subject: Address) -> Result<(), String> {
        self.change(|v| v.discard(&subject))
    }

    fn pending(&self) -> std::collections::BTreeMap<Address, bool> {
        self.votes
            .lock()
            .map(|v| v.all().clone())
            .unwrap_or_default()
    }
}

/// An ABI-encoded `address[]` return value.
pub fn decode_addresses(output: &[u8]) -> Result<Vec<Address>, String> {
    let word = |at: usize| -> Result<&[u8], String> {
        output
            .get(at..at.saturating_add(32))
            .filter(|w| w.len() == 32)
            .ok_or_else(|| format!("the answer ({} bytes) is not an address[]", output.len()))
    };
    let small = |w: &[u8]| -> Result<usize, String> {
        if w.iter().take(24).any(|b| *b != 0) {
            return Err("an offset or length in the answer is out of range".into());
        }
        let mut n = [0u8; 8];
        n.copy_from_slice(w.get(24..32).unwrap_or(&[0; 8]));
        usize::try_from(u64::from_be_bytes(n)).map_err(|e| e.to_string())
    };
    let offset = small(word(0)?)?;
    let len = small(word(offset)?)?;
    if len > MAX_VALIDATORS {
        return Err(format!("{len} validators, more than {MAX_VALIDATORS}"));
    }
    (0..len)
        .map(|i| {
            let w = word(offset + 32 + 32 * i)?;
            if w.iter().take(12).any(|b| *b != 0) {
                return Err(format!("element {i} is not an address"));
            }
            Ok(Address::from_slice(w.get(12..32).unwrap_or(&[0; 20])))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_cache_drops_the_oldest_set_when_full() {
        let mut cache = SetCache::default();
        let set = Arc::new(ValidatorSet::Contract(vec![Address::repeat_byte(1)]));
        let hash = |i: usize| B256::left_padding_from(&i.to_be_bytes());
        for i in 0..CACHED_SETS {
            cache.insert(hash(i), set.clone());
        }
        cache.insert(hash(0), set.clone());
        assert_eq!(cache.sets.len(), CACHED_SETS);
        cache.insert(hash(CACHED_SETS), set);
        assert_eq!(cache.sets.len(), CACHED_SETS);
        assert!(!cache.sets.contains_key(&hash(0)));
        assert!(cache.sets.contains_key(&hash(1)));
        assert!(cache.sets.contains_key(&hash(CACHED_SETS)));
    }

    #[test]
    fn address_arrays_decode_and_bad_answers_are_errors() {
        let mut out = vec![0u8; 32];
        out[31] = 0x20;
        let mut len = [0u8; 32];
        len[31] = 2;
        out.extend(len);
        for b in [0x11u8, 0x22] {
            let mut w = [0u8; 32];
            w[12..].copy_from_slice(&[b; 20]);
            out.extend(w);
        }
        assert_eq!(
            decode_addresses(&out),
            Ok(vec![Address::repeat_byte(0x11), Address::repeat_byte(0x22)])
        );
        assert!(decode_addresses(&out[..out.len() - 1]).is_err());
        assert!(decode_addresses(&[]).is_err());
        let mut huge = out.clone();
        huge[32..64].copy_from_slice(&[0xff; 32]);
        assert!(decode_addresses(&huge).is_err());
    }
}
