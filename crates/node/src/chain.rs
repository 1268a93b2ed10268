//! Building, checking and importing QBFT blocks on top of the stored head.

use crate::metrics::ChainMetrics;
use crate::validators::{ValidatorError, ValidatorSet, ValidatorSets};
use alloy_primitives::{Address, Bytes, B256, U256};
use consort_chainspec::{Genesis, Hardfork};
use consort_evm::{
    execute_block, recover_missing_senders, ExecutedBlock, ExecutionError, ExecutionMode,
};
use consort_metrics::trace::{Scope, Span};
use consort_permissioning::{Permissions, Purpose, TxFacts};
use consort_primitives::{
    bft_onchain_hash, commit_seal_digest, recover_commit_seal_signer, Header, QbftExtraData,
    TxEnvelope, EMPTY_OMMER_ROOT_HASH, EMPTY_REQUESTS_HASH, EMPTY_ROOT_HASH, QBFT_MIX_HASH,
};
use consort_qbft::{quorum, Block, PendingVotes};
use consort_storage::{PreparedState, StorageError, Store};
use consort_txpool::TxPool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Why a block could not be built or imported.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Execution failed.
    #[error(transparent)]
    Execution(#[from] ExecutionError),
    /// The validator set could not be found.
    #[error(transparent)]
    Validators(#[from] ValidatorError),
    /// The block breaks a header or consensus rule.
    #[error("invalid block {number}: {reason}")]
    Invalid {
        /// Its number.
        number: u64,
        /// The rule it breaks.
        reason: String,
    },
}

/// A block executed on the current head, ready to commit once sealed.
#[derive(Debug)]
pub struct ExecutedProposal {
    /// The commit-seal digest of the unsealed block (identifies it whatever the seals).
    pub digest: B256,
    /// Receipts to store.
    pub executed: ExecutedBlock,
    /// State writes to store.
    pub prepared: PreparedState,
    /// How long the block took to execute and to get its state root.
    pub execution_time: std::time::Duration,
}

/// The chain as the consensus driver sees it.
#[derive(Debug, Clone)]
pub struct Chain {
    /// The database.
    pub store: Arc<Store>,
    /// The genesis configuration.
    pub genesis: Arc<Genesis>,
    /// Block metrics.
    pub metrics: ChainMetrics,
    /// Who may transact; nobody is refused when `None`.
    pub permissions: Option<Arc<Permissions>>,
    /// The validator set of each block.
    pub validators: Arc<ValidatorSets>,
    /// The votes this validator was asked to cast (`qbft_proposeValidatorVote`).
    pub votes: Arc<Mutex<PendingVotes>>,
    /// The pool whose recovered senders a checked block reuses for the transactions it holds
    /// (gossip brought them first), so each signature is recovered once per node.
    pub known_senders: Option<Arc<Mutex<TxPool>>>,
}

/// The validators recorded in a block's extraData, sorted (block-header validator mode).
pub fn validators_of(header: &Header) -> Vec<Address> {
    let mut v = QbftExtraData::decode(&header.extra_data)
        .map(|e| e.validators)
        .unwrap_or_default();
    v.sort();
    v
}

impl Chain {
    /// The chain in `store`, with no pending votes.
    pub fn new(
        store: Arc<Store>,
        genesis: Arc<Genesis>,
        metrics: ChainMetrics,
        permissions: Option<Arc<Permissions>>,
    ) -> Self {
        Chain {
            validators: Arc::new(ValidatorSets::new(store.clone(), genesis.clone())),
            votes: Arc::default(),
            store,
            genesis,
            metrics,
            permissions,
            known_senders: None,
        }
    }

    /// The validator set of the block after `parent`.
    pub fn set_after(&self, parent: &Header) -> Result<Arc<ValidatorSet>, ChainError> {
        Ok(self.validators.after(parent)?)
    }

    /// The validators of the block after `parent`, sorted; none (so no quorum and no block)
    /// if they cannot be found.
    pub fn validators_after(&self, parent: &Header) -> Vec<Address> {
        match self.validators.after(parent) {
            Ok(set) => set.validators(),
            Err(e) => {
                tracing::error!("validators after block {}: {e}", parent.number);
                Vec::new()
            }
        }
    }

    fn fork(&self, number: u64, timestamp: u64) -> Hardfork {
        self.genesis.forks.active_at(number, timestamp)
    }

    /// The extraData of a block in `round` whose validators are `set`: in contract mode no
    /// validators and no vote.
    fn extra_for(
        set: &ValidatorSet,
        round: u32,
        vote: Option<consort_primitives::Vote>,
    ) -> QbftExtraData {
        let validators = match set {
            ValidatorSet::Header(t) => t.validators(),
            ValidatorSet::Contract(_) => Vec::new(),
        };
        QbftExtraData {
            vanity: Bytes::from(vec![0u8; 32]),
            validators,
            vote: vote.filter(|_| set.tally().is_some()),
            round,
            seals: vec![],
        }
    }

    /// The header of a new block on `parent`, before execution fills in roots and gas.
    fn template(
        &self,
        parent: &Header,
        parent_hash: B256,
        coinbase: Address,
        timestamp: u64,
        extra: QbftExtraData,
    ) -> Header {
        let number = parent.number.saturating_add(1);
        let fork = self.fork(number, timestamp);
        let cancun = fork >= Hardfork::Cancun;
        Header {
            parent_hash,
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: coinbase,
            difficulty: U256::from(1),
            number,
            gas_limit: parent.gas_limit,
            timestamp,
            extra_data: extra.encode(),
            mix_hash: QBFT_MIX_HASH,
            base_fee_per_gas: self.genesis.child_base_fee(parent, timestamp),
            withdrawals_root: (fork >= Hardfork::Shanghai).then_some(EMPTY_ROOT_HASH),
            blob_gas_used: cancun.then_some(0),
            excess_blob_gas: cancun.then_some(0),
            parent_beacon_block_root: cancun.then_some(B256::ZERO),
            requests_hash: (fork >= Hardfork::Prague).then_some(EMPTY_REQUESTS_HASH),
            ..Header::default()
        }
    }

    /// Builds a block for `round` on the head `parent` from `candidates` (best first), executing
    /// it and preparing its state. Transactions that fail or do not fit are left out.
    pub fn build(
        &self,
        parent: &Header,
        parent_hash: B256,
        round: u32,
        coinbase: Address,
        timestamp: u64,
        candidates: Vec<(TxEnvelope, Address)>,
    ) -> Result<(Block, ExecutedProposal), ChainError> {
        let start = Instant::now();
        let mut span = Span::in_current(Scope::Blocks, "buildBlock");
        span.set("block.number", parent.number.saturating_add(1));
        span.set("qbft.round", round);
        let _entered = span.enter();
        let set = self.set_after(parent)?;
        let vote = match (set.tally(), self.votes.lock()) {
            (Some(tally), Ok(mut votes)) => votes.next_vote(&coinbase, tally),
            _ => None,
        };
        let extra = Self::extra_for(&set, round, vote);
        let mut header = self.template(parent, parent_hash, coinbase, timestamp, extra);
        let (txs, senders): (Vec<_>, Vec<_>) = candidates
            .into_iter()
            .filter(|(tx, sender)| self.may_build_with(parent, tx, *sender))
            .unzip();
        let exec_start = Instant::now();
        let execution = execution_span(txs.len());
        let executed = execute_block(
            &self.store,
            &self.genesis,
            &header,
            txs,
            senders,
            ExecutionMode::Build,
        )?;
        drop(execution);
        span.set("block.transactions", executed.transactions.len());
        self.metrics
            .execution_time
            .observe(exec_start.elapsed().as_secs_f64());
        let (block, proposal) = self.finish(&mut header, executed, exec_start)?;
        self.metrics
            .build_time
            .observe(start.elapsed().as_secs_f64());
        Ok((block, proposal))
    }

    fn finish(
        &self,
        header: &mut Header,
        executed: ExecutedBlock,
        exec_start: Instant,
    ) -> Result<(Block, ExecutedProposal), ChainError> {
        header.transactions_root = executed.transactions_root;
        header.receipts_root = executed.receipts_root;
        header.logs_bloom = executed.logs_bloom;
        header.gas_used = executed.gas_used;
        let root_start = Instant::now();
        let root_span = Span::in_current(Scope::Blocks, "calculateStateRoot");
        let prepared = self.store.prepare_state(&executed.changes)?;
        drop(root_span);
        self.metrics
            .state_root_time
            .observe(root_start.elapsed().as_secs_f64());
        header.state_root = prepared.state_root;
        let digest = commit_seal_digest(header).map_err(|e| ChainError::Invalid {
            number: header.number,
            reason: e.to_string(),
        })?;
        let block = Block {
            header: header.clone(),
            body: alloy_consensus::BlockBody {
                transactions: executed.transactions.clone(),
                ommers: vec![],
                withdrawals: header.withdrawals_root.map(|_| Default::default()),
            },
        };
        Ok((
            block,
            ExecutedProposal {
                digest,
                executed,
                prepared,
                execution_time: exec_start.elapsed(),
            },
        ))
    }

    /// Validates a proposed block's header against its parent and executes it, checking every
    /// root. Seals are not checked (a proposal has none). `now` (Unix seconds) bounds the
    /// timestamp from above.
    pub fn check(&self, block: &Block, now: u64) -> Result<ExecutedProposal, ChainError> {
        let mut span = Span::in_current(Scope::Blocks, "checkBlock");
        span.set("block.number", block.header.number);
        span.set("block.transactions", block.body.transactions.len());
        let _entered = span.enter();
        let (parent_number, parent_hash) = self.store.head()?.unwrap_or_default();
        let parent = self.store.head_header()?;
        let h = &block.header;
        let invalid = |reason: String| ChainError::Invalid {
            number: h.number,
            reason,
        };
        if h.number != parent_number.saturating_add(1) || h.parent_hash != parent_hash {
            return Err(invalid("not a child of the head".into()));
        }
        let period = self
            .genesis
            .qbft
            .as_ref()
            .map_or(0, |q| q.params_at(h.number).min_timestamp_gap());
        if h.timestamp < parent.timestamp.saturating_add(period) {
            return Err(invalid(format!(
                "timestamp {} is less than {period}s after the parent's",
                h.timestamp
            )));
        }
        if h.timestamp > now.saturating_add(1) {
            return Err(invalid(format!(
                "timestamp {} is in the future (now {now})",
                h.timestamp
            )));
        }
        if !block.body.ommers.is_empty()
            || block
                .body
                .withdrawals
                .as_ref()
                .is_some_and(|w| !w.is_empty())
        {
            return Err(invalid("a QBFT block has no ommers or withdrawals".into()));
        }
        if h.mix_hash != QBFT_MIX_HASH
            || h.difficulty != U256::from(1)
            || h.ommers_hash != EMPTY_OMMER_ROOT_HASH
        {
            return Err(invalid(
                "mixHash, difficulty or ommers are not QBFT's".into(),
            ));
        }
        // Ethereum's gas limit rule: within 1/1024 of the parent's, at least 5,000.
        let gas_limit_ok = h.gas_limit == parent.gas_limit
            || (h.gas_limit.abs_diff(parent.gas_limit) < parent.gas_limit / 1024
                && h.gas_limit >= 5_000);
        if !gas_limit_ok || h.gas_used > h.gas_limit {
            return Err(invalid(format!(
                "gas limit {} is out of range of the parent's {} or gas used {} exceeds it",
                h.gas_limit, parent.gas_limit, h.gas_used
            )));
        }
        // As written, not sorted: Besu requires the list in ascending order. Only the
        // canonical encoding: the hashes re-encode extraData, so other bytes would be stored
        // under a hash that does not cover them.
        let extra = QbftExtraData::decode_canonical(&h.extra_data)
            .map_err(|e| invalid(format!("extraData: {e}")))?;
        let set = self.set_after(&parent)?;
        let validators = set.validators();
        match &*set {
            ValidatorSet::Header(_) if extra.validators != validators => {
                return Err(invalid(
                    "validators differ from those the votes give or are not sorted".into(),
                ));
            }
            ValidatorSet::Contract(_) if !extra.validators.is_empty() || extra.vote.is_some() => {
                return Err(invalid(
                    "a block in validator-contract mode lists validators or carries a vote".into(),
                ));
            }
            _ => {}
        }
        if !validators.contains(&h.beneficiary) {
            return Err(invalid(format!(
                "coinbase {} is not a validator",
                h.beneficiary
            )));
        }
        let mut expected = self.template(
            &parent,
            parent_hash,
            h.beneficiary,
            h.timestamp,
            Self::extra_for(&set, 0, None),
        );
        expected.extra_data = h.extra_data.clone();
        expected.gas_limit = h.gas_limit;
        let txs = block.body.transactions.clone();
        let known = match self.known_senders.as_ref().map(|pool| pool.lock()) {
            Some(Ok(pool)) => pool.known_senders(&txs),
            _ => Vec::new(),
        };
        let senders = recover_missing_senders(&txs, &known)?;
        self.check_senders(&parent, &txs, &senders)?;
        let exec_start = Instant::now();
        let execution = execution_span(txs.len());
        let executed = execute_block(
            &self.store,
            &self.genesis,
            &expected,
            txs,
            senders,
            ExecutionMode::Import,
        )?;
        drop(execution);
        self.metrics
            .execution_time
            .observe(exec_start.elapsed().as_secs_f64());
        let (rebuilt, proposal) = self.finish(&mut expected, executed, exec_start)?;
        if rebuilt.header != *h {
            return Err(invalid(
                "header does not match its execution (roots, gas, base fee or fork fields)".into(),
            ));
        }
        Ok(proposal)
    }

    /// Whether this node may put `tx` in a block on `parent` (every account rule, local and
    /// contract, on the parent's state).
    fn may_build_with(&self, parent: &Header, tx: &TxEnvelope, sender: Address) -> bool {
        let Some(permissions) = &self.permissions else {
            return true;
        };
        match permissions.check_transaction(&TxFacts::of(tx, sender), Purpose::Build, parent) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(hash = %tx.tx_hash(), "left out of the block: {e}");
                false
            }
        }
    }

    /// Refuses a block with a transaction the account contract forbids on the state of its
    /// parent: the chain's rules when the transaction ran, so a node syncing old blocks judges
    /// them as their validators did. Local allowlists are this node's own and do not apply.
    fn check_senders(
        &self,
        parent: &Header,
        txs: &[TxEnvelope],
        senders: &[Address],
    ) -> Result<(), ChainError> {
        let Some(permissions) = self
            .permissions
            .as_ref()
            .filter(|p| p.import_rules_enabled())
        else {
            return Ok(());
        };
        for (index, (tx, sender)) in txs.iter().zip(senders).enumerate() {
            let facts = TxFacts::of(tx, *sender);
            if let Err(e) = permissions.check_transaction(&facts, Purpose::Import, parent) {
                return Err(ChainError::Invalid {
                    number: parent.number.saturating_add(1),
                    reason: format!("transaction {index} ({}): {e}", tx.tx_hash()),
                });
            }
        }
        Ok(())
    }

    /// Whether committing `proposal` on the head may change who may connect.
    pub fn node_rules_changed(&self, proposal: &ExecutedProposal) -> bool {
        let Some(permissions) = &self.permissions else {
            return false;
        };
        let Ok(parent) = self.store.head_header() else {
            return true;
        };
        permissions.node_rules_changed(
            &parent,
            &proposal.executed.receipts,
            &proposal.executed.changes,
        )
    }

    /// Checks a sealed block's seals against the head as its parent.
    pub fn check_seals(&self, block: &Block) -> Result<(), ChainError> {
        let parent = self.store.head_header()?;
        self.check_header_seals(&parent, &block.header)
    }

    /// Checks a sealed header's seals: a quorum of distinct validators of the set after its
    /// (stored) parent.
    pub fn check_header_seals(&self, parent: &Header, h: &Header) -> Result<(), ChainError> {
        let validators = self.set_after(parent)?.validators();
        check_seals_by(&validators, h)
    }

    /// Stores a sealed block whose unsealed form was executed as `proposal`. Returns its hash.
    pub fn commit(&self, block: &Block, proposal: ExecutedProposal) -> Result<B256, ChainError> {
        let start = Instant::now();
        let _span = Span::in_current(Scope::Blocks, "commit");
        let proposal_time = proposal.execution_time;
        self.check_seals(block)?;
        let h = &block.header;
        let hash = bft_onchain_hash(h).map_err(|e| ChainError::Invalid {
            number: h.number,
            reason: e.to_string(),
        })?;
        self.store.commit_block(
            h,
            hash,
            &proposal.executed.transactions,
            &proposal.executed.receipts,
            proposal.prepared,
        )?;
        self.metrics.on_new_head(h, start.elapsed(), proposal_time);
        self.metrics.on_head_receipts(&proposal.executed.receipts);
        Ok(hash)
    }
}

/// The span of a block's execution, under the current one.
fn execution_span(transactions: usize) -> Span {
    let mut span = Span::in_current(Scope::Blocks, "execute");
    span.set("block.transactions", transactions);
    span
}

/// Checks a sealed header's seals: a quorum of distinct members of `validators`.
pub fn check_seals_by(validators: &[Address], h: &Header) -> Result<(), ChainError> {
    let invalid = |reason: String| ChainError::Invalid {
        number: h.number,
        reason,
    };
    let extra = QbftExtraData::decode_canonical(&h.extra_data)
        .map_err(|e| invalid(format!("extraData: {e}")))?;
    let digest = commit_seal_digest(h).map_err(|e| invalid(e.to_string()))?;
    // A quorum of an empty set is zero seals: never accept that.
    if validators.is_empty() {
        return Err(invalid("the parent block names no validators".into()));
    }
    let mut signers = Vec::with_capacity(extra.seals.len());
    for seal in &extra.seals {
        let signer = recover_commit_seal_signer(digest, seal)
            .ok_or_else(|| invalid("unrecoverable commit seal".into()))?;
        if !validators.contains(&signer) || signers.contains(&signer) {
            return Err(invalid(format!(
                "commit seal by {signer} is not from a distinct validator"
            )));
        }
        signers.push(signer);
    }
    if signers.len() < quorum(validators.len()) {
        return Err(invalid(format!(
            "{} commit seals, quorum is {}",
            signers.len(),
            quorum(validators.len())
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{address_of, transfer, DEV_KEY_0, DEV_KEY_1};
    use consort_permissioning::contract::DEFAULT_ACCOUNT_INGRESS;
    use consort_permissioning::genesis::{preload, AllowlistGenesis};
    use consort_permissioning::{ContractReader, PermissioningMetrics, PermissionsConfig};

    /// The dev chain with the allowlist contracts, dev key 0 the admin (the only sender
    /// permitted); a chain that enforces them and one that does not, on one store.
    fn chains() -> (tempfile::TempDir, Chain, Chain) {
        let mut json = dev_genesis();
        preload(
            &mut json,
            &AllowlistGenesis {
                admin: address_of(DEV_KEY_0),
                ..AllowlistGenesis::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (dir, open) = chain_of(&json);
        let registry = consort_metrics::Registry::default();
        let permissions = Permissions::new(
            PermissionsConfig {
                accounts_contract: Some(DEFAULT_ACCOUNT_INGRESS),
                ..PermissionsConfig::default()
            },
            ContractReader {
                store: open.store.clone(),
                genesis: open.genesis.clone(),
            },
            PermissioningMetrics::new(&registry).unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let guarded = Chain {
            permissions: Some(Arc::new(permissions)),
            ..open.clone()
        };
        (dir, open, guarded)
    }

    #[test]
    fn a_forbidden_sender_is_left_out_of_a_block_and_a_block_with_it_is_rejected() {
        let (_dir, open, guarded) = chains();
        let parent = open.store.head_header().unwrap_or_else(|e| panic!("{e}"));
        let parent_hash = open
            .store
            .head()
            .ok()
            .flatten()
            .map(|(_, h)| h)
            .unwrap_or_default();
        let validator = validators_of(&parent)[0];
        let chain_id = open.genesis.chain_id;
        let allowed = transfer(DEV_KEY_0, chain_id, 0);
        let forbidden = transfer(DEV_KEY_1, chain_id, 0);
        let candidates = vec![
            (allowed.clone(), address_of(DEV_KEY_0)),
            (forbidden.clone(), address_of(DEV_KEY_1)),
        ];
        let timestamp = parent.timestamp + 10;
        let (honest, _) = guarded
            .build(
                &parent,
                parent_hash,
                0,
                validator,
                timestamp,
                candidates.clone(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(honest.body.transactions, vec![allowed]);
        let (byzantine, _) = open
            .build(&parent, parent_hash, 0, validator, timestamp, candidates)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(byzantine.body.transactions.len(), 2);
        guarded
            .check(&honest, timestamp)
            .unwrap_or_else(|e| panic!("the honest block: {e}"));
        let err = guarded
            .check(&byzantine, timestamp)
            .expect_err("a block with a forbidden sender was accepted");
        assert!(
            err.to_string().contains("is not on the Account Allowlist"),
            "{err}"
        );
        // Without the rules, the same block is valid: the refusal is the permission check's.
        open.check(&byzantine, timestamp)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// A chain over a fresh store holding `genesis` (JSON).
    fn chain_of(json: &serde_json::Value) -> (tempfile::TempDir, Chain) {
        let genesis =
            Arc::new(Genesis::from_json(&json.to_string()).unwrap_or_else(|e| panic!("{e}")));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Arc::new(
            Store::open(dir.path(), consort_storage::StoreOptions::default())
                .unwrap_or_else(|e| panic!("{e}")),
        );
        consort_evm::init_genesis(&store, &genesis).unwrap_or_else(|e| panic!("{e}"));
        let registry = consort_metrics::Registry::default();
        let metrics = ChainMetrics::new(&registry).unwrap_or_else(|e| panic!("{e}"));
        (dir, Chain::new(store, genesis, metrics, None))
    }

    fn dev_genesis() -> serde_json::Value {
        serde_json::from_str(crate::DEV_GENESIS).unwrap_or_else(|e| panic!("{e}"))
    }

    fn dev_validator_key() -> secp256k1::SecretKey {
        let bytes = hex::decode(crate::DEV_VALIDATOR_KEY.trim().trim_start_matches("0x"))
            .unwrap_or_else(|e| panic!("{e}"));
        secp256k1::SecretKey::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"))
    }

    fn head_of(chain: &Chain) -> (Header, B256) {
        let header = chain.store.head_header().unwrap_or_else(|e| panic!("{e}"));
        let hash = chain.store.head().ok().flatten().map(|(_, h)| h);
        (header, hash.unwrap_or_default())
    }

    /// `block` with its extraData changed by `f`.
    fn with_extra(block: &Block, f: impl FnOnce(&mut QbftExtraData)) -> Block {
        let mut extra =
            QbftExtraData::decode(&block.header.extra_data).unwrap_or_else(|e| panic!("{e}"));
        f(&mut extra);
        let mut out = block.clone();
        out.header.extra_data = extra.encode();
        out
    }

    fn refused(chain: &Chain, block: &Block, now: u64, why: &str) {
        let err = chain
            .check(block, now)
            .map(|_| ())
            .expect_err("a block breaking the validator rules was accepted");
        assert!(err.to_string().contains(why), "{err}");
    }

    #[test]
    fn a_header_vote_counts_and_a_validator_list_other_than_the_tallys_is_refused() {
        let (_dir, chain) = chain_of(&dev_genesis());
        let key = dev_validator_key();
        let validator =
            consort_primitives::public_key_address(&key.public_key(secp256k1::SECP256K1));
        let subject = Address::repeat_byte(0x55);
        chain
            .votes
            .lock()
            .unwrap_or_else(|e| panic!("{e}"))
            .propose(subject, true);
        let (parent, parent_hash) = head_of(&chain);
        let now = parent.timestamp + 10;
        let (block, proposal) = chain
            .build(&parent, parent_hash, 0, validator, now, vec![])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            QbftExtraData::decode(&block.header.extra_data)
                .ok()
                .and_then(|e| e.vote),
            Some(consort_primitives::Vote {
                recipient: subject,
                add: true
            })
        );
        for wrong in [vec![], vec![subject], vec![validator, subject]] {
            let bad = with_extra(&block, |e| e.validators = wrong);
            refused(&chain, &bad, now, "validators differ");
        }
        chain.check(&block, now).unwrap_or_else(|e| panic!("{e}"));
        let digest = commit_seal_digest(&block.header).unwrap_or_else(|e| panic!("{e}"));
        let sealed = with_extra(&block, |e| {
            e.seals = vec![consort_primitives::sign_commit_seal(digest, &key)]
        });
        chain
            .commit(&sealed, proposal)
            .unwrap_or_else(|e| panic!("{e}"));

        // The only validator's vote is a majority: the subject validates the next block,
        // which must list both, sorted.
        let (head, head_hash) = head_of(&chain);
        let mut both = vec![validator, subject];
        both.sort();
        assert_eq!(chain.validators_after(&head), both);
        let now = head.timestamp + 10;
        let (next, _) = chain
            .build(&head, head_hash, 0, validator, now, vec![])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(validators_of(&next.header), both);
        chain.check(&next, now).unwrap_or_else(|e| panic!("{e}"));
        let stale = with_extra(&next, |e| e.validators = vec![validator]);
        refused(&chain, &stale, now, "validators differ");
        let unsorted = with_extra(&next, |e| e.validators.reverse());
        refused(&chain, &unsorted, now, "not sorted");
    }

    #[test]
    fn a_contract_mode_block_listing_validators_or_carrying_a_vote_is_refused() {
        let key = dev_validator_key();
        let validator =
            consort_primitives::public_key_address(&key.public_key(secp256k1::SECP256K1));
        let artifact: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../genesis/validator-contract/artifacts/MinimalValidatorSet.json"
            ))
            .unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let contract = Address::with_last_byte(0x77);
        let mut json = dev_genesis();
        json["config"]["qbft"]["validatorcontractaddress"] = format!("{contract:#x}").into();
        let element = format!(
            "{:#x}",
            U256::from_be_bytes(consort_primitives::keccak256([0u8; 32]).0)
        );
        json["alloc"][format!("{contract:#x}")] = serde_json::json!({
            "balance": "0x0",
            "code": artifact["deployedBytecode"],
            "storage": {
                format!("{:#066x}", U256::ZERO): format!("{:#066x}", U256::from(1)),
                element: format!("{:#066x}", U256::from_be_slice(validator.as_slice())),
            },
        });
        let (_dir, chain) = chain_of(&json);
        chain
            .votes
            .lock()
            .unwrap_or_else(|e| panic!("{e}"))
            .propose(Address::repeat_byte(0x55), true);
        let (parent, parent_hash) = head_of(&chain);
        assert_eq!(chain.validators_after(&parent), vec![validator]);
        let now = parent.timestamp + 10;
        let (block, _) = chain
            .build(&parent, parent_hash, 0, validator, now, vec![])
            .unwrap_or_else(|e| panic!("{e}"));
        let extra =
            QbftExtraData::decode(&block.header.extra_data).unwrap_or_else(|e| panic!("{e}"));
        assert!(extra.validators.is_empty() && extra.vote.is_none());
        chain.check(&block, now).unwrap_or_else(|e| panic!("{e}"));
        let listing = with_extra(&block, |e| e.validators = vec![validator]);
        refused(&chain, &listing, now, "validator-contract mode");
        let voting = with_extra(&block, |e| {
            e.vote = Some(consort_primitives::Vote {
                recipient: Address::repeat_byte(0x55),
                add: true,
            })
        });
        refused(&chain, &voting, now, "validator-contract mode");
        // A proposer the contract does not list is refused too.
        let (stranger, _) = chain
            .build(
                &parent,
                parent_hash,
                0,
                Address::repeat_byte(0x66),
                now,
                vec![],
            )
            .unwrap_or_else(|e| panic!("{e}"));
        refused(&chain, &stranger, now, "is not a validator");
    }
}
