//! Executor metrics under Besu's `besu_executors_ethscheduler_<pool>_*` names, so the
//! dashboards' executor row works: the tokio runtime is the `workers` pool, and the QBFT driver
//! thread with its bounded queue is the `consensus` pool.

use consort_metrics::{metrics, Registry};
use tokio::runtime::Handle;

metrics! {
    /// The tokio runtime's workers, read at each scrape.
    pub struct RuntimeMetrics {
        /// Worker threads of the tokio runtime
        pool_size: IntGauge = "besu_executors_ethscheduler_workers_pool_size_current",
        /// Tasks waiting in the runtime's global queue
        queue: IntGauge = "besu_executors_ethscheduler_workers_queue_length_current",
        /// Workers running tasks (not parked)
        active: IntGauge = "besu_executors_ethscheduler_workers_active_threads_current",
        /// Tasks alive in the runtime
        alive: IntGauge = "consort_executors_tokio_alive_tasks",
        /// Time the runtime's workers spent running tasks
        busy: Counter = "consort_executors_tokio_busy_seconds_total",
        /// Times a worker parked for want of work
        parks: IntCounter = "consort_executors_tokio_parks_total",
    }
}

impl RuntimeMetrics {
    /// Samples the runtime of `handle` before every scrape of `registry`.
    pub fn sample_on_scrape(self, registry: &Registry, handle: Handle) {
        registry.on_scrape(Box::new(move || self.sample(&handle.metrics())));
    }

    fn sample(&self, m: &tokio::runtime::RuntimeMetrics) {
        let workers = m.num_workers();
        self.pool_size.set(workers as i64);
        self.queue.set(m.global_queue_depth() as i64);
        self.alive.set(m.num_alive_tasks() as i64);
        // A worker's park/unpark count is even while it runs and odd while it is parked.
        let active = (0..workers)
            .filter(|&w| m.worker_park_unpark_count(w).is_multiple_of(2))
            .count();
        self.active.set(active as i64);
        let busy: f64 = (0..workers)
            .map(|w| m.worker_total_busy_duration(w).as_secs_f64())
            .sum();
        let busy_delta = busy - self.busy.get();
        if busy_delta > 0.0 {
            self.busy.inc_by(busy_delta);
        }
        let parks: u64 = (0..workers).map(|w| m.worker_park_count(w)).sum();
        self.parks.inc_by(parks.saturating_sub(self.parks.get()));
    }
}

metrics! {
    /// The node's own executors.
    pub struct Executors {
        /// The QBFT driver thread and its queue of events
        pub consensus: Executor = "besu_executors_ethscheduler_consensus",
    }
}
