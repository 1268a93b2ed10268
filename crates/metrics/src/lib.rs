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

mod server;

pub use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};
pub use server::{serve, Authorizer, MetricsServer};

/// Why a metric could not be registered or served.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A metric name or label set is invalid, or registered twice.
    #[error("metric registration failed: {0}")]
    Register(#[from] prometheus::Error),
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

/// A registry with the process collector (`process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_open_fds`, ...) and `process_release{version}`.
pub fn registry(version: &str) -> Result<Registry> {
    let registry = Registry::new();
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    let release = IntGaugeVec::new(
        Opts::new("process_release", "Build information of this node"),
        &["version"],
    )?;
    release.with_label_values(&[version]).set(1);
    registry.register(Box::new(release))?;
    Ok(registry)
}

/// Registers `metric` and returns it, so components declare and register in one expression.
pub fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> Result<M> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// Renders every metric in Prometheus text format.
pub fn render(registry: &Registry) -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    if encoder.encode(&registry.gather(), &mut buf).is_err() {
        return String::new();
    }
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_metrics_and_release_are_exported() {
        let r = registry("consort/v0.1.0/linux-x86_64/rustc").unwrap();
        let text = render(&r);
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
