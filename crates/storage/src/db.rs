//! Opening the database, reading blocks, and committing a block atomically.

use crate::metrics::{Latencies, StoreMetrics};
use crate::schema::{self, *};
use crate::state::PreparedState;
use crate::{Result, StorageError};
use alloy_consensus::ReceiptEnvelope;
use alloy_primitives::{Bloom, Bytes, B256};
use alloy_rlp::{Decodable, Encodable};
use consort_primitives::{Header, TxEnvelope};
use rocksdb::{ColumnFamilyDescriptor, Options, Snapshot, WriteBatch, WriteOptions, DB};
use std::path::Path;
use std::sync::Arc;

/// What all memtables together may hold before RocksDB flushes the largest. Their memory is
/// charged to the block cache, so the two together stay within `StoreOptions::cache_bytes`.
const MEMTABLE_BYTES: usize = 16 << 20;

/// The block cache is split into 2^this shards, each with its own lock and its own share of
/// the capacity. RocksDB's default for a cache this small is 64 shards of 512 KB, and the
/// memtables charged to the cache arrive as 256 KB placeholders spread over the shards by
/// hash: a shard given two of them has no room left, and every data block that hashes to it
/// is read from its file and decompressed again on each use. Four shards keep the hot blocks
/// cached; on two cores their locks are not contended.
const CACHE_SHARD_BITS: i32 = 2;

fn block_cache(bytes: usize) -> rocksdb::Cache {
    let mut options = rocksdb::LruCacheOptions::default();
    options.set_capacity(bytes);
    options.set_num_shard_bits(CACHE_SHARD_BITS);
    rocksdb::Cache::new_lru_cache_opts(&options)
}

/// How the store is opened.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Blocks of historical state kept behind the head; `None` keeps all (archive).
    pub history_window: Option<u64>,
    /// Whether every block commit waits for the write-ahead log to reach the disk. Without it a
    /// process crash loses nothing; a power cut may lose the last blocks, never consistency.
    pub sync_writes: bool,
    /// RocksDB block cache size in bytes.
    pub cache_bytes: usize,
    /// Where the store's metrics go (none: not measured).
    pub metrics: Option<consort_metrics::Registry>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            history_window: Some(512),
            sync_writes: false,
            cache_bytes: 32 << 20,
            metrics: None,
        }
    }
}

/// A block's transactions by hash, in order, and the length of their RLP list as the block
/// body encodes it (what a block's size needs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxHashes {
    /// The transactions' hashes.
    pub hashes: Vec<B256>,
    /// The length of the encoded transaction list, header included.
    pub list_length: usize,
}

impl TxHashes {
    /// Hashes and list length of decoded transactions.
    pub fn of(txs: &[TxEnvelope]) -> Self {
        TxHashes {
            hashes: txs.iter().map(|tx| *tx.tx_hash()).collect(),
            list_length: alloy_rlp::list_length(txs),
        }
    }
}

/// Where a transaction sits in the canonical chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockLocation {
    /// Hash of the including block.
    pub block_hash: B256,
    /// Number of the including block.
    pub block_number: u64,
    /// Index in the block.
    pub index: u64,
}

/// The chain database. Cheap to clone; reads may come from any thread, while blocks are committed
/// by one writer.
#[derive(Clone)]
pub struct Store {
    pub(crate) db: Arc<DB>,
    pub(crate) options: StoreOptions,
    pub(crate) metrics: Option<Arc<StoreMetrics>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.db.path())
            .field("options", &self.options)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Self> {
        Self::open_with(path, options, None)
    }

    /// A store in memory (RocksDB's memory environment), for tests and state tests.
    pub fn in_memory(options: StoreOptions) -> Result<Self> {
        let env = rocksdb::Env::mem_env()?;
        Self::open_with(Path::new("/consort-mem"), options, Some(env))
    }

    fn open_with(path: &Path, options: StoreOptions, env: Option<rocksdb::Env>) -> Result<Self> {
        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_open_files(512);
        db_opts.set_keep_log_file_num(2);
        // Memory stays bounded however fast blocks come: all memtables together flush at
        // MEMTABLE_BYTES (RocksDB's default is 64 MB per column family, two of them each, for
        // sixteen families) and are charged to the block cache, which also holds the index and
        // filter blocks: RocksDB's memory is the cache's size.
        let cache = block_cache(options.cache_bytes);
        let write_buffers = rocksdb::WriteBufferManager::new_write_buffer_manager_with_cache(
            MEMTABLE_BYTES.min(options.cache_bytes / 2),
            false,
            cache.clone(),
        );
        db_opts.set_write_buffer_manager(&write_buffers);
        if let Some(env) = &env {
            db_opts.set_env(env);
        }
        let metrics = options
            .metrics
            .as_ref()
            .map(StoreMetrics::new)
            .transpose()?
            .map(Arc::new);
        if metrics.as_ref().is_some_and(|m| m.wants_statistics()) {
            db_opts.enable_statistics();
        }
        let cfs = schema::ALL.iter().map(|name| {
            let mut cf = Options::default();
            cf.set_compression_type(rocksdb::DBCompressionType::Lz4);
            let mut table = rocksdb::BlockBasedOptions::default();
            table.set_block_cache(&cache);
            table.set_cache_index_and_filter_blocks(true);
            table.set_pin_l0_filter_and_index_blocks_in_cache(true);
            cf.set_block_based_table_factory(&table);
            ColumnFamilyDescriptor::new(*name, cf)
        });
        let db = Arc::new(DB::open_cf_descriptors(&db_opts, path, cfs)?);
        if let Some(metrics) = &metrics {
            metrics.attach(&db, &db_opts)?;
        }
        let store = Self {
            db,
            options,
            metrics,
        };
        store.check_version()?;
        Ok(store)
    }

    fn check_version(&self) -> Result<()> {
        match self.get(META, VERSION_KEY)? {
            None => {
                self.db
                    .put_cf(self.cf(META)?, VERSION_KEY, SCHEMA_VERSION.to_be_bytes())?;
                Ok(())
            }
            Some(v) if v.as_slice() == SCHEMA_VERSION.to_be_bytes() => Ok(()),
            Some(v) => Err(StorageError::Corrupt {
                table: META,
                reason: format!("schema version {} is not {SCHEMA_VERSION}", hex_of(&v)),
            }),
        }
    }

    pub(crate) fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily> {
        self.db.cf_handle(name).ok_or(StorageError::Corrupt {
            table: name,
            reason: "column family missing".into(),
        })
    }

    pub(crate) fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_in(None, table, key)
    }

    /// Reads `key` from `snapshot` when one is given, else from the live database.
    pub(crate) fn get_in(
        &self,
        snapshot: Option<&Snapshot<'_>>,
        table: &'static str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        let cf = self.cf(table)?;
        let read = || match snapshot {
            Some(snapshot) => snapshot.get_cf(cf, key),
            None => self.db.get_cf(cf, key),
        };
        Ok(match self.latencies() {
            Some(l) => Latencies::time(&l.read, read)?,
            None => read()?,
        })
    }

    /// The latency summaries, when `KVSTORE_ROCKSDB` is enabled.
    pub(crate) fn latencies(&self) -> Option<&Latencies> {
        self.metrics.as_ref().and_then(|m| m.latencies.as_ref())
    }

    /// Writes `batch`, timed as a commit.
    pub(crate) fn write_batch(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(sync);
        let write = || self.db.write_opt(batch, &write_opts);
        match self.latencies() {
            Some(l) => Latencies::time(&l.commit, write)?,
            None => write()?,
        }
        Ok(())
    }

    /// The history window the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// Writes a consistent copy of the database, as of one moment, to the new directory `dir`
    /// (a RocksDB checkpoint: the memtables are flushed and the table files hard-linked when
    /// `dir` is on the same filesystem, copied otherwise), while the node goes on writing.
    /// Every block commit is one atomic write, so the copy holds whole blocks only; a node
    /// opened on it starts from its head.
    pub fn checkpoint(&self, dir: &Path) -> Result<()> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint(dir)?;
        Ok(())
    }

    /// The head block's number and hash, `None` before genesis.
    pub fn head(&self) -> Result<Option<(u64, B256)>> {
        self.head_in(None)
    }

    pub(crate) fn head_in(&self, snapshot: Option<&Snapshot<'_>>) -> Result<Option<(u64, B256)>> {
        let Some(raw) = self.get_in(snapshot, META, HEAD_KEY)? else {
            return Ok(None);
        };
        let (n, h) = raw
            .split_first_chunk::<8>()
            .filter(|(_, h)| h.len() == 32)
            .ok_or(StorageError::Corrupt {
                table: META,
                reason: "head pointer is not 40 bytes".into(),
            })?;
        Ok(Some((u64::from_be_bytes(*n), B256::from_slice(h))))
    }

    /// The head block's header.
    pub fn head_header(&self) -> Result<Header> {
        let (_, hash) = self.head()?.ok_or(StorageError::Empty)?;
        self.header(&hash)?.ok_or(StorageError::Corrupt {
            table: HEADERS,
            reason: format!("head {hash} has no header"),
        })
    }

    /// A header by block hash.
    pub fn header(&self, hash: &B256) -> Result<Option<Header>> {
        self.header_in(None, hash)
    }

    pub(crate) fn header_in(
        &self,
        snapshot: Option<&Snapshot<'_>>,
        hash: &B256,
    ) -> Result<Option<Header>> {
        self.get_in(snapshot, HEADERS, hash.as_slice())?
            .map(|raw| decode(HEADERS, &raw))
            .transpose()
    }

    /// The canonical block hash at a height.
    pub fn canonical_hash(&self, number: u64) -> Result<Option<B256>> {
        self.canonical_hash_in(None, number)
    }

    pub(crate) fn canonical_hash_in(
        &self,
        snapshot: Option<&Snapshot<'_>>,
        number: u64,
    ) -> Result<Option<B256>> {
        self.get_in(snapshot, CANONICAL, &number_key(number))?
            .map(|raw| decode_b256(CANONICAL, &raw))
            .transpose()
    }

    /// The canonical blocks in `from..=to` whose logs bloom `wanted` accepts, in order, read
    /// from one snapshot: one forward scan of the blooms by number, and a canonical hash only
    /// for a block that matches, instead of a header per block. A height without a bloom entry
    /// (a store from before the table) reads its header. Stops at the first height without a
    /// canonical block that it needs.
    pub fn blocks_by_bloom(
        &self,
        from: u64,
        to: u64,
        wanted: &dyn Fn(&Bloom) -> bool,
    ) -> Result<Vec<(u64, B256)>> {
        let mut out = Vec::new();
        if to < from {
            return Ok(out);
        }
        let snapshot = self.db.snapshot();
        let mut hashes =
            NumberCursor::new(CANONICAL, snapshot.raw_iterator_cf(self.cf(CANONICAL)?));
        let mut blooms = snapshot.raw_iterator_cf(self.cf(LOG_BLOOMS)?);
        blooms.seek(number_key(from));
        // Heights in `range` without a bloom entry: their headers' blooms.
        let from_headers = |hashes: &mut NumberCursor,
                            range: std::ops::RangeInclusive<u64>,
                            out: &mut Vec<(u64, B256)>| {
            for n in range {
                let Some(hash) = hashes.at(n)? else {
                    return Ok(false);
                };
                let Some(header) = self.header_in(Some(&snapshot), &hash)? else {
                    return Ok(false);
                };
                if wanted(&header.logs_bloom) {
                    out.push((n, hash));
                }
            }
            Ok::<_, StorageError>(true)
        };
        let mut expected = from;
        loop {
            let entry = match (blooms.key(), blooms.value()) {
                (Some(key), Some(value)) => Some((decode_number(LOG_BLOOMS, key)?, value)),
                _ => {
                    blooms.status()?;
                    None
                }
            };
            let Some((n, raw)) = entry.filter(|(n, _)| *n <= to) else {
                from_headers(&mut hashes, expected..=to, &mut out)?;
                return Ok(out);
            };
            if n > expected && !from_headers(&mut hashes, expected..=n - 1, &mut out)? {
                return Ok(out);
            }
            if wanted(&decode_bloom(raw)?) {
                let Some(hash) = hashes.at(n)? else {
                    return Ok(out);
                };
                out.push((n, hash));
            }
            if n == to {
                return Ok(out);
            }
            expected = n + 1;
            blooms.next();
        }
    }

    /// A canonical header by number.
    pub fn header_by_number(&self, number: u64) -> Result<Option<Header>> {
        match self.canonical_hash(number)? {
            Some(hash) => self.header(&hash),
            None => Ok(None),
        }
    }

    /// The number of a stored block.
    pub fn block_number(&self, hash: &B256) -> Result<Option<u64>> {
        self.get(BLOCK_NUMBERS, hash.as_slice())?
            .map(|raw| decode_number(BLOCK_NUMBERS, &raw))
            .transpose()
    }

    /// A block's transactions.
    pub fn transactions(&self, hash: &B256) -> Result<Option<Vec<TxEnvelope>>> {
        self.get(BODIES, hash.as_slice())?
            .map(|raw| decode(BODIES, &raw))
            .transpose()
    }

    /// A block's transaction hashes and the length of their encoded list, without decoding
    /// them (decoded for a block stored before the `tx_hashes` table).
    pub fn transaction_hashes(&self, hash: &B256) -> Result<Option<TxHashes>> {
        let Some(raw) = self.get(TX_HASHES, hash.as_slice())? else {
            return Ok(self.transactions(hash)?.map(|txs| TxHashes::of(&txs)));
        };
        let corrupt = || StorageError::Corrupt {
            table: TX_HASHES,
            reason: format!("entry of {} bytes", raw.len()),
        };
        let (len, hashes) = raw.split_first_chunk::<8>().ok_or_else(corrupt)?;
        if hashes.len() % 32 != 0 {
            return Err(corrupt());
        }
        Ok(Some(TxHashes {
            hashes: hashes.chunks_exact(32).map(B256::from_slice).collect(),
            list_length: usize::try_from(u64::from_be_bytes(*len)).map_err(|_| corrupt())?,
        }))
    }

    /// A block's receipts.
    pub fn receipts(&self, hash: &B256) -> Result<Option<Vec<ReceiptEnvelope>>> {
        self.get(RECEIPTS, hash.as_slice())?
            .map(|raw| decode(RECEIPTS, &raw))
            .transpose()
    }

    /// Where a transaction was included.
    pub fn transaction_location(&self, tx_hash: &B256) -> Result<Option<BlockLocation>> {
        let Some(raw) = self.get(TX_INDEX, tx_hash.as_slice())? else {
            return Ok(None);
        };
        let bad = || StorageError::Corrupt {
            table: TX_INDEX,
            reason: "entry is not 48 bytes".into(),
        };
        let (hash, rest) = raw.split_first_chunk::<32>().ok_or_else(bad)?;
        let (number, rest) = rest.split_first_chunk::<8>().ok_or_else(bad)?;
        let index = <[u8; 8]>::try_from(rest).map_err(|_| bad())?;
        Ok(Some(BlockLocation {
            block_hash: B256::from(*hash),
            block_number: u64::from_be_bytes(*number),
            index: u64::from_be_bytes(index),
        }))
    }

    /// Stores block `hash` with its receipts and prepared state as the new head, in one atomic
    /// write. The block must be the child of the current head (or genesis of an empty store), and
    /// `state` must have been prepared on the current head.
    pub fn commit_block(
        &self,
        header: &Header,
        hash: B256,
        transactions: &[TxEnvelope],
        receipts: &[ReceiptEnvelope],
        state: PreparedState,
    ) -> Result<()> {
        let head = self.head()?;
        match head {
            None if header.number == 0 => {}
            Some((n, h)) if header.number == n + 1 && header.parent_hash == h => {}
            _ => {
                let (head_number, head_hash) = head.unwrap_or_default();
                return Err(StorageError::NotOnHead {
                    number: header.number,
                    hash,
                    head_number,
                    head_hash,
                });
            }
        }
        let prepared_on = state.parent;
        let expected_parent = head.map(|(n, _)| n);
        if prepared_on != expected_parent {
            return Err(StorageError::StalePreparedState {
                prepared_on: prepared_on.unwrap_or_default(),
                head: expected_parent.unwrap_or_default(),
            });
        }
        let mut batch = WriteBatch::default();
        let number = header.number;
        batch.put_cf(self.cf(HEADERS)?, hash, alloy_rlp::encode(header));
        let body = encode_list(transactions);
        let mut tx_hashes = Vec::with_capacity(8 + 32 * transactions.len());
        tx_hashes.extend_from_slice(&(body.len() as u64).to_be_bytes());
        for tx in transactions {
            tx_hashes.extend_from_slice(tx.tx_hash().as_slice());
        }
        batch.put_cf(self.cf(TX_HASHES)?, hash, tx_hashes);
        batch.put_cf(self.cf(BODIES)?, hash, body);
        batch.put_cf(self.cf(RECEIPTS)?, hash, encode_list(receipts));
        batch.put_cf(self.cf(CANONICAL)?, number_key(number), hash);
        let bloom: &[u8] = if header.logs_bloom.is_zero() {
            &[]
        } else {
            header.logs_bloom.as_slice()
        };
        batch.put_cf(self.cf(LOG_BLOOMS)?, number_key(number), bloom);
        batch.put_cf(self.cf(BLOCK_NUMBERS)?, hash, number_key(number));
        let tx_cf = self.cf(TX_INDEX)?;
        for (index, tx) in transactions.iter().enumerate() {
            let mut loc = Vec::with_capacity(48);
            loc.extend_from_slice(hash.as_slice());
            loc.extend_from_slice(&number.to_be_bytes());
            loc.extend_from_slice(&(index as u64).to_be_bytes());
            batch.put_cf(tx_cf, tx.tx_hash(), loc);
        }
        state.write_into(self, &mut batch, number)?;
        if let Some(window) = self.options.history_window {
            if let Some(pruned) = number.checked_sub(window) {
                self.prune_history(&mut batch, pruned)?;
            }
        }
        let mut head_value = Vec::with_capacity(40);
        head_value.extend_from_slice(&number.to_be_bytes());
        head_value.extend_from_slice(hash.as_slice());
        batch.put_cf(self.cf(META)?, HEAD_KEY, head_value);
        self.write_batch(batch, self.options.sync_writes)
    }

    /// Saves the validator's consensus state (opaque to the store), durably: the write is
    /// synced before this returns, so a message sent afterwards survives a crash.
    pub fn put_consensus_state(&self, value: &[u8]) -> Result<()> {
        self.put_synced(CONSENSUS_KEY, value)
    }

    /// The consensus state saved last, if any.
    pub fn consensus_state(&self) -> Result<Option<Vec<u8>>> {
        self.get(META, CONSENSUS_KEY)
    }

    /// Saves the validator votes an operator asked for (opaque to the store), durably.
    pub fn put_validator_votes(&self, value: &[u8]) -> Result<()> {
        self.put_synced(VOTES_KEY, value)
    }

    /// Writes one `meta` entry durably, timed as a write.
    fn put_synced(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(true);
        let meta = self.cf(META)?;
        let put = || self.db.put_cf_opt(meta, key, value, &write_opts);
        match self.latencies() {
            Some(l) => Latencies::time(&l.write, put)?,
            None => put()?,
        }
        Ok(())
    }

    /// The validator votes saved last, if any.
    pub fn validator_votes(&self) -> Result<Option<Vec<u8>>> {
        self.get(META, VOTES_KEY)
    }

    /// The oldest block whose state can still be read.
    pub fn oldest_state(&self, head: u64) -> u64 {
        match self.options.history_window {
            Some(window) => head.saturating_sub(window),
            None => 0,
        }
    }
}

pub(crate) fn encode_list<T: Encodable>(items: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    alloy_rlp::encode_list(items, &mut out);
    out
}

pub(crate) fn decode<T: Decodable>(table: &'static str, raw: &[u8]) -> Result<T> {
    let mut buf = raw;
    let value = T::decode(&mut buf).map_err(|e| StorageError::Corrupt {
        table,
        reason: e.to_string(),
    })?;
    if !buf.is_empty() {
        return Err(StorageError::Corrupt {
            table,
            reason: format!("{} trailing bytes", buf.len()),
        });
    }
    Ok(value)
}

/// A forward cursor over a table keyed by block number: reading the next few heights steps
/// the iterator instead of seeking again.
struct NumberCursor<'a> {
    table: &'static str,
    iter: rocksdb::DBRawIteratorWithThreadMode<'a, DB>,
}

impl<'a> NumberCursor<'a> {
    /// Heights closer than this ahead are stepped to, farther ones sought.
    const STEP: u64 = 16;

    fn new(table: &'static str, iter: rocksdb::DBRawIteratorWithThreadMode<'a, DB>) -> Self {
        Self { table, iter }
    }

    fn position(&self) -> Result<Option<u64>> {
        self.iter
            .key()
            .map(|key| decode_number(self.table, key))
            .transpose()
    }

    /// The 32-byte value at height `n`, if there is one.
    fn at(&mut self, n: u64) -> Result<Option<B256>> {
        match self.position()? {
            Some(p) if p < n && n - p <= Self::STEP => {
                while self.position()?.is_some_and(|p| p < n) {
                    self.iter.next();
                }
            }
            Some(p) if p == n => {}
            _ => self.iter.seek(number_key(n)),
        }
        self.iter.status()?;
        if self.position()? != Some(n) {
            return Ok(None);
        }
        self.iter
            .value()
            .map(|raw| decode_b256(self.table, raw))
            .transpose()
    }
}

fn decode_number(table: &'static str, raw: &[u8]) -> Result<u64> {
    <[u8; 8]>::try_from(raw)
        .map(u64::from_be_bytes)
        .map_err(|_| StorageError::Corrupt {
            table,
            reason: format!("{} bytes are not a block number", raw.len()),
        })
}

fn decode_bloom(raw: &[u8]) -> Result<Bloom> {
    match raw.len() {
        0 => Ok(Bloom::ZERO),
        256 => Ok(Bloom::from_slice(raw)),
        n => Err(StorageError::Corrupt {
            table: LOG_BLOOMS,
            reason: format!("bloom of {n} bytes"),
        }),
    }
}

pub(crate) fn decode_b256(table: &'static str, raw: &[u8]) -> Result<B256> {
    <[u8; 32]>::try_from(raw)
        .map(B256::from)
        .map_err(|_| StorageError::Corrupt {
            table,
            reason: format!("expected 32 bytes, got {}", raw.len()),
        })
}

fn hex_of(bytes: &[u8]) -> String {
    Bytes::copy_from_slice(bytes).to_string()
}
