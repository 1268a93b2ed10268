//! The pool itself: per-sender nonce queues, bounds, replacement and ordering.

use crate::PoolError;
use alloy_consensus::Transaction;
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, U256};
use consort_chainspec::Hardfork;
use consort_evm::{validate_transaction, ValidTransaction};
use consort_primitives::TxEnvelope;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

/// Reads the head state the pool validates against.
pub trait AccountState {
    /// The account's nonce and balance (zero for an absent account).
    fn nonce_and_balance(&self, address: &Address) -> Result<(u64, U256), String>;
}

/// The pool's bounds and price rules. Each is a named limit with a test.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Most transactions in the pool (Besu `--tx-pool-max-size`).
    pub max_transactions: usize,
    /// Most transactions from one sender (Besu `--tx-pool-limit-by-account-percentage` of
    /// `max_transactions`).
    pub max_per_sender: usize,
    /// Most bytes of encoded transactions from one sender (the same percentage of
    /// `max_pool_bytes`), so that one sender's large transactions cannot take the pool.
    pub max_bytes_per_sender: usize,
    /// How far past a sender's next executable nonce a queued transaction may be
    /// (Besu `--tx-pool-max-future-by-sender`).
    pub max_future_by_sender: u64,
    /// How much more (in percent) a replacement must pay (Besu `--tx-pool-price-bump`).
    pub price_bump_percent: u128,
    /// Least gas price (max fee per gas) accepted, in wei (`--min-gas-price`).
    pub min_gas_price: u128,
    /// Largest encoded transaction accepted, in bytes.
    pub max_transaction_bytes: usize,
    /// Most bytes of encoded transactions held in all (Besu `--tx-pool-layer-max-capacity`).
    pub max_pool_bytes: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_transactions: 16_384,
            max_per_sender: 8_192,
            max_bytes_per_sender: 12_500_000,
            max_future_by_sender: 200,
            price_bump_percent: 10,
            min_gas_price: 1_000,
            max_transaction_bytes: 128 * 1024,
            max_pool_bytes: 25_000_000,
        }
    }
}

/// What the pool needs to know about the chain head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadContext {
    /// The chain id transactions must be signed for.
    pub chain_id: u64,
    /// The fork of the next block.
    pub fork: Hardfork,
    /// The next block's base fee (None before London).
    pub base_fee: Option<u64>,
    /// The next block's gas limit.
    pub block_gas_limit: u64,
}

/// The checks a transaction passes before it takes the pool's lock: type, size, chain id,
/// intrinsic gas and signature, none of which need the pool or the state. Recovering the
/// sender is the costly part of admitting a transaction, so callers run it outside the lock
/// ([`crate::submit_transaction`]), on as many threads as submit at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxRules {
    fork: Hardfork,
    chain_id: u64,
    max_transaction_bytes: usize,
}

/// A transaction that passed [`TxRules::check`], with its sender.
#[derive(Debug)]
pub struct CheckedTransaction {
    valid: ValidTransaction,
    hash: B256,
    size: usize,
    rules: TxRules,
}

impl TxRules {
    /// Decodes an EIP-2718 transaction no larger than the pool takes.
    pub fn decode(&self, raw: &[u8]) -> Result<TxEnvelope, PoolError> {
        if raw.len() > self.max_transaction_bytes {
            return Err(PoolError::Oversized {
                size: raw.len(),
                limit: self.max_transaction_bytes,
            });
        }
        let mut buf = raw;
        let tx = <TxEnvelope as alloy_eips::eip2718::Decodable2718>::decode_2718(&mut buf)
            .map_err(|e| PoolError::Decode(e.to_string()))?;
        if !buf.is_empty() {
            return Err(PoolError::Decode(format!("{} trailing bytes", buf.len())));
        }
        Ok(tx)
    }

    /// Checks a decoded transaction and recovers its sender.
    pub fn check(&self, tx: TxEnvelope) -> Result<CheckedTransaction, PoolError> {
        let size = tx.encode_2718_len();
        if size > self.max_transaction_bytes {
            return Err(PoolError::Oversized {
                size,
                limit: self.max_transaction_bytes,
            });
        }
        if matches!(tx, TxEnvelope::Eip4844(_)) {
            return Err(PoolError::TypeNotSupported(
                "blob transactions are not accepted on this chain".into(),
            ));
        }
        let hash = *tx.tx_hash();
        let valid = validate_transaction(tx, self.fork, self.chain_id)?;
        Ok(CheckedTransaction {
            valid,
            hash,
            size,
            rules: *self,
        })
    }
}

/// A validated transaction held by the pool.
#[derive(Debug)]
pub struct PooledTransaction {
    /// The transaction.
    pub tx: TxEnvelope,
    /// Its hash.
    pub hash: B256,
    /// Its recovered sender.
    pub sender: Address,
    /// Its encoded size.
    pub size: usize,
    /// Arrival order, which breaks ties between equal tips.
    arrival: u64,
}

impl PooledTransaction {
    /// The transaction's nonce.
    pub fn nonce(&self) -> u64 {
        self.tx.nonce()
    }

    /// The most the sender can pay: gas limit × max fee per gas + value.
    fn max_cost(&self) -> U256 {
        U256::from(self.tx.gas_limit())
            .saturating_mul(U256::from(self.tx.max_fee_per_gas()))
            .saturating_add(self.tx.value())
    }

    /// The tip per gas paid at `base_fee`, or None if the fee cap is below it.
    fn tip(&self, base_fee: Option<u64>) -> Option<u128> {
        self.tx.effective_tip_per_gas(base_fee.unwrap_or(0))
    }
}

/// One sender's transactions, keyed by nonce.
#[derive(Debug, Default)]
struct SenderQueue {
    /// The account nonce in the head state.
    state_nonce: u64,
    /// The balance in the head state.
    balance: U256,
    txs: BTreeMap<u64, Arc<PooledTransaction>>,
    /// Encoded bytes of `txs`.
    bytes: usize,
    /// How many transactions starting at `state_nonce` are contiguous (executable in order).
    pending: usize,
}

impl SenderQueue {
    fn recount(&mut self) {
        let mut next = self.state_nonce;
        let mut pending = 0;
        for nonce in self.txs.range(self.state_nonce..).map(|(n, _)| *n) {
            if nonce != next {
                break;
            }
            pending += 1;
            next = next.saturating_add(1);
        }
        self.pending = pending;
    }

    /// The nonce after the last pending transaction.
    fn next_nonce(&self) -> u64 {
        self.state_nonce.saturating_add(self.pending as u64)
    }

    fn is_pending(&self, nonce: u64) -> bool {
        nonce >= self.state_nonce && nonce < self.next_nonce()
    }
}

/// Counts for `txpool_status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Executable transactions.
    pub pending: usize,
    /// Transactions waiting for a lower nonce.
    pub queued: usize,
}

/// The pool's contents for `txpool_content`: sender → nonce → transaction.
pub type PoolContent = BTreeMap<Address, BTreeMap<u64, Arc<PooledTransaction>>>;

/// The transaction pool. Not thread-safe by itself; the node wraps it in a lock.
#[derive(Debug)]
pub struct TxPool {
    config: PoolConfig,
    head: HeadContext,
    senders: HashMap<Address, SenderQueue>,
    by_hash: HashMap<B256, (Address, u64)>,
    arrivals: u64,
    bytes: usize,
    admission: Option<Arc<dyn Admission>>,
    removed: Removed,
}

/// Transactions the pool removed to make room or for a better-paying one, since last asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// Replaced by a transaction of the same sender and nonce paying more.
    pub replaced: u64,
    /// Evicted to keep the pool within its bounds.
    pub evicted: u64,
}

/// A rule a valid transaction must also pass to enter the pool: who may transact
/// (permissioning). Asked after the stateless checks, before the sender's state is read.
pub trait Admission: Send + Sync + std::fmt::Debug {
    /// `Ok` to admit `tx` from `sender`; otherwise the refusal.
    fn admit(&self, tx: &TxEnvelope, sender: Address) -> Result<(), PoolError>;
}

impl TxPool {
    /// An empty pool for the chain at `head`.
    pub fn new(config: PoolConfig, head: HeadContext) -> Self {
        TxPool {
            config,
            head,
            senders: HashMap::new(),
            by_hash: HashMap::new(),
            arrivals: 0,
            bytes: 0,
            admission: None,
            removed: Removed::default(),
        }
    }

    /// Puts `admission` between validation and the pool: every transaction added from now on
    /// must pass it.
    pub fn with_admission(mut self, admission: Arc<dyn Admission>) -> Self {
        self.admission = Some(admission);
        self
    }

    /// The pool's configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Number of transactions held.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Bytes of encoded transactions held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Distinct senders with transactions in the pool.
    pub fn sender_count(&self) -> usize {
        self.senders.len()
    }

    /// Pending and queued counts.
    pub fn status(&self) -> PoolStatus {
        let pending: usize = self.senders.values().map(|s| s.pending).sum();
        PoolStatus {
            pending,
            queued: self.len().saturating_sub(pending),
        }
    }

    /// What was replaced and evicted since the last call.
    pub fn take_removed(&mut self) -> Removed {
        std::mem::take(&mut self.removed)
    }

    /// Transactions held, by Besu's type names (`FRONTIER`, `ACCESS_LIST`, `EIP1559`,
    /// `DELEGATE_CODE`), each name present even at zero.
    pub fn count_by_type(&self) -> [(&'static str, usize); 4] {
        let mut counts = [
            ("FRONTIER", 0),
            ("ACCESS_LIST", 0),
            ("EIP1559", 0),
            ("DELEGATE_CODE", 0),
        ];
        for tx in self.senders.values().flat_map(|q| q.txs.values()) {
            let i = match tx.tx {
                TxEnvelope::Legacy(_) => 0,
                TxEnvelope::Eip2930(_) => 1,
                TxEnvelope::Eip7702(_) => 3,
                _ => 2,
            };
            if let Some((_, n)) = counts.get_mut(i) {
                *n += 1;
            }
        }
        counts
    }

    /// A transaction by hash.
    pub fn get(&self, hash: &B256) -> Option<Arc<PooledTransaction>> {
        let (sender, nonce) = self.by_hash.get(hash)?;
        self.senders.get(sender)?.txs.get(nonce).cloned()
    }

    /// The nonce a sender's next transaction should use: the head nonce plus its pending
    /// transactions (`eth_getTransactionCount(addr, "pending")`). None if the pool has nothing
    /// from the sender.
    pub fn pending_nonce(&self, sender: &Address) -> Option<u64> {
        self.senders.get(sender).map(SenderQueue::next_nonce)
    }

    /// Pending and queued transactions by sender and nonce.
    pub fn content(&self) -> (PoolContent, PoolContent) {
        let mut pending = PoolContent::new();
        let mut queued = PoolContent::new();
        for (sender, queue) in &self.senders {
            for (nonce, tx) in &queue.txs {
                let side = if queue.is_pending(*nonce) {
                    &mut pending
                } else {
                    &mut queued
                };
                side.entry(*sender).or_default().insert(*nonce, tx.clone());
            }
        }
        (pending, queued)
    }

    /// Validates a raw EIP-2718 transaction and adds it. Returns its hash.
    pub fn add_raw(
        &mut self,
        raw: &[u8],
        state: &dyn AccountState,
    ) -> Result<Arc<PooledTransaction>, PoolError> {
        // Decoded, then refused if already pooled before its signature is checked.
        let tx = self.rules().decode(raw)?;
        self.add(tx, state)
    }

    /// Validates a decoded transaction and adds it. Returns the pooled transaction.
    pub fn add(
        &mut self,
        tx: TxEnvelope,
        state: &dyn AccountState,
    ) -> Result<Arc<PooledTransaction>, PoolError> {
        if self.by_hash.contains_key(tx.tx_hash()) {
            return Err(PoolError::AlreadyKnown);
        }
        let checked = self.rules().check(tx)?;
        self.add_checked(checked, state)
    }

    /// What a transaction is checked against before it takes the pool's lock.
    pub fn rules(&self) -> TxRules {
        TxRules {
            fork: self.head.fork,
            chain_id: self.head.chain_id,
            max_transaction_bytes: self.config.max_transaction_bytes,
        }
    }

    /// The sender of each of `txs` the pool holds (recovered when it was added), by position.
    pub fn known_senders(&self, txs: &[TxEnvelope]) -> Vec<Option<Address>> {
        txs.iter()
            .map(|tx| self.by_hash.get(tx.tx_hash()).map(|(sender, _)| *sender))
            .collect()
    }

    /// Whether the pool holds the transaction `hash`.
    pub fn contains(&self, hash: &B256) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// Adds a transaction checked by [`TxRules::check`] (checked again if the head's fork or
    /// chain id have changed since), validating what needs the pool and the sender's state.
    pub fn add_checked(
        &mut self,
        checked: CheckedTransaction,
        state: &dyn AccountState,
    ) -> Result<Arc<PooledTransaction>, PoolError> {
        let CheckedTransaction {
            valid,
            hash,
            size,
            rules,
        } = checked;
        if self.by_hash.contains_key(&hash) {
            return Err(PoolError::AlreadyKnown);
        }
        let valid = if rules == self.rules() {
            valid
        } else {
            validate_transaction(valid.tx, self.head.fork, self.head.chain_id)?
        };
        let tx = valid.tx;
        if tx.gas_limit() > self.head.block_gas_limit {
            return Err(PoolError::ExceedsBlockGasLimit);
        }
        if tx.max_fee_per_gas() < self.config.min_gas_price {
            return Err(PoolError::Underpriced {
                price: tx.max_fee_per_gas(),
                minimum: self.config.min_gas_price,
            });
        }
        if let Some(admission) = &self.admission {
            admission.admit(&tx, valid.sender)?;
        }
        self.arrivals = self.arrivals.wrapping_add(1);
        let pooled = Arc::new(PooledTransaction {
            tx,
            hash,
            sender: valid.sender,
            size,
            arrival: self.arrivals,
        });
        let nonce = pooled.nonce();
        let sender = pooled.sender;

        let (state_nonce, balance) = match self.senders.get(&sender) {
            Some(q) => (q.state_nonce, q.balance),
            None => state.nonce_and_balance(&sender).map_err(PoolError::State)?,
        };
        if nonce < state_nonce {
            return Err(PoolError::NonceTooLow {
                next: state_nonce,
                nonce,
            });
        }
        // The sender must be able to pay for all its pooled transactions together (geth's
        // overdraft rule), not each one alone.
        let queue = self.senders.get(&sender);
        let others: U256 = queue.map_or(U256::ZERO, |q| {
            q.txs
                .values()
                .filter(|t| t.nonce() != nonce)
                .fold(U256::ZERO, |acc, t| acc.saturating_add(t.max_cost()))
        });
        let cost = pooled.max_cost();
        if cost.saturating_add(others) > balance {
            return Err(PoolError::InsufficientFunds {
                balance,
                cost: cost.saturating_add(others),
            });
        }
        let replaced = queue.and_then(|q| q.txs.get(&nonce)).cloned();
        if let Some(old) = &replaced {
            if !self.outbids(&pooled, old) {
                return Err(PoolError::ReplacementUnderpriced);
            }
        } else {
            let next = queue.map_or(state_nonce, SenderQueue::next_nonce);
            let limit = self.config.max_future_by_sender;
            if nonce > next && nonce - next > limit {
                return Err(PoolError::NonceTooFarInFuture { next, nonce, limit });
            }
            if queue.map_or(0, |q| q.txs.len()) >= self.config.max_per_sender {
                return Err(PoolError::SenderLimit(self.config.max_per_sender));
            }
        }
        let sender_bytes = queue
            .map_or(0, |q| q.bytes)
            .saturating_sub(replaced.as_ref().map_or(0, |old| old.size))
            .saturating_add(size);
        if sender_bytes > self.config.max_bytes_per_sender {
            return Err(PoolError::SenderBytesLimit(
                self.config.max_bytes_per_sender,
            ));
        }
        // Both bounds hold after the insert, also when a replacement is larger than what it
        // replaces. Evictions are chosen before any is made, so a refusal changes nothing.
        let count = self.len().saturating_add(usize::from(replaced.is_none()));
        let bytes = self
            .bytes
            .saturating_sub(replaced.as_ref().map_or(0, |old| old.size))
            .saturating_add(size);
        for (victim_sender, victim_nonce) in
            self.evictions_for(&pooled, state_nonce, count, bytes)?
        {
            if self.remove_tx(&victim_sender, victim_nonce).is_some() {
                self.removed.evicted += 1;
            }
        }

        let queue = self.senders.entry(sender).or_insert_with(|| SenderQueue {
            state_nonce,
            balance,
            ..SenderQueue::default()
        });
        if let Some(old) = queue.txs.insert(nonce, pooled.clone()) {
            self.removed.replaced += 1;
            self.by_hash.remove(&old.hash);
            self.bytes = self.bytes.saturating_sub(old.size);
            queue.bytes = queue.bytes.saturating_sub(old.size);
        }
        queue.bytes = queue.bytes.saturating_add(size);
        queue.recount();
        self.by_hash.insert(hash, (sender, nonce));
        self.bytes = self.bytes.saturating_add(size);
        Ok(pooled)
    }

    /// Whether `new` pays enough more than `old` (same sender and nonce) to replace it: both its
    /// fee cap and its tip must rise by the price bump.
    fn outbids(&self, new: &PooledTransaction, old: &PooledTransaction) -> bool {
        // Rounded up, and strictly more: a zero tip cannot be "bumped" by repeating it.
        let bump = |v: u128| {
            v.saturating_mul(100 + self.config.price_bump_percent)
                .div_ceil(100)
                .max(v.saturating_add(1))
        };
        let tip = |t: &TxEnvelope| t.max_priority_fee_per_gas().unwrap_or(t.max_fee_per_gas());
        new.tx.max_fee_per_gas() >= bump(old.tx.max_fee_per_gas())
            && tip(&new.tx) >= bump(tip(&old.tx))
    }

    /// The transactions to evict so that the pool, holding `count` transactions of `bytes`
    /// bytes once `incoming` is in, is within its bounds: each time the least valuable evictable
    /// one, the last of some other sender (so no gap opens), queued before pending, then the
    /// lowest tip. Fails if that transaction is worth at least as much as `incoming`.
    fn evictions_for(
        &self,
        incoming: &PooledTransaction,
        incoming_state_nonce: u64,
        mut count: usize,
        mut bytes: usize,
    ) -> Result<Vec<(Address, u64)>, PoolError> {
        let base_fee = self.head.base_fee;
        let score =
            |pending: bool, tx: &PooledTransaction| (pending, tx.tip(base_fee).unwrap_or(0));
        let incoming_pending = match self.senders.get(&incoming.sender) {
            Some(q) => incoming.nonce() <= q.next_nonce(),
            None => incoming.nonce() == incoming_state_nonce,
        };
        let incoming_score = score(incoming_pending, incoming);
        // Transactions already chosen from the tail of each sender.
        let mut taken: HashMap<Address, usize> = HashMap::new();
        let mut victims = Vec::new();
        while count > self.config.max_transactions || bytes > self.config.max_pool_bytes {
            let victim = self
                .senders
                .iter()
                .filter(|(sender, _)| **sender != incoming.sender)
                .filter_map(|(sender, q)| {
                    let skip = taken.get(sender).copied().unwrap_or(0);
                    // Evicting a sender's tail leaves its earlier transactions pending or
                    // queued as they were.
                    let tx = q.txs.values().nth_back(skip)?;
                    Some((score(q.is_pending(tx.nonce()), tx), tx))
                })
                .min_by(|a, b| a.0.cmp(&b.0).then(b.1.arrival.cmp(&a.1.arrival)));
            let Some((victim_score, victim)) = victim else {
                return Err(PoolError::PoolFull);
            };
            if incoming_score <= victim_score {
                return Err(PoolError::PoolFull);
            }
            *taken.entry(victim.sender).or_default() += 1;
            victims.push((victim.sender, victim.nonce()));
            count = count.saturating_sub(1);
            bytes = bytes.saturating_sub(victim.size);
        }
        Ok(victims)
    }

    fn remove_tx(&mut self, sender: &Address, nonce: u64) -> Option<Arc<PooledTransaction>> {
        let queue = self.senders.get_mut(sender)?;
        let tx = queue.txs.remove(&nonce)?;
        queue.bytes = queue.bytes.saturating_sub(tx.size);
        queue.recount();
        if queue.txs.is_empty() {
            self.senders.remove(sender);
        }
        self.by_hash.remove(&tx.hash);
        self.bytes = self.bytes.saturating_sub(tx.size);
        Some(tx)
    }

    /// The executable transactions, best first: at each step the highest effective tip among
    /// every sender's next nonce (earlier arrival breaks ties). Transactions whose fee cap is
    /// below the base fee wait, as do those after them.
    pub fn best_transactions(&self) -> Vec<Arc<PooledTransaction>> {
        #[derive(PartialEq, Eq)]
        struct Candidate {
            tip: u128,
            arrival: u64,
            sender: Address,
            nonce: u64,
        }
        impl Ord for Candidate {
            fn cmp(&self, other: &Self) -> Ordering {
                self.tip
                    .cmp(&other.tip)
                    .then(other.arrival.cmp(&self.arrival))
            }
        }
        impl PartialOrd for Candidate {
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                Some(self.cmp(other))
            }
        }
        let base_fee = self.head.base_fee;
        let candidate = |queue: &SenderQueue, nonce: u64| -> Option<Candidate> {
            if !queue.is_pending(nonce) {
                return None;
            }
            let tx = queue.txs.get(&nonce)?;
            Some(Candidate {
                tip: tx.tip(base_fee)?,
                arrival: tx.arrival,
                sender: tx.sender,
                nonce,
            })
        };
        let mut heap: BinaryHeap<Candidate> = self
            .senders
            .values()
            .filter_map(|q| candidate(q, q.state_nonce))
            .collect();
        let mut out = Vec::with_capacity(self.len());
        while let Some(best) = heap.pop() {
            let Some(queue) = self.senders.get(&best.sender) else {
                continue;
            };
            if let Some(tx) = queue.txs.get(&best.nonce) {
                out.push(tx.clone());
            }
            if let Some(next) = candidate(queue, best.nonce.saturating_add(1)) {
                heap.push(next);
            }
        }
        out
    }

    /// Applies a new chain head: every sender's nonce and balance are re-read, included and
    /// now-invalid transactions dropped. Returns the hashes removed because a block included
    /// them (or another transaction with their nonce) and those removed as no longer valid.
    pub fn on_new_head(
        &mut self,
        head: HeadContext,
        state: &dyn AccountState,
    ) -> (Vec<B256>, Vec<B256>) {
        self.head = head;
        let mut confirmed = Vec::new();
        let mut invalidated = Vec::new();
        let senders: Vec<Address> = self.senders.keys().copied().collect();
        for sender in senders {
            let Ok((nonce, balance)) = state.nonce_and_balance(&sender) else {
                continue;
            };
            let Some(queue) = self.senders.get_mut(&sender) else {
                continue;
            };
            queue.state_nonce = nonce;
            queue.balance = balance;
            let stale: Vec<u64> = queue.txs.range(..nonce).map(|(n, _)| *n).collect();
            let invalid: Vec<u64> = queue
                .txs
                .range(nonce..)
                .filter(|(_, tx)| {
                    tx.max_cost() > balance || tx.tx.gas_limit() > head.block_gas_limit
                })
                .map(|(n, _)| *n)
                .collect();
            for n in stale {
                if let Some(tx) = self.remove_tx(&sender, n) {
                    confirmed.push(tx.hash);
                }
            }
            for n in invalid {
                if let Some(tx) = self.remove_tx(&sender, n) {
                    invalidated.push(tx.hash);
                }
            }
            if let Some(queue) = self.senders.get_mut(&sender) {
                queue.recount();
            }
        }
        (confirmed, invalidated)
    }
}
