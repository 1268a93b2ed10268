//! Metric families built by hand, for collectors that read their values at scrape time.

use prometheus::proto;

/// A family of `metrics` of one kind.
pub(crate) fn family(
    name: &str,
    help: &str,
    kind: proto::MetricType,
    metrics: Vec<proto::Metric>,
) -> proto::MetricFamily {
    let mut family = proto::MetricFamily::default();
    family.set_name(name.to_string());
    family.set_help(help.to_string());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

/// A summary's value: its count, sum and (quantile, value) pairs.
pub(crate) fn summary_value(count: u64, sum: f64, quantiles: &[(f64, f64)]) -> proto::Summary {
    let mut summary = proto::Summary::default();
    summary.set_sample_count(count);
    summary.set_sample_sum(sum);
    summary.set_quantile(
        quantiles
            .iter()
            .map(|&(q, v)| {
                let mut quantile = proto::Quantile::default();
                quantile.set_quantile(q);
                quantile.set_value(v);
                quantile
            })
            .collect(),
    );
    summary
}

/// A gauge without labels.
pub fn gauge_family(name: &str, help: &str, value: f64) -> proto::MetricFamily {
    let mut gauge = proto::Gauge::default();
    gauge.set_value(value);
    let mut metric = proto::Metric::default();
    metric.set_gauge(gauge);
    family(name, help, proto::MetricType::GAUGE, vec![metric])
}

/// A summary without labels: `quantiles` are (quantile, value) pairs.
pub fn summary_family(
    name: &str,
    help: &str,
    count: u64,
    sum: f64,
    quantiles: &[(f64, f64)],
) -> proto::MetricFamily {
    let mut metric = proto::Metric::default();
    metric.set_summary(summary_value(count, sum, quantiles));
    family(name, help, proto::MetricType::SUMMARY, vec![metric])
}
