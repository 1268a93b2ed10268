//! A deterministic simulator for the QBFT core: N validators on a seeded, virtual-time network
//! with delays, loss, duplication, partitions, crashes with restarts from persisted state and
//! Byzantine validators, checking safety on every step and liveness after GST.

pub mod byzantine;
pub mod chain;
pub mod fixture;
pub mod rng;
pub mod scenario;
pub mod world;

use scenario::Scenario;
use std::panic::{catch_unwind, AssertUnwindSafe};
use world::{Stats, World};

/// A seed that broke an invariant (or panicked).
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub replay: String,
    pub message: String,
    pub scenario: String,
    pub nodes: String,
    pub at_ms: u64,
    pub trace: Vec<String>,
}

impl Failure {
    /// The failure, how to replay it, the scenario, the nodes' state and the last
    /// `trace_lines` trace lines.
    pub fn report(&self, trace_lines: usize) -> String {
        let mut s = format!(
            "seed {} FAILED at {}.{:03}s: {}\n  reproduce: {}\n  scenario: {}\n  nodes: {}\n",
            self.seed,
            self.at_ms / 1000,
            self.at_ms % 1000,
            self.message,
            self.replay,
            self.scenario,
            self.nodes
        );
        let skip = self.trace.len().saturating_sub(trace_lines);
        if !self.trace.is_empty() {
            s.push_str(&format!(
                "  last {} of {} trace lines:\n",
                self.trace.len() - skip,
                self.trace.len()
            ));
        }
        for line in &self.trace[skip..] {
            s.push_str("    ");
            s.push_str(line);
            s.push('\n');
        }
        s
    }
}

/// Runs one seed; `trace` keeps a bounded trace for the failure report.
pub fn run_seed(seed: u64, trace: bool) -> Result<Stats, Box<Failure>> {
    run_scenario(Scenario::from_seed(seed), trace)
}

pub fn run_scenario(sc: Scenario, trace: bool) -> Result<Stats, Box<Failure>> {
    let seed = sc.seed;
    let replay = sc.replay.clone();
    let scenario = sc.describe();
    let mut world = World::new(sc, trace);
    let result = catch_unwind(AssertUnwindSafe(|| world.run()));
    let message = match result {
        Ok(Ok(stats)) => return Ok(stats),
        Ok(Err(message)) => message,
        Err(panic) => format!(
            "panicked: {}",
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        ),
    };
    Err(Box::new(Failure {
        seed,
        replay,
        message,
        scenario,
        nodes: world.node_summary(),
        at_ms: world.now - world.start_ms,
        trace: world.trace_lines(),
    }))
}

/// The whole (bounded) trace of a seed's run, pass or fail.
pub fn run_scenario_trace(seed: u64) -> Vec<String> {
    let mut world = World::new(Scenario::from_seed(seed), true);
    let _ = catch_unwind(AssertUnwindSafe(|| world.run()));
    world.trace_lines()
}
