//! An executor of the node (a thread or task working through a bounded queue), published as
//! Besu publishes its thread pools: `besu_executors_ethscheduler_<pool>_*`, so the executor
//! row of Besu's dashboard (which wants a pool name without `_`) shows it.

use crate::declare::Declare;
use crate::Result;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntGauge};

/// The six metrics of one executor. Declared in [`metrics!`](crate::metrics) with its name
/// prefix: `pool: Executor = "besu_executors_ethscheduler_network"`.
#[derive(Debug, Clone)]
pub struct Executor {
    pool_size: IntGauge,
    queued: IntGauge,
    active: IntGauge,
    submitted: IntCounter,
    completed: IntCounter,
    rejected: IntCounter,
}

impl Declare for Executor {
    fn create(prefix: &str, help: &str, labels: &[&str]) -> Result<Self> {
        if !labels.is_empty() {
            return Err(crate::MetricsError::Register(prometheus::Error::Msg(
                format!("{prefix}: an executor takes no labels"),
            )));
        }
        let gauge = |suffix: &str, what: &str| {
            IntGauge::new(format!("{prefix}_{suffix}"), format!("{help}: {what}"))
        };
        let counter = |suffix: &str, what: &str| {
            IntCounter::new(format!("{prefix}_{suffix}"), format!("{help}: {what}"))
        };
        Ok(Executor {
            pool_size: gauge("pool_size_current", "threads or tasks working")?,
            queued: gauge("queue_length_current", "work waiting in the queue")?,
            active: gauge("active_threads_current", "threads or tasks busy")?,
            submitted: counter("submitted_tasks_total", "work queued")?,
            completed: counter("completed_tasks_total", "work done")?,
            rejected: counter(
                "rejected_tasks_total",
                "work refused because the queue was full",
            )?,
        })
    }
}

impl Collector for Executor {
    fn desc(&self) -> Vec<&Desc> {
        [
            self.pool_size.desc(),
            self.queued.desc(),
            self.active.desc(),
            self.submitted.desc(),
            self.completed.desc(),
            self.rejected.desc(),
        ]
        .concat()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        [
            self.pool_size.collect(),
            self.queued.collect(),
            self.active.collect(),
            self.submitted.collect(),
            self.completed.collect(),
            self.rejected.collect(),
        ]
        .concat()
    }
}

impl Executor {
    /// The executor runs `n` threads or tasks.
    pub fn started(&self, n: i64) {
        self.pool_size.set(n);
    }

    /// Work is about to be queued (counted before the queue can hand it on).
    pub fn queuing(&self) {
        self.queued.inc();
    }

    /// The work just offered was queued (`true`) or refused.
    pub fn queued(&self, accepted: bool) {
        if accepted {
            self.submitted.inc();
        } else {
            self.queued.dec();
            self.rejected.inc();
        }
    }

    /// The executor took work off the queue.
    pub fn took(&self) {
        self.queued.dec();
        self.active.inc();
    }

    /// The executor finished that work.
    pub fn done(&self) {
        self.active.dec();
        self.completed.inc();
    }
}

#[cfg(test)]
mod tests {
    use crate::{metrics, Registry};

    metrics! {
        /// Test executors.
        struct Pools {
            /// The network task
            network: Executor = "besu_executors_ethscheduler_network",
        }
    }

    #[test]
    fn an_executor_is_six_families_that_follow_its_queue() {
        let registry = Registry::default();
        let pools = Pools::new(&registry).unwrap();
        let e = &pools.network;
        e.started(1);
        for accepted in [true, true, false] {
            e.queuing();
            e.queued(accepted);
        }
        e.took();
        let text = registry.render();
        for line in [
            "besu_executors_ethscheduler_network_pool_size_current 1",
            "besu_executors_ethscheduler_network_queue_length_current 1",
            "besu_executors_ethscheduler_network_active_threads_current 1",
            "besu_executors_ethscheduler_network_submitted_tasks_total 2",
            "besu_executors_ethscheduler_network_rejected_tasks_total 1",
            "besu_executors_ethscheduler_network_completed_tasks_total 0",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        e.done();
        assert!(registry
            .render()
            .contains("besu_executors_ethscheduler_network_completed_tasks_total 1"));
    }
}
