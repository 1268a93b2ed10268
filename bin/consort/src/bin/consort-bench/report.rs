//! The run's figures, as text for people and as one JSON object for `make bench`.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

/// One included transaction.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// From submission to the block that included it being seen.
    pub latency: Duration,
}

/// The nearest-rank percentile `p` of `sorted`, in milliseconds (0 when empty).
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted
        .get(rank - 1)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// What the run did.
#[derive(Debug, Clone)]
pub struct Run {
    pub label: String,
    pub kind: String,
    pub nodes: usize,
    /// How inclusion was followed: `newHeads` or `poll`.
    pub follow: &'static str,
    pub offered: usize,
    pub submitted: usize,
    pub elapsed: Duration,
    pub blocks: u64,
    pub gas: u64,
    pub errors: HashMap<String, u64>,
}

/// A node's (CPU seconds, resident bytes), read from its metrics.
pub type Process = Option<(f64, f64)>;

/// The figures of a run.
#[derive(Debug, Clone)]
pub struct Report {
    run: Run,
    included: usize,
    latencies: Vec<Duration>,
    /// Per node with metrics: (CPU seconds, resident bytes) before and after.
    processes: Vec<(Process, Process)>,
}

impl Report {
    pub fn new(run: Run, samples: Vec<Sample>, processes: Vec<(Process, Process)>) -> Self {
        let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
        latencies.sort();
        Report {
            run,
            included: samples.len(),
            latencies,
            processes,
        }
    }

    fn percentile(&self, p: f64) -> f64 {
        percentile(&self.latencies, p)
    }

    fn seconds(&self) -> f64 {
        self.run.elapsed.as_secs_f64().max(1e-9)
    }

    /// Included transactions per second, over the whole run.
    pub fn throughput(&self) -> f64 {
        self.included as f64 / self.seconds()
    }

    pub fn json(&self) -> Value {
        let nodes: Vec<Value> = self
            .processes
            .iter()
            .map(|(before, after)| match (before, after) {
                (Some((cpu0, _)), Some((cpu1, rss))) => json!({
                    "cpu_seconds": cpu1 - cpu0,
                    "cpu_share": (cpu1 - cpu0) / self.seconds(),
                    "rss_bytes": rss,
                }),
                _ => Value::Null,
            })
            .collect();
        json!({
            "label": self.run.label,
            "kind": self.run.kind,
            "nodes": self.run.nodes,
            "follow": self.run.follow,
            "offered": self.run.offered,
            "submitted": self.run.submitted,
            "included": self.included,
            "seconds": self.seconds(),
            "blocks": self.run.blocks,
            "tx_per_second": self.throughput(),
            "mgas_per_second": self.run.gas as f64 / 1e6 / self.seconds(),
            "latency_ms": {
                "p50": self.percentile(0.50),
                "p95": self.percentile(0.95),
                "p99": self.percentile(0.99),
            },
            "errors": self.run.errors,
            "node_processes": nodes,
        })
    }

    pub fn text(&self) -> String {
        let mut out = format!(
            "{} {} transactions to {} node(s){}\n\
             submitted {} of {}, included {} in {} blocks over {:.2} s\n\
             throughput {:.0} tx/s, {:.1} Mgas/s\n\
             latency submit→inclusion p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms\n",
            self.run.offered,
            self.run.kind,
            self.run.nodes,
            if self.run.label.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.run.label)
            },
            self.run.submitted,
            self.run.offered,
            self.included,
            self.run.blocks,
            self.seconds(),
            self.throughput(),
            self.run.gas as f64 / 1e6 / self.seconds(),
            self.percentile(0.50),
            self.percentile(0.95),
            self.percentile(0.99),
        );
        let mut errors: Vec<_> = self.run.errors.iter().collect();
        errors.sort();
        for (kind, n) in errors {
            out.push_str(&format!("errors: {n} × {kind}\n"));
        }
        for (i, (before, after)) in self.processes.iter().enumerate() {
            if let (Some((cpu0, _)), Some((cpu1, rss))) = (before, after) {
                out.push_str(&format!(
                    "node {i}: {:.1} CPU s ({:.0}% of one core), {:.0} MB resident\n",
                    cpu1 - cpu0,
                    100.0 * (cpu1 - cpu0) / self.seconds(),
                    rss / 1e6
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let run = Run {
            label: String::new(),
            kind: "eth".into(),
            nodes: 1,
            follow: "poll",
            offered: 100,
            submitted: 100,
            elapsed: Duration::from_secs(2),
            blocks: 2,
            gas: 2_100_000,
            errors: HashMap::new(),
        };
        let samples = (1..=100)
            .map(|ms| Sample {
                latency: Duration::from_millis(ms),
            })
            .collect();
        let r = Report::new(run, samples, vec![]);
        assert_eq!(r.percentile(0.5), 50.0);
        assert_eq!(r.percentile(0.99), 99.0);
        assert_eq!(r.throughput(), 50.0);
        assert_eq!(r.json()["mgas_per_second"], json!(1.05));
    }
}
