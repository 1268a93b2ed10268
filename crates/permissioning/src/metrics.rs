//! Besu's `besu_permissioning_*` counters: checks made, permitted and not, for nodes and
//! accounts, by the local allowlists and by the contracts.

use consort_metrics::{register, IntCounter, Registry, Result};

/// One kind of check: how many were made, permitted and not.
#[derive(Debug, Clone)]
pub(crate) struct CheckCounter {
    total: IntCounter,
    permitted: IntCounter,
    unpermitted: IntCounter,
}

impl CheckCounter {
    fn new(registry: &Registry, name: &str, help: &str) -> Result<Self> {
        let counter = |suffix: &str, what: &str| {
            register(
                registry,
                IntCounter::new(
                    format!("besu_permissioning_{name}{suffix}_total"),
                    format!("{help}{what}"),
                )?,
            )
        };
        Ok(CheckCounter {
            total: counter("", "")?,
            permitted: counter("_permitted", " that returned permitted")?,
            unpermitted: counter("_unpermitted", " that returned unpermitted")?,
        })
    }

    /// Counts one check and passes its verdict through.
    pub(crate) fn count(&self, permitted: bool) -> bool {
        self.total.inc();
        if permitted {
            self.permitted.inc();
        } else {
            self.unpermitted.inc();
        }
        permitted
    }
}

/// The permissioning counters.
#[derive(Debug, Clone)]
pub struct PermissioningMetrics {
    pub(crate) node_local: CheckCounter,
    pub(crate) node_contract: CheckCounter,
    pub(crate) account_local: CheckCounter,
    pub(crate) account_contract: CheckCounter,
}

impl PermissioningMetrics {
    /// Registers the counters in `registry`.
    pub fn new(registry: &Registry) -> Result<Self> {
        Ok(PermissioningMetrics {
            node_local: CheckCounter::new(
                registry,
                "node_local_check_count",
                "Number of times the node local permissioning provider has been checked",
            )?,
            node_contract: CheckCounter::new(
                registry,
                "node_smart_contract_check_count",
                "Number of times the node smart contract permissioning provider has been checked",
            )?,
            account_local: CheckCounter::new(
                registry,
                "account_local_check_count",
                "Number of times the account local permissioning provider has been checked",
            )?,
            account_contract: CheckCounter::new(
                registry,
                "transaction_smart_contract_check_count",
                "Number of times the transaction smart contract permissioning provider has been checked",
            )?,
        })
    }
}
