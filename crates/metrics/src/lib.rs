//! One Prometheus registry for the whole node, the process metrics Besu exports, and the
//! `/metrics` HTTP endpoint (`--metrics-enabled`, `--metrics-host`, `--metrics-port`).

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod category;
mod declare;
mod executor;
mod family;
pub mod otlp;
#[cfg(target_os = "linux")]
mod process;
mod push;
mod server;
mod summary;
pub mod trace;

pub use category::{Categories, Category};
pub use declare::{help, Declare};
pub use executor::Executor;
pub use family::{gauge_family, summary_family};
pub use prometheus::core::{Collector, Desc};
pub use prometheus::proto;
pub use prometheus::{
    Counter, Gauge, GaugeVec, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec,
};
pub use push::{start_push, PushConfig, Pusher};
pub use server::{serve, Authorizer, MetricsServer};
pub use summary::{Summary, SummaryVec, QUANTILES};

use std::sync::{Arc, Mutex};

/// Why a metric could not be registered or served.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A metric name or label set is invalid, or registered twice.
    #[error("metric registration failed: {0}")]
    Register(#[from] prometheus::Error),
    /// A metric's name starts with no category's prefix.
    #[error("metric {0} belongs to no category (its name has no known prefix)")]
    Uncategorized(String),
    /// The endpoint could not listen.
    #[error("metrics endpoint could not listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The failure.
        source: std::io::Error,
    },
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, MetricsError>;

/// The node's metrics: a Prometheus registry that exports only the categories enabled by
/// `--metrics-category`. A metric of a disabled category still works for the code that updates
/// it but is never exported, as in Besu.
#[derive(Clone)]
pub struct Registry {
    inner: prometheus::Registry,
    categories: Arc<Categories>,
    samplers: Arc<Mutex<Vec<Sampler>>>,
}

/// Brings gauges up to date just before each scrape (for values read from elsewhere, such as
/// the tokio runtime's).
pub type Sampler = Box<dyn Fn() + Send + Sync>;

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("categories", &self.categories)
            .finish_non_exhaustive()
    }
}

impl Default for Registry {
    /// A registry of Besu's default categories without the process metrics: for tools and
    /// tests that run node components in process.
    fn default() -> Self {
        Registry {
            inner: prometheus::Registry::new(),
            categories: Arc::new(Categories::default()),
            samplers: Arc::default(),
        }
    }
}

impl Registry {
    /// A registry exporting Besu's default categories, with the process metrics
    /// (`process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`, ...)
    /// and `process_release{version}`.
    pub fn new(version: &str) -> Result<Self> {
        Self::with_categories(version, Categories::default())
    }

    /// A registry exporting `categories`.
    pub fn with_categories(version: &str, categories: Categories) -> Result<Self> {
        let registry = Registry {
            inner: prometheus::Registry::new(),
            categories: Arc::new(categories),
            samplers: Arc::default(),
        };
        #[cfg(target_os = "linux")]
        process::register(&registry)?;
        let release: IntGaugeVec = registry.declare(
            "process_release",
            "Build information of this node",
            &["version"],
        )?;
        release.with_label_values(&[version]).set(1);
        Ok(registry)
    }

    /// Whether `category` is exported.
    pub fn enabled(&self, category: Category) -> bool {
        self.categories.contains(category)
    }

    /// Creates the metric `name` and registers it if its category is enabled.
    pub fn declare<M: Declare>(&self, name: &str, help: &str, labels: &[&str]) -> Result<M> {
        let category =
            Category::of(name).ok_or_else(|| MetricsError::Uncategorized(name.to_string()))?;
        let metric = M::create(name, help, labels)?;
        if self.enabled(category) {
            self.inner.register(Box::new(metric.clone()))?;
        }
        Ok(metric)
    }

    /// Registers `collector`, whose families all belong to `category`, if it is enabled. For
    /// families read at scrape time from elsewhere (RocksDB's statistics).
    pub fn register_collector(
        &self,
        category: Category,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<()> {
        if self.enabled(category) {
            self.inner.register(collector)?;
        }
        Ok(())
    }

    /// Runs `sampler` before every scrape.
    pub fn on_scrape(&self, sampler: Sampler) {
        if let Ok(mut samplers) = self.samplers.lock() {
            samplers.push(sampler);
        }
    }

    /// Every exported family, sampled now.
    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        if let Ok(samplers) = self.samplers.lock() {
            samplers.iter().for_each(|sample| sample());
        }
        self.inner.gather()
    }

    /// Every exported metric in Prometheus text format.
    pub fn render(&self) -> String {
        use prometheus::Encoder;
        let mut buf = Vec::new();
        let encoder = prometheus::TextEncoder::new();
        if encoder.encode(&self.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }

    /// The names of the exported metric families.
    pub fn family_names(&self) -> Vec<String> {
        self.gather().iter().map(|f| f.name().to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_metrics_and_release_are_exported() {
        let r = Registry::new("consort/v0.1.0/linux-x86_64/rustc").unwrap();
        let text = r.render();
        assert!(text.contains("process_release{version=\"consort/v0.1.0/linux-x86_64/rustc\"} 1"));
        #[cfg(target_os = "linux")]
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
    }
}
