//! Storage metrics: Besu's state-read counters (`besu_blockchain_get_*`, on by default),
//! RocksDB latencies (`besu_rocksdb_*`, `KVSTORE_ROCKSDB`) and RocksDB's own statistics
//! (`rocksdb_*`, `KVSTORE_ROCKSDB_STATS`), the last two off by default as in Besu because they
//! cost time on every read.

use consort_metrics::{metrics, proto, Category, Collector, Desc, Registry, Summary};
use rocksdb::statistics::{Histogram, Ticker};
use rocksdb::{Options, DB};
use std::sync::{Arc, Weak};
use std::time::Instant;

metrics! {
    /// State reads. The flat tables always hold the whole current state, so what they lack
    /// does not exist: there is no trie fallback to count.
    pub struct StateReads {
        /// Accounts read from the flat database
        pub(crate) account: IntCounter = "besu_blockchain_get_account_total",
        /// Accounts found in the flat database
        pub(crate) account_found: IntCounter = "besu_blockchain_get_account_flat_database_total",
        /// Accounts absent from the flat database (they do not exist)
        pub(crate) account_missing: IntCounter =
            "besu_blockchain_get_account_missing_flat_database_total",
        /// Storage slots read from the flat database
        pub(crate) slot: IntCounter = "besu_blockchain_get_storagevalue_total",
        /// Storage slots found in the flat database
        pub(crate) slot_found: IntCounter = "besu_blockchain_get_storagevalue_flat_database_total",
        /// Storage slots absent from the flat database (they are zero)
        pub(crate) slot_missing: IntCounter =
            "besu_blockchain_get_storagevalue_missing_flat_database_total",
    }
}

metrics! {
    /// RocksDB latencies and sizes, by database.
    struct RocksdbFamilies {
        /// Latency of database reads
        read: SummaryVec = "besu_rocksdb_read_latency_seconds" ["database"],
        /// Latency of single database writes
        write: SummaryVec = "besu_rocksdb_write_latency_seconds" ["database"],
        /// Latency of committing a block's write batch
        commit: SummaryVec = "besu_rocksdb_commit_latency_seconds" ["database"],
        /// Estimated memory used by table readers (rocksdb.estimate-table-readers-mem)
        table_readers: IntGauge = "besu_rocksdb_rocks_db_table_readers_memory_bytes",
        /// Size of the live table files (rocksdb.live-sst-files-size)
        files_size: IntGauge = "besu_rocksdb_rocks_db_files_size_bytes",
    }
}

/// The latency summaries of the one database, resolved once.
#[derive(Debug, Clone)]
pub(crate) struct Latencies {
    pub(crate) read: Summary,
    pub(crate) write: Summary,
    pub(crate) commit: Summary,
}

impl Latencies {
    /// Times `f` into `summary`.
    pub(crate) fn time<T>(summary: &Summary, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        summary.observe_duration(start.elapsed());
        out
    }
}

/// What the store measures, made from the node's registry.
#[derive(Debug, Clone)]
pub(crate) struct StoreMetrics {
    pub(crate) reads: StateReads,
    pub(crate) latencies: Option<Latencies>,
    registry: Registry,
    families: Option<RocksdbFamilies>,
}

/// The RocksDB configuration label Besu gives the chain database.
const DATABASE: &str = "blockchain";

impl StoreMetrics {
    pub(crate) fn new(registry: &Registry) -> consort_metrics::Result<Self> {
        let families = registry
            .enabled(Category::KvstoreRocksdb)
            .then(|| RocksdbFamilies::new(registry))
            .transpose()?;
        let latencies = families.as_ref().map(|f| Latencies {
            read: f.read.with_label_values(&[DATABASE]),
            write: f.write.with_label_values(&[DATABASE]),
            commit: f.commit.with_label_values(&[DATABASE]),
        });
        Ok(StoreMetrics {
            reads: StateReads::new(registry)?,
            latencies,
            registry: registry.clone(),
            families,
        })
    }

    /// Whether RocksDB should keep its statistics.
    pub(crate) fn wants_statistics(&self) -> bool {
        self.registry.enabled(Category::KvstoreRocksdbStats)
    }

    /// Starts publishing what needs the open database: its sizes, read at each scrape, and,
    /// when `options` kept statistics, RocksDB's tickers and histograms.
    pub(crate) fn attach(&self, db: &Arc<DB>, options: &Options) -> consort_metrics::Result<()> {
        if let Some(families) = self.families.clone() {
            let db: Weak<DB> = Arc::downgrade(db);
            self.registry.on_scrape(Box::new(move || {
                let Some(db) = db.upgrade() else { return };
                families
                    .table_readers
                    .set(sum_property(&db, "rocksdb.estimate-table-readers-mem"));
                families
                    .files_size
                    .set(sum_property(&db, "rocksdb.live-sst-files-size"));
            }));
        }
        if self.wants_statistics() {
            self.registry.register_collector(
                Category::KvstoreRocksdbStats,
                Box::new(RocksdbStatistics::new(options.clone())),
            )?;
        }
        Ok(())
    }
}

/// A property summed over every column family.
fn sum_property(db: &DB, name: &str) -> i64 {
    crate::schema::ALL
        .iter()
        .filter_map(|cf| db.cf_handle(cf))
        .filter_map(|cf| db.property_int_value_cf(&cf, name).ok().flatten())
        .fold(0i64, |sum, v| {
            sum.saturating_add(i64::try_from(v).unwrap_or(i64::MAX))
        })
}

/// The tickers Besu publishes (`RocksDBStats`), by their Besu names: `rocksdb_` and the
/// ticker's name in snake case.
const TICKERS: &[Ticker] = &[
    Ticker::BlockCacheAdd,
    Ticker::BlockCacheHit,
    Ticker::BlockCacheAddFailures,
    Ticker::BlockCacheIndexMiss,
    Ticker::BlockCacheIndexHit,
    Ticker::BlockCacheIndexAdd,
    Ticker::BlockCacheIndexBytesInsert,
    Ticker::BlockCacheFilterMiss,
    Ticker::BlockCacheFilterHit,
    Ticker::BlockCacheFilterAdd,
    Ticker::BlockCacheFilterBytesInsert,
    Ticker::BlockCacheDataMiss,
    Ticker::BlockCacheDataHit,
    Ticker::BlockCacheDataAdd,
    Ticker::BlockCacheDataBytesInsert,
    Ticker::BlockCacheBytesRead,
    Ticker::BlockCacheBytesWrite,
    Ticker::BloomFilterUseful,
    Ticker::PersistentCacheHit,
    Ticker::PersistentCacheMiss,
    Ticker::SimBlockCacheHit,
    Ticker::SimBlockCacheMiss,
    Ticker::MemtableHit,
    Ticker::MemtableMiss,
    Ticker::GetHitL0,
    Ticker::GetHitL1,
    Ticker::GetHitL2AndUp,
    Ticker::CompactionKeyDropNewerEntry,
    Ticker::CompactionKeyDropObsolete,
    Ticker::CompactionKeyDropRangeDel,
    Ticker::CompactionKeyDropUser,
    Ticker::CompactionRangeDelDropObsolete,
    Ticker::NumberKeysWritten,
    Ticker::NumberKeysRead,
    Ticker::NumberKeysUpdated,
    Ticker::BytesWritten,
    Ticker::BytesRead,
    Ticker::NumberDbSeek,
    Ticker::NumberDbNext,
    Ticker::NumberDbPrev,
    Ticker::NumberDbSeekFound,
    Ticker::NumberDbNextFound,
    Ticker::NumberDbPrevFound,
    Ticker::IterBytesRead,
    Ticker::NoFileOpens,
    Ticker::NoFileErrors,
    Ticker::StallMicros,
    Ticker::DbMutexWaitMicros,
    Ticker::NumberMultigetBytesRead,
    Ticker::NumberMultigetKeysRead,
    Ticker::NumberMultigetCalls,
    Ticker::NumberMergeFailures,
    Ticker::BloomFilterPrefixChecked,
    Ticker::BloomFilterPrefixUseful,
    Ticker::NumberOfReseeksInIteration,
    Ticker::GetUpdatesSinceCalls,
    Ticker::WalFileSynced,
    Ticker::WalFileBytes,
    Ticker::WriteDoneBySelf,
    Ticker::WriteDoneByOther,
    Ticker::WriteWithWal,
    Ticker::CompactReadBytes,
    Ticker::CompactWriteBytes,
    Ticker::FlushWriteBytes,
    Ticker::NumberDirectLoadTableProperties,
    Ticker::NumberSuperversionAcquires,
    Ticker::NumberSuperversionReleases,
    Ticker::NumberSuperversionCleanups,
    Ticker::NumberBlockCompressed,
    Ticker::NumberBlockDecompressed,
    Ticker::MergeOperationTotalTime,
    Ticker::FilterOperationTotalTime,
    Ticker::RowCacheHit,
    Ticker::RowCacheMiss,
    Ticker::ReadAmpEstimateUsefulBytes,
    Ticker::ReadAmpTotalReadBytes,
    Ticker::NumberRateLimiterDrains,
    Ticker::NumberIterSkip,
    Ticker::NumberMultigetKeysFound,
];

/// The histograms Besu publishes as summaries.
const HISTOGRAMS: &[Histogram] = &[
    Histogram::DbGet,
    Histogram::DbWrite,
    Histogram::CompactionTime,
    Histogram::SubcompactionSetupTime,
    Histogram::TableSyncMicros,
    Histogram::CompactionOutfileSyncMicros,
    Histogram::WalFileSyncMicros,
    Histogram::ManifestFileSyncMicros,
    Histogram::TableOpenIoMicros,
    Histogram::DbMultiget,
    Histogram::ReadBlockCompactionMicros,
    Histogram::ReadBlockGetMicros,
    Histogram::WriteRawBlockMicros,
    Histogram::NumFilesInSingleCompaction,
    Histogram::DbSeek,
    Histogram::WriteStall,
    Histogram::SstReadMicros,
    Histogram::NumSubcompactionsScheduled,
    Histogram::BytesPerRead,
    Histogram::BytesPerWrite,
    Histogram::BytesPerMultiget,
    Histogram::CompressionTimesNanos,
    Histogram::DecompressionTimesNanos,
    Histogram::ReadNumMergeOperands,
];

/// `rocksdb_` and a CamelCase variant name in snake case (`GetHitL2AndUp` → `get_hit_l2_and_up`).
fn besu_name(variant: &str) -> String {
    let mut name = String::from("rocksdb_");
    let mut previous_lower = false;
    for c in variant.chars() {
        if c.is_ascii_uppercase() && previous_lower {
            name.push('_');
        }
        previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        name.push(c.to_ascii_lowercase());
    }
    name
}

/// RocksDB's statistics, read at each scrape: tickers as gauges of their running totals and
/// histograms as summaries with quantiles 0, 0.5, 0.95, 0.99 and 1, as Besu exports them.
struct RocksdbStatistics {
    options: Options,
    names: Vec<String>,
    descs: Vec<Desc>,
}

impl RocksdbStatistics {
    fn new(options: Options) -> Self {
        let names: Vec<String> = TICKERS
            .iter()
            .map(|t| besu_name(&format!("{t:?}")))
            .chain(HISTOGRAMS.iter().map(|h| besu_name(&format!("{h:?}"))))
            .collect();
        let descs = names
            .iter()
            .filter_map(|n| Desc::new(n.clone(), help(n), vec![], Default::default()).ok())
            .collect();
        RocksdbStatistics {
            options,
            names,
            descs,
        }
    }
}

fn help(name: &str) -> String {
    format!("RocksDB statistic {}", name.trim_start_matches("rocksdb_"))
}

impl Collector for RocksdbStatistics {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let mut names = self.names.iter();
        let mut out = Vec::with_capacity(self.names.len());
        for ticker in TICKERS {
            let Some(name) = names.next() else { break };
            let value = self.options.get_ticker_count(*ticker) as f64;
            out.push(consort_metrics::gauge_family(name, &help(name), value));
        }
        for histogram in HISTOGRAMS {
            let Some(name) = names.next() else { break };
            let data = self.options.get_histogram_data(*histogram);
            out.push(consort_metrics::summary_family(
                name,
                &help(name),
                data.count(),
                data.sum() as f64,
                &[
                    (0.0, data.min()),
                    (0.5, data.median()),
                    (0.95, data.p95()),
                    (0.99, data.p99()),
                    (1.0, data.max()),
                ],
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistic_names_are_besus() {
        assert_eq!(besu_name("GetHitL2AndUp"), "rocksdb_get_hit_l2_and_up");
        assert_eq!(
            besu_name("BlockCacheDataHit"),
            "rocksdb_block_cache_data_hit"
        );
        assert_eq!(besu_name("DbGet"), "rocksdb_db_get");
        assert_eq!(besu_name("GetHitL0"), "rocksdb_get_hit_l0");
        assert_eq!(besu_name("BytesPerWrite"), "rocksdb_bytes_per_write");
        assert_eq!(TICKERS.len(), 79);
        assert_eq!(HISTOGRAMS.len(), 24);
    }
}
