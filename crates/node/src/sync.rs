//! Catching up with peers over the request/response protocol: ask every peer for its head,
//! download header ranges from the best one (checking links and each header's commit seals
//! against its parent's validators), download the bodies in chunks from several peers, and
//! import the blocks through the driver, which executes them.
//!
//! Requests are RLP `[kind, start, count]`: kind 0 is Status (answer `[number, hash,
//! genesis]`), 1 Headers (answer `[header, ...]`), 2 Bodies by number (answer
//! `[[tx, ...], ...]`, possibly fewer than asked when large). A body whose transactions root
//! differs from its header's is refused before execution, and the chunk is asked of the
//! best peer instead.

use crate::chain::{check_seals_by, Chain};
use crate::driver::{DriverEvent, DriverSender};
use crate::metrics::QbftMetrics;
use alloy_consensus::proofs::calculate_transaction_root;
use alloy_consensus::BlockBody;
use alloy_primitives::B256;
use alloy_rlp::{Decodable, Encodable, RlpDecodable, RlpEncodable};
use consort_network::{NetworkHandle, PeerId, RequestError};
use consort_primitives::{Header, TxEnvelope};
use consort_qbft::Block;
use consort_rpc::SyncReader;
use consort_storage::BlockReader;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most headers one request returns.
pub const MAX_HEADERS: u64 = 192;
/// Most bodies one request returns.
pub const MAX_BODIES: u64 = 32;
/// A bodies answer stops growing past this many bytes (at least one body is sent).
const SOFT_RESPONSE_BYTES: usize = 8 << 20;
/// Headers downloaded per batch.
const BATCH: u64 = 128;
/// Bodies per request.
const BODY_CHUNK: u64 = 16;
/// How often peers are asked for their head when nothing else prompts it.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

pub(crate) const STATUS: u64 = 0;
pub(crate) const HEADERS: u64 = 1;
const BODIES: u64 = 2;

/// Something that suggests we may be behind.
#[derive(Debug)]
pub enum SyncHint {
    /// A peer connected.
    Peer,
    /// A peer sent something about this height.
    Height(u64),
}

/// Sync progress, written by the syncer and read by the driver (a syncing validator sits
/// rounds out) and by `eth_syncing` through [`SyncReader`].
#[derive(Debug, Default)]
pub struct SyncStatus {
    syncing: AtomicBool,
    starting: AtomicU64,
    highest: AtomicU64,
}

impl SyncStatus {
    /// Catching up began at `starting`, towards `highest`.
    pub fn start(&self, starting: u64, highest: u64) {
        if !self.syncing.swap(true, Ordering::SeqCst) {
            self.starting.store(starting, Ordering::SeqCst);
        }
        self.highest.fetch_max(highest, Ordering::SeqCst);
    }

    /// A peer knows a block at `highest`.
    pub fn saw(&self, highest: u64) {
        self.highest.fetch_max(highest, Ordering::SeqCst);
    }

    /// Caught up.
    pub fn finish(&self) {
        self.syncing.store(false, Ordering::SeqCst);
    }

    /// Whether the node is catching up.
    pub fn is_syncing(&self) -> bool {
        self.syncing.load(Ordering::SeqCst)
    }

    /// `(startingBlock, highestBlock)` while syncing.
    pub fn progress(&self) -> Option<(u64, u64)> {
        self.is_syncing().then(|| {
            (
                self.starting.load(Ordering::SeqCst),
                self.highest.load(Ordering::SeqCst),
            )
        })
    }
}

impl SyncReader for SyncStatus {
    fn progress(&self) -> Option<(u64, u64)> {
        SyncStatus::progress(self)
    }
}

/// A peer's answer to a status request: its head and genesis.
#[derive(Debug, Clone, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub(crate) struct Status {
    pub number: u64,
    pub hash: B256,
    pub genesis: B256,
}

/// Answers a sync request from the chain.
pub(crate) fn serve<B: BlockReader + ?Sized>(store: &B, request: &[u8]) -> Result<Vec<u8>, String> {
    let fields = Vec::<u64>::decode(&mut &*request).map_err(|e| e.to_string())?;
    let (kind, start, count) = match fields.as_slice() {
        [kind] => (*kind, 0, 0),
        [kind, start, count] => (*kind, *start, *count),
        _ => return Err("a request is [kind, start, count]".into()),
    };
    let err = |e: consort_storage::StorageError| e.to_string();
    let mut out = Vec::new();
    match kind {
        STATUS => {
            let (number, hash) = store.head().map_err(err)?.unwrap_or_default();
            let genesis = store.canonical_hash(0).map_err(err)?.unwrap_or_default();
            Status {
                number,
                hash,
                genesis,
            }
            .encode(&mut out);
        }
        HEADERS => {
            let mut headers = Vec::new();
            for n in start..start.saturating_add(count.min(MAX_HEADERS)) {
                match store.header_by_number(n).map_err(err)? {
                    Some(h) => headers.push(h),
                    None => break,
                }
            }
            headers.encode(&mut out);
        }
        BODIES => {
            let mut bodies: Vec<Vec<TxEnvelope>> = Vec::new();
            let mut size = 0;
            for n in start..start.saturating_add(count.min(MAX_BODIES)) {
                let Some(hash) = store.canonical_hash(n).map_err(err)? else {
                    break;
                };
                let txs = store.transactions(&hash).map_err(err)?.unwrap_or_default();
                size += txs.length();
                if size > SOFT_RESPONSE_BYTES && !bodies.is_empty() {
                    break;
                }
                bodies.push(txs);
            }
            bodies.encode(&mut out);
        }
        other => return Err(format!("unknown request kind {other}")),
    }
    Ok(out)
}

fn request(kind: u64, start: u64, count: u64) -> Vec<u8> {
    alloy_rlp::encode(vec![kind, start, count])
}

/// The network as the syncer sees it. The node plugs in libp2p ([`NetworkHandle`]); the
/// simulator its seeded network over other nodes' stores.
pub(crate) trait SyncNetwork {
    /// The connected peers.
    fn peers(&self) -> Vec<PeerId>;
    /// Sends a request and waits for the answer (the network bounds the wait).
    fn request(
        &self,
        peer: PeerId,
        data: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<Vec<u8>, RequestError>>;
    /// Records that a peer sent what it cannot back.
    fn penalise(&self, peer: PeerId, reason: &'static str);
    /// Judges connected peers again (the node rules may have changed).
    fn recheck_peers(&self) {}
}

impl SyncNetwork for NetworkHandle {
    fn peers(&self) -> Vec<PeerId> {
        NetworkHandle::peers(self)
            .into_iter()
            .map(|p| p.peer)
            .collect()
    }

    async fn request(&self, peer: PeerId, data: Vec<u8>) -> Result<Vec<u8>, RequestError> {
        NetworkHandle::request(self, peer, data).await
    }

    fn penalise(&self, peer: PeerId, reason: &'static str) {
        NetworkHandle::penalise(self, peer, reason);
    }

    fn recheck_peers(&self) {
        NetworkHandle::recheck_peers(self);
    }
}

/// Where synced blocks go: the driver, which executes each before committing it.
pub(crate) trait BlockImport {
    /// Imports `block`: whether it was new, or why it was refused; `None` once the driver
    /// has stopped.
    fn import(
        &self,
        block: Block,
    ) -> impl std::future::Future<Output = Option<Result<bool, String>>>;
}

impl BlockImport for DriverSender {
    async fn import(&self, block: Block) -> Option<Result<bool, String>> {
        let (tx, rx) = oneshot::channel();
        if !self
            .send(DriverEvent::ImportBlock(Box::new(block), Some(tx)))
            .await
        {
            return None;
        }
        rx.await.ok()
    }
}

/// Why a sync batch stopped.
#[derive(Debug)]
enum BatchError {
    /// A peer sent what it cannot back (headers that do not link or lack seals, bodies that
    /// do not match, no answer): it is penalised and another peer is tried.
    Peer(PeerId, &'static str, String),
    /// The connection to a peer went away mid-request: another peer is tried, and this one
    /// is not penalised (a restart or a removed peer is no misbehaviour; penalties that
    /// stay with a peer ID would mute an honest validator's gossip once it is back).
    Gone(PeerId, String),
    /// Our side failed (the store, the driver, a sealed block that does not execute here).
    Local(String),
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::Peer(peer, _, e) | BatchError::Gone(peer, e) => {
                write!(f, "peer {peer}: {e}")
            }
            BatchError::Local(e) => f.write_str(e),
        }
    }
}

/// The syncer task.
///
/// A peer's status is a claim that costs it nothing, so it buys nothing until headers back
/// it: the node counts as syncing (and its validator sits rounds out) only once a batch of
/// headers from that peer has been checked to link to our head and carry a quorum of seals,
/// at least two blocks ahead. A peer whose answers fail the checks is penalised (and banned
/// after [`consort_network::PENALTIES_TO_BAN`]) and the next peer is tried, so a liar costs
/// at most one request timeout per round and never stops consensus.
pub(crate) struct Syncer<N, I> {
    pub network: N,
    pub chain: Chain,
    pub driver: I,
    pub status: Arc<SyncStatus>,
    pub metrics: QbftMetrics,
    /// The head we were one block behind at the previous poll.
    pub one_behind: Option<u64>,
    /// When the current catching up began.
    pub sync_started: Option<std::time::Instant>,
}

impl<N: SyncNetwork, I: BlockImport> Syncer<N, I> {
    pub(crate) async fn run(mut self, mut hints: mpsc::Receiver<SyncHint>) {
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        loop {
            tokio::select! {
                hint = hints.recv() => match hint {
                    None => break,
                    Some(SyncHint::Height(h)) => tracing::trace!("a peer points at block {h}"),
                    Some(SyncHint::Peer) => {}
                },
                _ = poll.tick() => {}
            }
            // Hints that piled up meanwhile are covered by this round.
            while hints.try_recv().is_ok() {}
            self.round().await;
        }
    }

    /// Asks `peer` for `count` items of `kind` from `start`, timed under Besu's task names.
    async fn ask(
        &self,
        peer: PeerId,
        kind: u64,
        start: u64,
        count: u64,
    ) -> Result<Vec<u8>, BatchError> {
        let task = match kind {
            STATUS => "GetStatusFromPeerTask",
            HEADERS => "GetHeadersFromPeerTask",
            _ => "GetBodiesFromPeerTask",
        };
        let m = &self.metrics;
        let inflight = m.inflight.with_label_values(&[task]);
        inflight.inc();
        let asked = std::time::Instant::now();
        // The request/response protocol times requests out itself.
        let answer = self
            .network
            .request(peer, request(kind, start, count))
            .await;
        inflight.dec();
        m.request_time
            .with_label_values(&[task])
            .observe_duration(asked.elapsed());
        answer.map_err(|e| match e {
            RequestError::Disconnected(..) => BatchError::Gone(peer, e.to_string()),
            e => {
                m.request_timeouts.with_label_values(&[task]).inc();
                BatchError::Peer(peer, "no answer", e.to_string())
            }
        })
    }

    fn penalise(&self, e: &BatchError) {
        if let BatchError::Peer(peer, reason, _) = e {
            if *reason != "no answer" {
                self.metrics
                    .invalid_responses
                    .with_label_values(&[if reason.contains("bod") {
                        "GetBodiesFromPeerTask"
                    } else {
                        "GetHeadersFromPeerTask"
                    }])
                    .inc();
            }
            self.network.penalise(*peer, reason);
        }
    }

    /// The first time the node has caught up with a peer, the node contract on its state is
    /// the network's: it now decides every connection, not only those to fixed nodes.
    fn rules_synced(&self) {
        if let Some(p) = &self.chain.permissions {
            if p.mark_synced() {
                tracing::info!("caught up with a peer: node permissioning rules now apply to all");
                self.network.recheck_peers();
            }
        }
    }

    /// Peers on our chain and the heads they claim, best first.
    async fn statuses(&self) -> Vec<(PeerId, u64)> {
        let genesis = self
            .chain
            .store
            .canonical_hash(0)
            .ok()
            .flatten()
            .unwrap_or_default();
        let asks = self.network.peers().into_iter().map(|peer| async move {
            let status = match self.ask(peer, STATUS, 0, 0).await {
                Ok(answer) => Status::decode(&mut answer.as_slice())
                    .map_err(|e| BatchError::Peer(peer, "bad status", format!("status: {e}"))),
                Err(e) => Err(e),
            };
            match status {
                Ok(status) => (status.genesis == genesis).then_some((peer, status.number)),
                Err(e) => {
                    tracing::debug!("sync status: {e}");
                    self.penalise(&e);
                    None
                }
            }
        });
        let mut out: Vec<(PeerId, u64)> = futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect();
        out.sort_by_key(|p| std::cmp::Reverse(p.1));
        out
    }

    fn head(&self) -> u64 {
        self.chain.store.head().ok().flatten().map_or(0, |(n, _)| n)
    }

    pub(crate) async fn round(&mut self) {
        let peers = self.statuses().await;
        let head = self.head();
        let best = peers.first().map_or(0, |(_, n)| *n);
        if best <= head {
            if !peers.is_empty() {
                self.rules_synced();
            }
            self.finish();
            return;
        }
        // One block behind is normal for a moment (its gossip may be on the way); behind
        // for two polls, or by more, is not.
        if best == head.saturating_add(1) && self.one_behind != Some(head) {
            self.one_behind = Some(head);
            return;
        }
        // Each peer ahead of us in turn, best claim first, until one backs its claim.
        'peers: for &(source, claim) in &peers {
            loop {
                let head = self.head();
                if claim <= head {
                    break;
                }
                match self.batch(&peers, source, head, claim).await {
                    Ok(_) => {}
                    Err(e @ (BatchError::Peer(..) | BatchError::Gone(..))) => {
                        tracing::warn!("sync after block {head} failed: {e}");
                        self.penalise(&e);
                        continue 'peers;
                    }
                    Err(e @ BatchError::Local(_)) => {
                        tracing::warn!("sync after block {head} failed: {e}");
                        break 'peers;
                    }
                }
            }
        }
        if self.head() >= best {
            self.rules_synced();
        }
        // Syncing lasts while checked headers show us behind; whatever is left unproven by
        // now does not keep the validator out of consensus.
        self.finish();
    }

    fn finish(&mut self) {
        if self.status.is_syncing() {
            tracing::info!("in sync at block {}", self.head());
        }
        self.status.finish();
        if let Some(started) = self.sync_started.take() {
            let took = started.elapsed().as_secs_f64();
            let d = &self.metrics.sync_duration;
            d.with_label_values(&["TOTAL_SYNC_DURATION"]).observe(took);
            d.with_label_values(&["CHAIN_DOWNLOAD_DURATION"])
                .observe(took);
        }
        self.metrics.in_sync.set(1);
        self.one_behind = None;
    }

    /// Downloads, checks and imports up to [`BATCH`] blocks after `head`, headers from
    /// `source`. Returns how many were imported (at least one).
    async fn batch(
        &mut self,
        peers: &[(PeerId, u64)],
        source: PeerId,
        head: u64,
        claim: u64,
    ) -> Result<u64, BatchError> {
        let start = head.saturating_add(1);
        let count = claim.saturating_sub(head).min(BATCH);
        let answer = self.ask(source, HEADERS, start, count).await?;
        let fault = |reason: &'static str, e: String| BatchError::Peer(source, reason, e);
        let headers = Vec::<Header>::decode(&mut answer.as_slice())
            .map_err(|e| fault("bad headers", format!("headers: {e}")))?;
        if headers.is_empty() || headers.len() as u64 > count {
            return Err(fault(
                "bad headers",
                format!("{} headers for {count} after block {head}", headers.len()),
            ));
        }
        self.check_headers(source, head, &headers)?;
        let pipeline = |step: &str, n: usize| {
            self.metrics
                .pipeline
                .with_label_values(&[step, "added"])
                .inc_by(n as u64)
        };
        pipeline("downloadHeaders_outputPipe", headers.len());
        let last = headers.last().map_or(head, |h| h.number);
        // Proven behind: the blocks up to `last` are sealed and extend our chain.
        self.status.saw(last);
        self.chain.metrics.saw_block(last);
        if last > head.saturating_add(1) && !self.status.is_syncing() {
            self.status.start(head, claim.max(last));
            self.sync_started = Some(std::time::Instant::now());
            self.metrics.in_sync.set(0);
            tracing::info!("syncing from block {head} to {claim} (checked up to {last})");
        }

        let this = &*self;
        // Bodies in chunks, spread over the peers that claim them; the source's word is
        // taken where another peer's fails.
        let chunks: Vec<&[Header]> = headers.chunks(BODY_CHUNK as usize).collect();
        let fetches = chunks.iter().enumerate().map(|(i, chunk)| {
            let last = chunk.last().map_or(0, |h| h.number);
            let holders: Vec<PeerId> = peers
                .iter()
                .filter(|(_, n)| *n >= last)
                .map(|(p, _)| *p)
                .collect();
            let peer = holders
                .get(i % holders.len().max(1))
                .copied()
                .unwrap_or(source);
            async move {
                match this.bodies(peer, chunk).await {
                    Ok(b) => Ok(b),
                    Err(e) if peer != source => {
                        this.penalise(&e);
                        this.bodies(source, chunk).await
                    }
                    Err(e) => Err(e),
                }
            }
        });
        let bodies = futures::future::join_all(fetches).await;
        let pipeline = |step: &str, n: usize| {
            this.metrics
                .pipeline
                .with_label_values(&[step, "added"])
                .inc_by(n as u64)
        };
        let mut imported = 0;
        for (chunk, bodies) in chunks.iter().zip(bodies) {
            let bodies = bodies?;
            pipeline("downloadBodies_outputPipe", bodies.len());
            for (header, txs) in chunk.iter().zip(bodies) {
                let block = Block {
                    header: header.clone(),
                    body: BlockBody {
                        transactions: txs,
                        ommers: Vec::new(),
                        withdrawals: header.withdrawals_root.map(|_| Default::default()),
                    },
                };
                let persist = std::time::Instant::now();
                match this.driver.import(block).await {
                    Some(Ok(_)) => {
                        imported += 1;
                        pipeline("importBlock_outputPipe", 1);
                        this.metrics
                            .sync_task
                            .with_label_values(&["PersistBlockTask"])
                            .observe_duration(persist.elapsed());
                        this.metrics.synced_blocks.inc();
                    }
                    // Sealed by a quorum and matching its header, yet refused here.
                    Some(Err(e)) => {
                        return Err(BatchError::Local(format!("block {}: {e}", header.number)))
                    }
                    None => return Err(BatchError::Local("the node is stopping".into())),
                }
            }
        }
        Ok(imported)
    }

    /// Each header links to the one before (the first to our head) and carries a quorum of
    /// seals from its parent's validators.
    fn check_headers(
        &self,
        source: PeerId,
        head: u64,
        headers: &[Header],
    ) -> Result<(), BatchError> {
        let store = &self.chain.store;
        let local = |e: String| BatchError::Local(e);
        let mut parent = store
            .header_by_number(head)
            .map_err(|e| local(e.to_string()))?
            .ok_or_else(|| local("local head header missing".into()))?;
        let mut parent_hash = store
            .canonical_hash(head)
            .map_err(|e| local(e.to_string()))?
            .unwrap_or_default();
        let mut set = Some(
            self.chain
                .set_after(&parent)
                .map_err(|e| local(e.to_string()))?
                .as_ref()
                .clone(),
        );
        for h in headers {
            if h.number != parent.number.saturating_add(1) || h.parent_hash != parent_hash {
                return Err(BatchError::Peer(
                    source,
                    "unlinked headers",
                    format!(
                        "header {} does not link to our block {}",
                        h.number, parent.number
                    ),
                ));
            }
            if let Some(set) = &set {
                check_seals_by(&set.validators(), h)
                    .map_err(|e| BatchError::Peer(source, "unsealed headers", e.to_string()))?;
            }
            // The set after a header not yet stored follows from its parent's in block-header
            // mode; in contract mode it needs that header's state, so the seals from there on
            // are checked on import instead.
            set = match set {
                Some(prev) => self
                    .chain
                    .validators
                    .next(&prev, h)
                    .map_err(|e| local(e.to_string()))?,
                None => None,
            };
            parent_hash = consort_primitives::bft_onchain_hash(h)
                .map_err(|e| BatchError::Peer(source, "unsealed headers", e.to_string()))?;
            parent = h.clone();
        }
        Ok(())
    }

    /// The bodies of `chunk` from `peer`, asking again for the rest when an answer is partial.
    async fn bodies(
        &self,
        peer: PeerId,
        chunk: &[Header],
    ) -> Result<Vec<Vec<TxEnvelope>>, BatchError> {
        let fault = |e: String| BatchError::Peer(peer, "bad bodies", e);
        let mut out: Vec<Vec<TxEnvelope>> = Vec::with_capacity(chunk.len());
        while out.len() < chunk.len() {
            let next = chunk.get(out.len()).map_or(0, |h| h.number);
            let left = (chunk.len() - out.len()) as u64;
            let answer = self.ask(peer, BODIES, next, left).await?;
            let got = Vec::<Vec<TxEnvelope>>::decode(&mut answer.as_slice())
                .map_err(|e| fault(format!("bodies: {e}")))?;
            if got.is_empty() || got.len() as u64 > left {
                return Err(fault(format!("{} bodies for {left}", got.len())));
            }
            // A body must match its header before anything is executed.
            for (header, txs) in chunk.iter().skip(out.len()).zip(&got) {
                if calculate_transaction_root(txs) != header.transactions_root {
                    return Err(fault(format!(
                        "a body that does not match header {}",
                        header.number
                    )));
                }
            }
            out.extend(got);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_consensus::{SignableTransaction, TxLegacy};
    use consort_storage::{MemoryChain, Store, StoreOptions};

    fn store() -> Store {
        let store = Store::in_memory(StoreOptions::default()).unwrap();
        let genesis = consort_chainspec::Genesis::from_json(crate::DEV_GENESIS).unwrap();
        consort_evm::init_genesis(&store, &genesis).unwrap();
        store
    }

    #[test]
    fn requests_are_answered_from_the_store_and_bad_ones_refused() {
        let store = store();
        let genesis = store.canonical_hash(0).unwrap().unwrap();
        let status = serve(&store, &request(STATUS, 0, 0)).unwrap();
        let status = Status::decode(&mut status.as_slice()).unwrap();
        assert_eq!(
            (status.number, status.hash, status.genesis),
            (0, genesis, genesis)
        );

        let headers = serve(&store, &request(HEADERS, 0, 1_000)).unwrap();
        let headers = Vec::<Header>::decode(&mut headers.as_slice()).unwrap();
        assert_eq!(headers.len(), 1, "only what exists, never more than asked");
        assert_eq!(headers[0].number, 0);

        let bodies = serve(&store, &request(BODIES, 0, 5)).unwrap();
        let bodies = Vec::<Vec<TxEnvelope>>::decode(&mut bodies.as_slice()).unwrap();
        assert_eq!(bodies, vec![Vec::<TxEnvelope>::new()]);
        assert_eq!(
            calculate_transaction_root(&bodies[0]),
            headers[0].transactions_root
        );

        for bad in [
            vec![],
            vec![0xc3, 0x01],
            request(9, 0, 1),
            alloy_rlp::encode(vec![1u64, 2]),
        ] {
            assert!(serve(&store, &bad).is_err(), "{bad:?}");
        }
    }

    /// A chain of four blocks in memory; block 2 carries two transactions.
    fn memory_chain() -> (MemoryChain, Vec<B256>, Vec<TxEnvelope>) {
        let txs: Vec<TxEnvelope> = (0..2)
            .map(|nonce| {
                TxLegacy {
                    chain_id: Some(1337),
                    nonce,
                    gas_price: 1_000,
                    gas_limit: 21_000,
                    to: alloy_primitives::TxKind::Call(alloy_primitives::Address::ZERO),
                    ..Default::default()
                }
                .into_signed(alloy_primitives::Signature::test_signature())
                .into()
            })
            .collect();
        let mut chain = MemoryChain::new();
        let hashes = (0..4)
            .map(|n| {
                let body = if n == 2 { txs.clone() } else { vec![] };
                let header = Header {
                    transactions_root: calculate_transaction_root(&body),
                    ..Default::default()
                };
                chain.push(header, body, vec![])
            })
            .collect();
        (chain, hashes, txs)
    }

    #[test]
    fn requests_are_answered_from_any_block_reader_within_what_exists() {
        let (chain, hashes, txs) = memory_chain();
        let status = serve(&chain, &request(STATUS, 0, 0)).unwrap();
        assert_eq!(
            Status::decode(&mut status.as_slice()).unwrap(),
            Status {
                number: 3,
                hash: hashes[3],
                genesis: hashes[0],
            }
        );

        let headers = |start, count| -> Vec<u64> {
            let answer = serve(&chain, &request(HEADERS, start, count)).unwrap();
            Vec::<Header>::decode(&mut answer.as_slice())
                .unwrap()
                .iter()
                .map(|h| h.number)
                .collect()
        };
        let bodies = |start, count| -> Vec<Vec<TxEnvelope>> {
            let answer = serve(&chain, &request(BODIES, start, count)).unwrap();
            Vec::<Vec<TxEnvelope>>::decode(&mut answer.as_slice()).unwrap()
        };
        let cases: [(&str, Vec<u64>, Vec<u64>); 4] = [
            ("a range inside the chain", headers(1, 2), vec![1, 2]),
            (
                "a range past the head stops at the head",
                headers(2, 10),
                vec![2, 3],
            ),
            ("a count of zero", headers(1, 0), vec![]),
            ("a start past the head", headers(9, 3), vec![]),
        ];
        for (description, got, want) in cases {
            assert_eq!(got, want, "{description}");
        }

        let answer = bodies(1, 1_000);
        assert_eq!(answer, vec![vec![], txs, vec![]], "bodies of blocks 1 to 3");
        for (n, body) in (1..).zip(&answer) {
            let header = chain.header_by_number(n).unwrap().unwrap();
            assert_eq!(
                calculate_transaction_root(body),
                header.transactions_root,
                "body {n} matches its header"
            );
        }
        assert!(bodies(4, 2).is_empty(), "no bodies past the head");
    }
}
