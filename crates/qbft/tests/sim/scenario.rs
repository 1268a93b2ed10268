//! What goes wrong in one run, chosen from its seed: network behaviour before and after the
//! global stabilization time (GST), partitions, crashes and Byzantine validators.

use super::rng::Rng;
use consort_qbft::{QbftConfig, QbftTimings};
use std::fmt::Write as _;

/// The misbehaving validators the simulator knows how to play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByzKind {
    /// As proposer, sends different valid proposals to different validators and prepares and
    /// commits for both.
    EquivocatingProposer,
    /// Sends nothing at all.
    SilentValidator,
    /// Follows the protocol and also re-sends old messages it has seen or sent.
    Replayer,
    /// Proposes blocks the host's execution check rejects.
    InvalidBlockProposer,
    /// Sends round changes for many rounds (up to `MAX_ROUND`), with valid, bogus or no
    /// prepared certificates, different ones to different peers, for current and future
    /// heights, and floods votes for future rounds.
    ConflictingRoundChanger,
}

impl ByzKind {
    const ALL: [ByzKind; 5] = [
        ByzKind::EquivocatingProposer,
        ByzKind::SilentValidator,
        ByzKind::Replayer,
        ByzKind::InvalidBlockProposer,
        ByzKind::ConflictingRoundChanger,
    ];

    fn short(self) -> &'static str {
        match self {
            ByzKind::EquivocatingProposer => "equivocator",
            ByzKind::SilentValidator => "silent",
            ByzKind::Replayer => "replayer",
            ByzKind::InvalidBlockProposer => "invalid-proposer",
            ByzKind::ConflictingRoundChanger => "rc-flooder",
        }
    }
}

/// The family of faults a seed draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    Calm,
    Network,
    Partitions,
    Crashes,
    Byzantine,
    /// f Byzantine validators, mostly equivocating proposers, on a lossy, partitioned network:
    /// many round changes with prepared certificates for them to exploit.
    Attack,
    Everything,
}

/// Directed links cut during `[from_ms, until_ms)` (times relative to the start).
#[derive(Debug, Clone)]
pub struct Partition {
    pub from_ms: u64,
    pub until_ms: u64,
    /// `blocked[from * n + to]`.
    pub blocked: Vec<bool>,
    pub label: String,
}

#[derive(Debug, Clone)]
pub struct CrashPlan {
    pub node: usize,
    pub at_ms: u64,
    pub restart_ms: u64,
    /// Crash in the middle of carrying out the outputs of the next input, not between inputs.
    pub mid_handle: bool,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    /// The command that runs this scenario again.
    pub replay: String,
    pub n: usize,
    pub mix: Mix,
    pub config: QbftConfig,
    pub timings: QbftTimings,
    pub gst_ms: u64,
    pub delay_max_ms: u64,
    pub delay_max_post_gst_ms: u64,
    pub long_delay_per_mille: u64,
    pub loss_per_mille: u64,
    /// Extra loss of Commit messages before GST: an adversarial network that lets validators
    /// commit but not decide, so later rounds must honour what they prepared.
    pub commit_loss_per_mille: u64,
    pub dup_per_mille: u64,
    /// Each validator's clock error, in milliseconds.
    pub clock_skew_ms: Vec<i64>,
    pub partitions: Vec<Partition>,
    pub byzantine: Vec<(usize, ByzKind)>,
    pub crashes: Vec<CrashPlan>,
    /// Heights every honest validator must add after GST.
    pub k_heights: u64,
    /// Interval of a flooding or replaying validator's extra sends.
    pub byz_tick_ms: u64,
    /// Junk votes a flooding validator sends to everyone per tick.
    pub flood_burst: u64,
    /// Whether replaying and flooding validators also pass on their core's own messages
    /// (otherwise they only replay or flood).
    pub byz_participates: bool,
}

pub const VALIDATOR_COUNTS: [usize; 3] = [4, 7, 10];

/// Round-timeout ceiling used with early round change on.
pub const ROUND_TIMEOUT_MAX_MS: u64 = 30_000;

impl Scenario {
    /// The scenario of `seed`: `n` is `VALIDATOR_COUNTS[seed % 3]`, the rest is drawn.
    pub fn from_seed(seed: u64) -> Scenario {
        let mut rng = Rng::new(seed);
        let n = VALIDATOR_COUNTS[(seed % 3) as usize];
        let f = (n - 1) / 3;
        let mix = match rng.below(100) {
            0..=3 => Mix::Calm,
            4..=15 => Mix::Network,
            16..=31 => Mix::Partitions,
            32..=47 => Mix::Crashes,
            48..=63 => Mix::Byzantine,
            64..=79 => Mix::Attack,
            _ => Mix::Everything,
        };
        // Early round change off: half of those seeds keep Besu's uncapped doubling, half keep
        // the ceiling.
        let early_round_change = !rng.chance(200);
        let round_timeout_max_ms = if early_round_change || rng.chance(500) {
            ROUND_TIMEOUT_MAX_MS
        } else {
            u64::MAX
        };
        let timings = QbftTimings {
            block_period_ms: 1_000,
            empty_block_period_ms: *rng.pick(&[0, 0, 0, 2_000, 3_000, 5_000]),
            request_timeout_ms: 4_000,
        };
        let gst_ms = if mix == Mix::Calm {
            1_000
        } else {
            rng.range(3_000, 25_000)
        };
        let noisy = matches!(mix, Mix::Network | Mix::Everything | Mix::Attack);
        let delay_max_ms = if noisy {
            *rng.pick(&[5, 50, 300, 1_500])
        } else {
            rng.range(2, 60)
        };
        let loss_per_mille = match mix {
            Mix::Network | Mix::Everything | Mix::Partitions => *rng.pick(&[0, 20, 100, 300]),
            Mix::Attack => *rng.pick(&[50, 100, 300]),
            Mix::Calm => 0,
            _ => *rng.pick(&[0, 10]),
        };
        let dup_per_mille = if mix == Mix::Calm {
            0
        } else {
            *rng.pick(&[0, 30, 150])
        };
        let long_delay_per_mille = if noisy { *rng.pick(&[0, 10, 50]) } else { 0 };

        // Clocks off by up to half a second (a second in the noisiest mixes).
        let skew = match mix {
            Mix::Calm => 0,
            Mix::Network | Mix::Everything | Mix::Attack => *rng.pick(&[0, 200, 1_000]),
            _ => *rng.pick(&[0, 0, 500]),
        };
        let clock_skew_ms = (0..n)
            .map(|_| rng.range(0, 2 * skew) as i64 - skew as i64)
            .collect();

        let mut partitions = Vec::new();
        if matches!(mix, Mix::Partitions | Mix::Everything | Mix::Attack) {
            let mut t = rng.range(0, 2_000);
            while t + 500 < gst_ms {
                let until = (t + rng.range(1_000, 12_000)).min(gst_ms);
                partitions.push(partition(&mut rng, n, t, until));
                t = until + rng.range(0, 3_000);
            }
        }

        let mut byzantine = Vec::new();
        let byz_count = match mix {
            Mix::Byzantine => rng.range(1, f as u64) as usize,
            Mix::Everything => rng.range(0, f as u64) as usize,
            Mix::Attack => f,
            _ => 0,
        };
        let mut order: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut order);
        for &node in order.iter().take(byz_count) {
            let kind = if mix == Mix::Attack && rng.chance(600) {
                ByzKind::EquivocatingProposer
            } else {
                *rng.pick(&ByzKind::ALL)
            };
            byzantine.push((node, kind));
        }
        byzantine.sort_by_key(|(node, _)| *node);

        // Crashes: at most f - byz_count validators down at once, each slot owning its own
        // validators so slots never overlap on one node.
        let mut crashes = Vec::new();
        if matches!(mix, Mix::Crashes | Mix::Everything) {
            let slots = f - byz_count;
            let honest: Vec<usize> = order.iter().skip(byz_count).copied().collect();
            for slot in 0..slots {
                let owned: Vec<usize> = honest
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| k % slots == slot)
                    .map(|(_, node)| *node)
                    .collect();
                let mut t = rng.range(0, 3_000);
                while t + 300 < gst_ms {
                    let node = *rng.pick(&owned);
                    let restart_ms = (t + rng.range(300, 10_000)).min(gst_ms);
                    crashes.push(CrashPlan {
                        node,
                        at_ms: t,
                        restart_ms,
                        mid_handle: rng.chance(500),
                    });
                    t = restart_ms + rng.range(200, 5_000);
                }
            }
        }
        Scenario {
            seed,
            replay: format!(
                "CONSORT_SIM_SEED={seed} cargo test -p consort-qbft --test simulator -- one_seed \
                 --nocapture"
            ),
            n,
            mix,
            config: QbftConfig {
                early_round_change,
                round_timeout_max_ms,
            },
            timings,
            gst_ms,
            delay_max_ms,
            delay_max_post_gst_ms: delay_max_ms.min(200),
            long_delay_per_mille,
            loss_per_mille,
            commit_loss_per_mille: if mix == Mix::Attack { 500 } else { 0 },
            dup_per_mille,
            clock_skew_ms,
            partitions,
            byzantine,
            crashes,
            k_heights: 3,
            byz_tick_ms: rng.range(150, 1_000),
            flood_burst: rng.range(1, 3),
            byz_participates: rng.chance(500),
        }
    }

    /// `n` validators on a quick, reliable network, no faults: the base of focused scenarios,
    /// which `test` (a test name) runs again.
    pub fn calm(seed: u64, n: usize, test: &str) -> Scenario {
        Scenario {
            seed,
            replay: format!("cargo test -p consort-qbft --test simulator -- {test} --nocapture"),
            n,
            mix: Mix::Calm,
            config: QbftConfig {
                early_round_change: true,
                round_timeout_max_ms: ROUND_TIMEOUT_MAX_MS,
            },
            timings: QbftTimings {
                block_period_ms: 1_000,
                empty_block_period_ms: 0,
                request_timeout_ms: 4_000,
            },
            gst_ms: 1_000,
            delay_max_ms: 50,
            delay_max_post_gst_ms: 50,
            long_delay_per_mille: 0,
            loss_per_mille: 0,
            commit_loss_per_mille: 0,
            dup_per_mille: 0,
            clock_skew_ms: vec![0; n],
            partitions: Vec::new(),
            byzantine: Vec::new(),
            crashes: Vec::new(),
            k_heights: 3,
            byz_tick_ms: 500,
            flood_burst: 1,
            byz_participates: true,
        }
    }

    pub fn byz(&self, node: usize) -> Option<ByzKind> {
        self.byzantine
            .iter()
            .find(|(i, _)| *i == node)
            .map(|(_, k)| *k)
    }

    /// One line: everything that was drawn.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "seed={} n={} mix={:?} early_rc={} cap={} empty={}ms gst={}ms delay<={}ms(post {}ms) \
             long={}‰ loss={}‰ commit_loss={}‰ dup={}‰ skew={:?}ms",
            self.seed,
            self.n,
            self.mix,
            if self.config.early_round_change {
                "on"
            } else {
                "off"
            },
            if self.config.round_timeout_max_ms == u64::MAX {
                "none".to_string()
            } else {
                format!("{}ms", self.config.round_timeout_max_ms)
            },
            self.timings.empty_block_period_ms,
            self.gst_ms,
            self.delay_max_ms,
            self.delay_max_post_gst_ms,
            self.long_delay_per_mille,
            self.loss_per_mille,
            self.commit_loss_per_mille,
            self.dup_per_mille,
            self.clock_skew_ms
        );
        if !self.partitions.is_empty() {
            s.push_str(" partitions=[");
            for (k, p) in self.partitions.iter().enumerate() {
                if k > 0 {
                    s.push_str(", ");
                }
                let _ = write!(s, "{} {}-{}ms", p.label, p.from_ms, p.until_ms);
            }
            s.push(']');
        }
        if !self.byzantine.is_empty() {
            s.push_str(" byz=[");
            for (k, (node, kind)) in self.byzantine.iter().enumerate() {
                if k > 0 {
                    s.push_str(", ");
                }
                let _ = write!(s, "n{node}:{}", kind.short());
            }
            let _ = write!(
                s,
                "] byz_tick={}ms flood_burst={} byz_participates={}",
                self.byz_tick_ms, self.flood_burst, self.byz_participates
            );
        }
        if !self.crashes.is_empty() {
            s.push_str(" crashes=[");
            for (k, c) in self.crashes.iter().enumerate() {
                if k > 0 {
                    s.push_str(", ");
                }
                let _ = write!(
                    s,
                    "n{} {}-{}ms{}",
                    c.node,
                    c.at_ms,
                    c.restart_ms,
                    if c.mid_handle { " mid-handle" } else { "" }
                );
            }
            s.push(']');
        }
        s
    }
}

fn partition(rng: &mut Rng, n: usize, from_ms: u64, until_ms: u64) -> Partition {
    let mut blocked = vec![false; n * n];
    let mut nodes: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut nodes);
    let label;
    match rng.below(5) {
        // Two sides that cannot hear each other.
        0 | 1 => {
            let cut = rng.range(1, n as u64 - 1) as usize;
            let (a, b) = nodes.split_at(cut);
            let one_way = rng.chance(500);
            for &x in a {
                for &y in b {
                    blocked[x * n + y] = true;
                    if !one_way {
                        blocked[y * n + x] = true;
                    }
                }
            }
            label = format!(
                "split{{{}{}{}}}",
                list(a),
                if one_way { "->x " } else { "|" },
                list(b)
            );
        }
        // One validator cut off, in one or both directions.
        2 | 3 => {
            let node = nodes[0];
            let (deaf, mute) = match rng.below(3) {
                0 => (true, false),
                1 => (false, true),
                _ => (true, true),
            };
            for other in 0..n {
                if other != node {
                    if deaf {
                        blocked[other * n + node] = true;
                    }
                    if mute {
                        blocked[node * n + other] = true;
                    }
                }
            }
            label = format!(
                "isolate{{n{node}{}{}}}",
                if deaf { " deaf" } else { "" },
                if mute { " mute" } else { "" }
            );
        }
        // Random directed links down.
        _ => {
            let mut cut = 0;
            for from in 0..n {
                for to in 0..n {
                    if from != to && rng.chance(300) {
                        blocked[from * n + to] = true;
                        cut += 1;
                    }
                }
            }
            label = format!("links{{{cut} cut}}");
        }
    }
    Partition {
        from_ms,
        until_ms,
        blocked,
        label,
    }
}

fn list(nodes: &[usize]) -> String {
    nodes
        .iter()
        .map(|n| format!("n{n}"))
        .collect::<Vec<_>>()
        .join(",")
}
