//! Besu's `besu_permissioning_*` counters: checks made, permitted and not, for nodes and
//! accounts, by the local allowlists and by the contracts.

use consort_metrics::IntCounter;

consort_metrics::metrics! {
    /// The permissioning counters.
    pub struct PermissioningMetrics {
        /// Number of times the node local permissioning provider has been checked
        node_local_total: IntCounter = "besu_permissioning_node_local_check_count_total",
        /// Number of times the node local permissioning provider has been checked and returned permitted
        node_local_permitted: IntCounter =
            "besu_permissioning_node_local_check_count_permitted_total",
        /// Number of times the node local permissioning provider has been checked and returned unpermitted
        node_local_unpermitted: IntCounter =
            "besu_permissioning_node_local_check_count_unpermitted_total",
        /// Number of times the node smart contract permissioning provider has been checked
        node_contract_total: IntCounter =
            "besu_permissioning_node_smart_contract_check_count_total",
        /// Number of times the node smart contract permissioning provider has been checked and returned permitted
        node_contract_permitted: IntCounter =
            "besu_permissioning_node_smart_contract_check_count_permitted_total",
        /// Number of times the node smart contract permissioning provider has been checked and returned unpermitted
        node_contract_unpermitted: IntCounter =
            "besu_permissioning_node_smart_contract_check_count_unpermitted_total",
        /// Number of times the account local permissioning provider has been checked
        account_local_total: IntCounter = "besu_permissioning_account_local_check_count_total",
        /// Number of times the account local permissioning provider has been checked and returned permitted
        account_local_permitted: IntCounter =
            "besu_permissioning_account_local_check_count_permitted_total",
        /// Number of times the account local permissioning provider has been checked and returned unpermitted
        account_local_unpermitted: IntCounter =
            "besu_permissioning_account_local_check_count_unpermitted_total",
        /// Number of times the transaction smart contract permissioning provider has been checked
        account_contract_total: IntCounter =
            "besu_permissioning_transaction_smart_contract_check_count_total",
        /// Number of times the transaction smart contract permissioning provider has been checked and returned permitted
        account_contract_permitted: IntCounter =
            "besu_permissioning_transaction_smart_contract_check_count_permitted_total",
        /// Number of times the transaction smart contract permissioning provider has been checked and returned unpermitted
        account_contract_unpermitted: IntCounter =
            "besu_permissioning_transaction_smart_contract_check_count_unpermitted_total",
    }
}

/// One kind of check's three counters: made, permitted and not.
pub(crate) struct CheckCounter<'a>([&'a IntCounter; 3]);

impl CheckCounter<'_> {
    /// Counts one check and passes its verdict through.
    pub(crate) fn count(&self, permitted: bool) -> bool {
        let [total, yes, no] = self.0;
        total.inc();
        if permitted { yes } else { no }.inc();
        permitted
    }
}

impl PermissioningMetrics {
    pub(crate) fn node_local(&self) -> CheckCounter<'_> {
        CheckCounter([
            &self.node_local_total,
            &self.node_local_permitted,
            &self.node_local_unpermitted,
        ])
    }

    pub(crate) fn node_contract(&self) -> CheckCounter<'_> {
        CheckCounter([
            &self.node_contract_total,
            &self.node_contract_permitted,
            &self.node_contract_unpermitted,
        ])
    }

    pub(crate) fn account_local(&self) -> CheckCounter<'_> {
        CheckCounter([
            &self.account_local_total,
            &self.account_local_permitted,
            &self.account_local_unpermitted,
        ])
    }

    pub(crate) fn account_contract(&self) -> CheckCounter<'_> {
        CheckCounter([
            &self.account_contract_total,
            &self.account_contract_permitted,
            &self.account_contract_unpermitted,
        ])
    }
}
