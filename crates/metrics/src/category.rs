//! Besu's metric categories (`--metrics-category`), told apart by a metric's name prefix.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

macro_rules! categories {
    ($($variant:ident = $name:literal, default $on:literal, prefixes [$($prefix:literal),*];)*) => {
        /// A metric category, as Besu names them on the command line.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Category {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl Category {
            /// Every category, in Besu's order.
            pub const ALL: &'static [Category] = &[$(Category::$variant),*];

            /// The name `--metrics-category` takes.
            pub fn name(self) -> &'static str {
                match self {
                    $(Category::$variant => $name,)*
                }
            }

            /// Whether Besu exports it when `--metrics-category` is not given.
            pub fn on_by_default(self) -> bool {
                match self {
                    $(Category::$variant => $on,)*
                }
            }

            fn prefixes(self) -> &'static [&'static str] {
                match self {
                    $(Category::$variant => &[$($prefix),*],)*
                }
            }
        }
    };
}

categories! {
    Blockchain = "BLOCKCHAIN", default true, prefixes ["besu_blockchain_"];
    Ethereum = "ETHEREUM", default true, prefixes ["ethereum_"];
    Executors = "EXECUTORS", default true, prefixes ["besu_executors_", "consort_executors_"];
    Network = "NETWORK", default true, prefixes ["besu_network_", "consort_network_"];
    Peers = "PEERS", default true, prefixes ["besu_peers_"];
    Permissioning = "PERMISSIONING", default true, prefixes ["besu_permissioning_"];
    Pruner = "PRUNER", default true, prefixes ["besu_pruner_"];
    Rpc = "RPC", default true, prefixes ["besu_rpc_", "consort_rpc_"];
    Synchronizer = "SYNCHRONIZER", default true, prefixes ["besu_synchronizer_", "consort_sync_"];
    TransactionPool = "TRANSACTION_POOL", default true,
        prefixes ["besu_transaction_pool_", "consort_transaction_pool_"];
    BlockProcessing = "BLOCK_PROCESSING", default true,
        prefixes ["besu_block_processing_", "consort_block_"];
    Bal = "BAL", default true, prefixes ["besu_bal_"];
    BonsaiCache = "BONSAI_CACHE", default true, prefixes ["besu_bonsai_cache_"];
    Qbft = "QBFT", default true, prefixes ["consort_qbft_"];
    Jvm = "JVM", default true, prefixes ["jvm_"];
    Process = "PROCESS", default true, prefixes ["process_"];
    KvstoreRocksdb = "KVSTORE_ROCKSDB", default false, prefixes ["besu_rocksdb_"];
    KvstorePrivateRocksdb = "KVSTORE_PRIVATE_ROCKSDB", default false,
        prefixes ["besu_private_rocksdb_"];
    KvstoreRocksdbStats = "KVSTORE_ROCKSDB_STATS", default false, prefixes ["rocksdb_"];
    KvstorePrivateRocksdbStats = "KVSTORE_PRIVATE_ROCKSDB_STATS", default false,
        prefixes ["private_rocksdb_"];
}

impl Category {
    /// The category a metric named `name` belongs to (the longest matching prefix).
    pub fn of(name: &str) -> Option<Category> {
        Category::ALL
            .iter()
            .flat_map(|c| c.prefixes().iter().map(move |p| (*c, *p)))
            .filter(|(_, p)| name.starts_with(p))
            .max_by_key(|(_, p)| p.len())
            .map(|(c, _)| c)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Category {
    type Err = String;

    /// Besu's category names, in any case.
    fn from_str(s: &str) -> Result<Self, String> {
        Category::ALL
            .iter()
            .copied()
            .find(|c| c.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let names: Vec<&str> = Category::ALL.iter().map(|c| c.name()).collect();
                format!(
                    "unknown metrics category {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// The categories exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Categories(BTreeSet<Category>);

impl Categories {
    /// Exactly these.
    pub fn only(categories: impl IntoIterator<Item = Category>) -> Self {
        Categories(categories.into_iter().collect())
    }

    /// Every category.
    pub fn all() -> Self {
        Self::only(Category::ALL.iter().copied())
    }

    /// Whether `category` is among them.
    pub fn contains(&self, category: Category) -> bool {
        self.0.contains(&category)
    }
}

impl Default for Categories {
    /// Besu's default: everything but the RocksDB categories.
    fn default() -> Self {
        Self::only(Category::ALL.iter().copied().filter(|c| c.on_by_default()))
    }
}

impl FromStr for Categories {
    type Err = String;

    /// A comma-separated list of category names.
    fn from_str(s: &str) -> Result<Self, String> {
        s.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(Category::from_str)
            .collect::<Result<BTreeSet<_>, _>>()
            .map(Categories)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_find_their_category_by_the_longest_prefix() {
        assert_eq!(
            Category::of("rocksdb_db_get"),
            Some(Category::KvstoreRocksdbStats)
        );
        assert_eq!(
            Category::of("besu_rocksdb_read_latency_seconds"),
            Some(Category::KvstoreRocksdb)
        );
        assert_eq!(
            Category::of("consort_qbft_current_round"),
            Some(Category::Qbft)
        );
        assert_eq!(
            Category::of("ethereum_peer_count"),
            Some(Category::Ethereum)
        );
        assert_eq!(Category::of("unprefixed"), None);
    }

    #[test]
    fn lists_parse_case_insensitively_and_unknown_names_are_named() {
        let c: Categories = "blockchain, PEERS,process".parse().unwrap();
        assert!(c.contains(Category::Peers) && !c.contains(Category::Rpc));
        let e = "BLOCKCHAIN,NOPE".parse::<Categories>().unwrap_err();
        assert!(
            e.contains("\"NOPE\"") && e.contains("KVSTORE_ROCKSDB"),
            "{e}"
        );
        let d = Categories::default();
        assert!(d.contains(Category::Rpc) && !d.contains(Category::KvstoreRocksdbStats));
    }
}
