//! The registry's families as OTLP metrics, and finished spans as OTLP traces.
//!
//! Each family keeps its Prometheus name, so a collector's Prometheus exporter gives back the
//! names the dashboards query; only a counter's `_total` is left off, since that exporter adds
//! it again to a monotonic sum. The instrumentation scope is the family's category, lower case
//! (`blockchain`, `rpc`, ...), as Besu's meters are. Counters become cumulative monotonic sums,
//! gauges gauges, histograms explicit-bucket histograms and summaries summaries.

use crate::trace::Finished;
use crate::Category;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1 as otlp;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as trace;
use prometheus::proto::{MetricFamily, MetricType};
use std::collections::BTreeMap;

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// The resource of `pairs` (`service.name` first).
pub(crate) fn resource(pairs: &[(String, String)]) -> Resource {
    Resource {
        attributes: pairs.iter().map(|(k, v)| string(k, v)).collect(),
        ..Default::default()
    }
}

fn scope(name: &str) -> InstrumentationScope {
    InstrumentationScope {
        name: name.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        ..Default::default()
    }
}

/// Instants of a data point: since `start` (the process start), at `now`, in Unix nanoseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Times {
    pub(crate) start: u64,
    pub(crate) now: u64,
}

fn data(family: &MetricFamily, times: Times) -> Option<otlp::metric::Data> {
    let attributes = |m: &prometheus::proto::Metric| -> Vec<KeyValue> {
        m.get_label()
            .iter()
            .map(|l| string(l.name(), l.value()))
            .collect()
    };
    let number = |m: &prometheus::proto::Metric, v: f64| otlp::NumberDataPoint {
        attributes: attributes(m),
        start_time_unix_nano: times.start,
        time_unix_nano: times.now,
        value: Some(otlp::number_data_point::Value::AsDouble(v)),
        ..Default::default()
    };
    let metrics = family.get_metric();
    Some(match family.get_field_type() {
        MetricType::COUNTER => otlp::metric::Data::Sum(otlp::Sum {
            data_points: metrics
                .iter()
                .map(|m| number(m, m.get_counter().get_value()))
                .collect(),
            aggregation_temporality: otlp::AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        }),
        MetricType::GAUGE => otlp::metric::Data::Gauge(otlp::Gauge {
            data_points: metrics
                .iter()
                .map(|m| number(m, m.get_gauge().get_value()))
                .collect(),
        }),
        MetricType::HISTOGRAM => otlp::metric::Data::Histogram(otlp::Histogram {
            data_points: metrics
                .iter()
                .map(|m| {
                    let h = m.get_histogram();
                    let buckets = h.get_bucket();
                    let bounds: Vec<f64> = buckets
                        .iter()
                        .map(|b| b.upper_bound())
                        .filter(|b| b.is_finite())
                        .collect();
                    // Prometheus buckets are cumulative; OTLP counts each bucket alone, the
                    // last one up to +Inf.
                    let mut counts = Vec::with_capacity(bounds.len() + 1);
                    let mut below = 0u64;
                    for b in buckets.iter().filter(|b| b.upper_bound().is_finite()) {
                        counts.push(b.cumulative_count().saturating_sub(below));
                        below = b.cumulative_count();
                    }
                    counts.push(h.get_sample_count().saturating_sub(below));
                    otlp::HistogramDataPoint {
                        attributes: attributes(m),
                        start_time_unix_nano: times.start,
                        time_unix_nano: times.now,
                        count: h.get_sample_count(),
                        sum: Some(h.get_sample_sum()),
                        bucket_counts: counts,
                        explicit_bounds: bounds,
                        ..Default::default()
                    }
                })
                .collect(),
            aggregation_temporality: otlp::AggregationTemporality::Cumulative as i32,
        }),
        MetricType::SUMMARY => otlp::metric::Data::Summary(otlp::Summary {
            data_points: metrics
                .iter()
                .map(|m| {
                    let s = m.get_summary();
                    otlp::SummaryDataPoint {
                        attributes: attributes(m),
                        start_time_unix_nano: times.start,
                        time_unix_nano: times.now,
                        count: s.sample_count(),
                        sum: s.sample_sum(),
                        quantile_values: s
                            .get_quantile()
                            .iter()
                            .filter(|q| !q.value().is_nan())
                            .map(|q| otlp::summary_data_point::ValueAtQuantile {
                                quantile: q.quantile(),
                                value: q.value(),
                            })
                            .collect(),
                        ..Default::default()
                    }
                })
                .collect(),
        }),
        _ => return None,
    })
}

/// `families` as one OTLP export request.
pub(crate) fn metrics_request(
    families: &[MetricFamily],
    resource: &Resource,
    times: Times,
) -> ExportMetricsServiceRequest {
    let mut scopes: BTreeMap<String, Vec<otlp::Metric>> = BTreeMap::new();
    for family in families {
        let Some(data) = data(family, times) else {
            continue;
        };
        let name = family.name();
        let name = match family.get_field_type() {
            MetricType::COUNTER => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        let category = Category::of(family.name())
            .map_or("other".to_string(), |c| c.name().to_ascii_lowercase());
        scopes.entry(category).or_default().push(otlp::Metric {
            name: name.to_string(),
            description: family.help().to_string(),
            data: Some(data),
            ..Default::default()
        });
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![otlp::ResourceMetrics {
            resource: Some(resource.clone()),
            scope_metrics: scopes
                .into_iter()
                .map(|(name, metrics)| otlp::ScopeMetrics {
                    scope: Some(scope(&name)),
                    metrics,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
    }
}

/// Finished spans as one OTLP export request, grouped by scope.
pub(crate) fn traces_request(
    spans: Vec<Finished>,
    resource: &Resource,
) -> ExportTraceServiceRequest {
    let mut scopes: BTreeMap<&'static str, Vec<trace::Span>> = BTreeMap::new();
    for finished in spans {
        scopes
            .entry(finished.scope.name())
            .or_default()
            .push(finished.span);
    }
    ExportTraceServiceRequest {
        resource_spans: vec![trace::ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: scopes
                .into_iter()
                .map(|(name, spans)| trace::ScopeSpans {
                    scope: Some(scope(name)),
                    spans,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{metrics, Registry};

    metrics! {
        /// Test metrics.
        struct Sample {
            /// A counter
            blocks: IntCounter = "besu_blockchain_chain_head_transaction_count_counter_total",
            /// A gauge
            height: IntGauge = "ethereum_blockchain_height",
            /// A histogram
            time: Histogram = "consort_block_import_duration_seconds",
            /// A summary
            rpc: SummaryVec = "besu_rpc_request_time" ["methodName"],
        }
    }

    #[test]
    fn families_keep_their_names_scopes_are_categories_and_histograms_count_each_bucket() {
        let registry = Registry::default();
        let m = Sample::new(&registry).unwrap();
        m.blocks.inc_by(7);
        m.height.set(42);
        m.time.observe(0.003);
        m.time.observe(0.2);
        m.time.observe(99.0);
        m.rpc.with_label_values(&["eth_call"]).observe(0.01);
        let request = metrics_request(
            &registry.gather(),
            &resource(&[("service.name".into(), "n".into())]),
            Times { start: 1, now: 2 },
        );
        let scopes = &request.resource_metrics[0].scope_metrics;
        let find = |name: &str| {
            scopes
                .iter()
                .flat_map(|s| {
                    s.metrics
                        .iter()
                        .map(move |m| (s.scope.as_ref().unwrap().name.clone(), m))
                })
                .find(|(_, m)| m.name == name)
                .unwrap_or_else(|| panic!("{name} missing"))
        };
        let (scope, counter) = find("besu_blockchain_chain_head_transaction_count_counter");
        assert_eq!(scope, "blockchain");
        let Some(otlp::metric::Data::Sum(sum)) = &counter.data else {
            panic!()
        };
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.data_points[0].value,
            Some(otlp::number_data_point::Value::AsDouble(7.0))
        );
        let (scope, _) = find("ethereum_blockchain_height");
        assert_eq!(scope, "ethereum");
        let (_, histogram) = find("consort_block_import_duration_seconds");
        let Some(otlp::metric::Data::Histogram(h)) = &histogram.data else {
            panic!()
        };
        let point = &h.data_points[0];
        assert_eq!(point.count, 3);
        assert_eq!(point.bucket_counts.len(), point.explicit_bounds.len() + 1);
        assert_eq!(point.bucket_counts.iter().sum::<u64>(), 3);
        assert_eq!(
            *point.bucket_counts.last().unwrap(),
            1,
            "99 s is above every bound"
        );
        let (scope, summary) = find("besu_rpc_request_time");
        assert_eq!(scope, "rpc");
        let Some(otlp::metric::Data::Summary(s)) = &summary.data else {
            panic!()
        };
        assert_eq!(s.data_points[0].count, 1);
        assert_eq!(s.data_points[0].attributes[0].key, "methodName");
    }
}
