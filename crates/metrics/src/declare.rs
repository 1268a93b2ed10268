//! Declaring metrics: [`metrics!`](crate::metrics) writes a struct of metrics and the
//! constructor that registers them, one line per metric.

use crate::summary::{Summary, SummaryVec};
use crate::{MetricsError, Result};
use prometheus::{
    Counter, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts,
};

/// Bucket bounds, in seconds, of the histograms declared here.
pub const SECONDS_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A metric kind [`metrics!`](crate::metrics) can declare.
pub trait Declare: prometheus::core::Collector + Clone + Sized + 'static {
    /// Creates the metric, unregistered.
    fn create(name: &str, help: &str, labels: &[&str]) -> Result<Self>;
}

fn no_labels(name: &str, labels: &[&str]) -> Result<()> {
    if labels.is_empty() {
        Ok(())
    } else {
        Err(MetricsError::Register(prometheus::Error::Msg(format!(
            "{name} takes no labels; declare it as a *Vec"
        ))))
    }
}

macro_rules! plain {
    ($($kind:ty),*) => {$(
        impl Declare for $kind {
            fn create(name: &str, help: &str, labels: &[&str]) -> Result<Self> {
                no_labels(name, labels)?;
                Ok(<$kind>::new(name, help)?)
            }
        }
    )*};
}
plain!(IntCounter, Counter, IntGauge, Gauge);

macro_rules! labelled {
    ($($kind:ty),*) => {$(
        impl Declare for $kind {
            fn create(name: &str, help: &str, labels: &[&str]) -> Result<Self> {
                Ok(<$kind>::new(Opts::new(name, help), labels)?)
            }
        }
    )*};
}
labelled!(IntCounterVec, IntGaugeVec, GaugeVec);

impl Declare for Histogram {
    fn create(name: &str, help: &str, labels: &[&str]) -> Result<Self> {
        no_labels(name, labels)?;
        Ok(Histogram::with_opts(
            HistogramOpts::new(name, help).buckets(SECONDS_BUCKETS.to_vec()),
        )?)
    }
}

impl Declare for HistogramVec {
    fn create(name: &str, help: &str, labels: &[&str]) -> Result<Self> {
        Ok(HistogramVec::new(
            HistogramOpts::new(name, help).buckets(SECONDS_BUCKETS.to_vec()),
            labels,
        )?)
    }
}

impl Declare for Summary {
    fn create(name: &str, help: &str, labels: &[&str]) -> Result<Self> {
        no_labels(name, labels)?;
        Ok(Summary::new(name, help)?)
    }
}

impl Declare for SummaryVec {
    fn create(name: &str, help: &str, labels: &[&str]) -> Result<Self> {
        Ok(SummaryVec::new(name, help, labels)?)
    }
}

/// Help text from a field's doc comment lines.
pub fn help(lines: &[&str]) -> String {
    lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Declares a struct of metrics and `fn new(&Registry) -> Result<Self>` registering them.
/// Each field is one metric: its doc comment is the help text, then its kind, its exported
/// name and, for the `*Vec` kinds, its label names.
///
/// ```
/// consort_metrics::metrics! {
///     /// Chain metrics.
///     pub struct Chain {
///         /// The current height of the canonical chain
///         pub height: IntGauge = "ethereum_blockchain_height",
///         /// Number of errors per RPC method and RPC error type
///         pub errors: IntCounterVec = "besu_rpc_errors_count_total" ["rpcMethod", "errorType"],
///     }
/// }
/// let registry = consort_metrics::Registry::new("test").unwrap();
/// let chain = Chain::new(&registry).unwrap();
/// chain.height.set(7);
/// assert!(registry.render().contains("ethereum_blockchain_height 7"));
/// ```
#[macro_export]
macro_rules! metrics {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])+
                $fvis:vis $field:ident : $kind:ident = $metric:literal $([$($label:literal),* $(,)?])?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        $vis struct $name {
            $(
                $(#[doc = $doc])+
                $fvis $field: $crate::$kind,
            )*
        }

        impl $name {
            /// Creates every metric of this struct and registers those of enabled categories.
            pub fn new(registry: &$crate::Registry) -> $crate::Result<Self> {
                Ok($name {
                    $(
                        $field: registry.declare(
                            $metric,
                            &$crate::help(&[$($doc),+]),
                            &[$($($label),*)?],
                        )?,
                    )*
                })
            }
        }
    };
}
