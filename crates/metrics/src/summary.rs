//! Prometheus summaries as Besu's timers expose them: quantiles 0.2, 0.5, 0.8, 0.95, 0.99 and
//! 1.0 over a sliding window of five minutes in five age buckets, plus `_sum` and `_count`
//! since start. The `prometheus` crate has none.
//!
//! Observations are counted in logarithmic buckets a factor of 1.02 apart, so a quantile is
//! within 1% of the true value and memory is bounded by the range of values seen (a few
//! hundred buckets at most per label set), not by how many were observed. The maximum
//! (quantile 1.0) is exact.

use prometheus::core::{Collector, Desc};
use prometheus::proto;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The quantiles Besu's timers report.
pub const QUANTILES: [f64; 6] = [0.2, 0.5, 0.8, 0.95, 0.99, 1.0];
/// How long an observation counts towards the quantiles.
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// Age buckets the window is made of; the oldest is dropped as a new one starts.
pub const AGE_BUCKETS: usize = 5;
/// Relative width of a value bucket.
const GAMMA: f64 = 1.02;
/// Distinct label sets one summary keeps; observations under further sets are dropped, so a
/// label fed from outside cannot grow memory without bound.
pub const MAX_LABEL_SETS: usize = 1024;

/// One window of observations.
#[derive(Debug, Default, Clone)]
struct Window {
    buckets: BTreeMap<i32, u64>,
    max: Option<f64>,
}

/// What one label set has seen.
#[derive(Debug)]
struct Stats {
    count: u64,
    sum: f64,
    windows: [Window; AGE_BUCKETS],
    /// Age steps since `started`; the current window is `step % AGE_BUCKETS`.
    step: u64,
    started: Instant,
}

fn bucket_of(value: f64) -> i32 {
    if value > 0.0 && value.is_finite() {
        (value.ln() / GAMMA.ln()).floor() as i32
    } else {
        i32::MIN
    }
}

fn value_of(bucket: i32) -> f64 {
    if bucket == i32::MIN {
        0.0
    } else {
        GAMMA.powi(bucket) * (1.0 + GAMMA) / 2.0
    }
}

impl Stats {
    fn new(now: Instant) -> Self {
        Stats {
            count: 0,
            sum: 0.0,
            windows: Default::default(),
            step: 0,
            started: now,
        }
    }

    /// Moves to the age bucket of `now`, clearing those that fell out of the window.
    fn rotate(&mut self, now: Instant) {
        let length = (MAX_AGE / AGE_BUCKETS as u32).as_millis().max(1);
        let step = (now.saturating_duration_since(self.started).as_millis() / length) as u64;
        for s in self.step + 1..=step.min(self.step + AGE_BUCKETS as u64) {
            if let Some(w) = self.windows.get_mut((s % AGE_BUCKETS as u64) as usize) {
                *w = Window::default();
            }
        }
        self.step = self.step.max(step);
    }

    fn observe(&mut self, value: f64, now: Instant) {
        self.rotate(now);
        self.count += 1;
        self.sum += value;
        let current = (self.step % AGE_BUCKETS as u64) as usize;
        let Some(window) = self.windows.get_mut(current) else {
            return;
        };
        *window.buckets.entry(bucket_of(value)).or_default() += 1;
        window.max = Some(window.max.map_or(value, |m| m.max(value)));
    }

    fn quantiles(&mut self, now: Instant) -> Vec<(f64, f64)> {
        self.rotate(now);
        let mut merged: BTreeMap<i32, u64> = BTreeMap::new();
        let mut max: Option<f64> = None;
        for w in &self.windows {
            for (b, n) in &w.buckets {
                *merged.entry(*b).or_default() += n;
            }
            if let Some(m) = w.max {
                max = Some(max.map_or(m, |x: f64| x.max(m)));
            }
        }
        let total: u64 = merged.values().sum();
        QUANTILES
            .iter()
            .map(|&q| {
                if total == 0 {
                    return (q, f64::NAN);
                }
                if q >= 1.0 {
                    return (q, max.unwrap_or(f64::NAN));
                }
                let rank = ((q * total as f64).ceil() as u64).max(1);
                let mut seen = 0;
                for (b, n) in &merged {
                    seen += n;
                    if seen >= rank {
                        return (q, value_of(*b).min(max.unwrap_or(f64::INFINITY)));
                    }
                }
                (q, max.unwrap_or(f64::NAN))
            })
            .collect()
    }
}

type Shared = Arc<Mutex<Stats>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A summary with labels: one set of observations per combination of label values.
#[derive(Clone, Debug)]
pub struct SummaryVec {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    desc: Desc,
    sets: Mutex<HashMap<Vec<String>, Shared>>,
}

impl SummaryVec {
    /// A summary named `name` with the label names `labels`.
    pub fn new(name: &str, help: &str, labels: &[&str]) -> prometheus::Result<Self> {
        let desc = Desc::new(
            name.to_string(),
            help.to_string(),
            labels.iter().map(|l| l.to_string()).collect(),
            HashMap::new(),
        )?;
        Ok(SummaryVec {
            inner: Arc::new(Inner {
                desc,
                sets: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The summary for these label values. A wrong number of values, or a label set past
    /// [`MAX_LABEL_SETS`], gives a summary that records nothing.
    pub fn with_label_values(&self, values: &[&str]) -> Summary {
        let stats = (values.len() == self.inner.desc.variable_labels.len())
            .then(|| {
                let mut sets = lock(&self.inner.sets);
                let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
                if let Some(s) = sets.get(&key) {
                    return Some(s.clone());
                }
                (sets.len() < MAX_LABEL_SETS).then(|| {
                    let s = Arc::new(Mutex::new(Stats::new(Instant::now())));
                    sets.insert(key, s.clone());
                    s
                })
            })
            .flatten();
        Summary {
            vec: self.clone(),
            stats,
        }
    }

    fn family(&self, now: Instant) -> proto::MetricFamily {
        let desc = &self.inner.desc;
        let mut sets: Vec<(Vec<String>, Shared)> = lock(&self.inner.sets)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        sets.sort_by(|a, b| a.0.cmp(&b.0));
        let metrics = sets
            .into_iter()
            .map(|(values, stats)| {
                let mut stats = lock(&stats);
                let summary =
                    crate::family::summary_value(stats.count, stats.sum, &stats.quantiles(now));
                let mut metric = proto::Metric::from_label(
                    desc.variable_labels
                        .iter()
                        .zip(values)
                        .map(|(name, value)| {
                            let mut pair = proto::LabelPair::default();
                            pair.set_name(name.clone());
                            pair.set_value(value);
                            pair
                        })
                        .collect(),
                );
                metric.set_summary(summary);
                metric
            })
            .collect();
        crate::family::family(
            &desc.fq_name,
            &desc.help,
            proto::MetricType::SUMMARY,
            metrics,
        )
    }
}

impl Collector for SummaryVec {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.inner.desc]
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        vec![self.family(Instant::now())]
    }
}

/// A summary without labels, or one label set of a [`SummaryVec`].
#[derive(Clone, Debug)]
pub struct Summary {
    vec: SummaryVec,
    stats: Option<Shared>,
}

impl Summary {
    /// A summary named `name` without labels.
    pub fn new(name: &str, help: &str) -> prometheus::Result<Self> {
        Ok(SummaryVec::new(name, help, &[])?.with_label_values(&[]))
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        self.observe_at(value, Instant::now());
    }

    /// Records a duration in seconds.
    pub fn observe_duration(&self, duration: Duration) {
        self.observe(duration.as_secs_f64());
    }

    fn observe_at(&self, value: f64, now: Instant) {
        if let Some(stats) = &self.stats {
            lock(stats).observe(value, now);
        }
    }
}

impl Collector for Summary {
    fn desc(&self) -> Vec<&Desc> {
        self.vec.desc()
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        self.vec.collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quantile(family: &proto::MetricFamily, q: f64) -> f64 {
        family.get_metric()[0]
            .get_summary()
            .get_quantile()
            .iter()
            .find(|x| x.quantile() == q)
            .unwrap()
            .value()
    }

    #[test]
    fn quantiles_are_within_one_percent_and_the_maximum_is_exact() {
        let s = Summary::new("t_seconds", "test").unwrap();
        for i in 1..=1000 {
            s.observe(i as f64 / 1000.0);
        }
        let f = s.vec.family(Instant::now());
        assert_eq!(f.get_metric()[0].get_summary().sample_count(), 1000);
        for (q, want) in [
            (0.2, 0.2),
            (0.5, 0.5),
            (0.8, 0.8),
            (0.95, 0.95),
            (0.99, 0.99),
        ] {
            let got = quantile(&f, q);
            assert!((got - want).abs() / want < 0.011, "q{q}: {got}");
        }
        assert_eq!(quantile(&f, 1.0), 1.0);
    }

    #[test]
    fn observations_leave_the_quantiles_after_five_minutes_but_stay_in_sum_and_count() {
        let s = Summary::new("t_seconds", "test").unwrap();
        let start = s.stats.as_ref().unwrap().lock().unwrap().started;
        s.observe_at(9.0, start);
        s.observe_at(1.0, start + Duration::from_secs(200));
        let f = s.vec.family(start + Duration::from_secs(250));
        assert_eq!(quantile(&f, 1.0), 9.0);
        let f = s.vec.family(start + Duration::from_secs(310));
        assert_eq!(quantile(&f, 1.0), 1.0);
        let f = s.vec.family(start + Duration::from_secs(3600));
        assert!(quantile(&f, 0.5).is_nan());
        let summary = f.get_metric()[0].get_summary();
        assert_eq!((summary.sample_count(), summary.sample_sum()), (2, 10.0));
    }

    #[test]
    fn label_sets_are_bounded_and_a_wrong_arity_records_nothing() {
        let v = SummaryVec::new("t_seconds", "test", &["method"]).unwrap();
        for i in 0..MAX_LABEL_SETS + 10 {
            v.with_label_values(&[&i.to_string()]).observe(1.0);
        }
        v.with_label_values(&["a", "b"]).observe(1.0);
        assert_eq!(v.collect()[0].get_metric().len(), MAX_LABEL_SETS);
    }
}
