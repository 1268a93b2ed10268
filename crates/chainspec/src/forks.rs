//! The Ethereum fork schedule a genesis file declares.

use crate::json::Obj;
use crate::Result;
use serde::Serialize;
use std::fmt;

/// Ethereum hard forks in activation order. Each includes every earlier one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Hardfork {
    /// The launch rules.
    Frontier,
    /// EIP-2, EIP-7, EIP-8.
    Homestead,
    /// EIP-150 gas repricing.
    Tangerine,
    /// EIP-155, EIP-158/161 state clearing.
    SpuriousDragon,
    /// EIP-140, EIP-658 status receipts and others.
    Byzantium,
    /// EIP-145, EIP-1014, EIP-1052, EIP-1283.
    Constantinople,
    /// Constantinople without EIP-1283.
    Petersburg,
    /// EIP-1344, EIP-1884, EIP-2028, EIP-2200.
    Istanbul,
    /// EIP-2565, EIP-2718, EIP-2929, EIP-2930.
    Berlin,
    /// EIP-1559, EIP-3198, EIP-3529, EIP-3541.
    London,
    /// The merge opcode changes (PREVRANDAO); implied by Shanghai on QBFT chains.
    Paris,
    /// EIP-3651, EIP-3855, EIP-3860, EIP-4895.
    Shanghai,
    /// EIP-1153, EIP-4788, EIP-4844, EIP-5656, EIP-6780, EIP-7516.
    Cancun,
    /// EIP-2537, EIP-2935, EIP-6110, EIP-7002, EIP-7251, EIP-7623, EIP-7685, EIP-7702.
    Prague,
    /// EIP-7594, EIP-7823, EIP-7825, EIP-7883, EIP-7939 and others.
    Osaka,
}

impl Hardfork {
    /// Every fork, oldest first.
    pub const ALL: [Hardfork; 15] = [
        Hardfork::Frontier,
        Hardfork::Homestead,
        Hardfork::Tangerine,
        Hardfork::SpuriousDragon,
        Hardfork::Byzantium,
        Hardfork::Constantinople,
        Hardfork::Petersburg,
        Hardfork::Istanbul,
        Hardfork::Berlin,
        Hardfork::London,
        Hardfork::Paris,
        Hardfork::Shanghai,
        Hardfork::Cancun,
        Hardfork::Prague,
        Hardfork::Osaka,
    ];

    /// The fork's name in the Ethereum test suites (`Berlin`, `London`, `Merge`, `Cancun`...).
    pub fn test_name(self) -> &'static str {
        match self {
            Hardfork::Frontier => "Frontier",
            Hardfork::Homestead => "Homestead",
            Hardfork::Tangerine => "EIP150",
            Hardfork::SpuriousDragon => "EIP158",
            Hardfork::Byzantium => "Byzantium",
            Hardfork::Constantinople => "Constantinople",
            Hardfork::Petersburg => "ConstantinopleFix",
            Hardfork::Istanbul => "Istanbul",
            Hardfork::Berlin => "Berlin",
            Hardfork::London => "London",
            Hardfork::Paris => "Merge",
            Hardfork::Shanghai => "Shanghai",
            Hardfork::Cancun => "Cancun",
            Hardfork::Prague => "Prague",
            Hardfork::Osaka => "Osaka",
        }
    }

    /// Parses a fork name as the test suites write it (`Paris` is accepted for `Merge`).
    pub fn from_test_name(name: &str) -> Option<Self> {
        if name == "Paris" {
            return Some(Hardfork::Paris);
        }
        Hardfork::ALL.into_iter().find(|f| f.test_name() == name)
    }
}

impl fmt::Display for Hardfork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.test_name())
    }
}

/// When a fork activates: at a block number or at a timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ForkCondition {
    /// Active from this block number.
    Block(u64),
    /// Active from the first block with at least this timestamp.
    Timestamp(u64),
}

impl ForkCondition {
    fn active(self, number: u64, timestamp: u64) -> bool {
        match self {
            ForkCondition::Block(b) => number >= b,
            ForkCondition::Timestamp(t) => timestamp >= t,
        }
    }
}

/// The forks a chain schedules, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForkSchedule {
    forks: Vec<(Hardfork, ForkCondition)>,
}

const BLOCK_KEYS: [(&str, Hardfork); 10] = [
    ("homesteadblock", Hardfork::Homestead),
    ("eip150block", Hardfork::Tangerine),
    ("eip158block", Hardfork::SpuriousDragon),
    ("byzantiumblock", Hardfork::Byzantium),
    ("constantinopleblock", Hardfork::Constantinople),
    ("petersburgblock", Hardfork::Petersburg),
    ("istanbulblock", Hardfork::Istanbul),
    ("berlinblock", Hardfork::Berlin),
    ("londonblock", Hardfork::London),
    ("parisblock", Hardfork::Paris),
];

const TIME_KEYS: [(&str, Hardfork); 4] = [
    ("shanghaitime", Hardfork::Shanghai),
    ("cancuntime", Hardfork::Cancun),
    ("praguetime", Hardfork::Prague),
    ("osakatime", Hardfork::Osaka),
];

impl ForkSchedule {
    /// Every fork active from genesis up to and including `last`.
    pub fn all_at_genesis(last: Hardfork) -> Self {
        let forks = Hardfork::ALL
            .into_iter()
            .filter(|f| *f != Hardfork::Frontier && *f <= last)
            .map(|f| {
                (
                    f,
                    if f >= Hardfork::Shanghai {
                        ForkCondition::Timestamp(0)
                    } else {
                        ForkCondition::Block(0)
                    },
                )
            })
            .collect();
        Self { forks }
    }

    pub(crate) fn parse(config: &Obj<'_>) -> Result<Self> {
        let mut forks = Vec::new();
        for (key, fork) in BLOCK_KEYS {
            let value = match key {
                // Besu and geth both name Petersburg `constantinopleFixBlock` in older files.
                "petersburgblock" => match config.u64(key)? {
                    Some(v) => Some(v),
                    None => config.u64("constantinoplefixblock")?,
                },
                _ => config.u64(key)?,
            };
            if let Some(block) = value {
                forks.push((fork, ForkCondition::Block(block)));
            }
        }
        for (key, fork) in TIME_KEYS {
            if let Some(time) = config.u64(key)? {
                forks.push((fork, ForkCondition::Timestamp(time)));
            }
        }
        // Timestamp forks after London imply the merge's opcode rules on a QBFT chain.
        if !forks.iter().any(|(f, _)| *f == Hardfork::Paris) {
            if let Some((_, cond)) = forks.iter().find(|(f, _)| *f == Hardfork::Shanghai) {
                forks.push((Hardfork::Paris, *cond));
            }
        }
        forks.sort_by_key(|(f, _)| *f);
        Ok(Self { forks })
    }

    /// The newest fork active for a block with this number and timestamp.
    pub fn active_at(&self, number: u64, timestamp: u64) -> Hardfork {
        self.forks
            .iter()
            .filter(|(_, c)| c.active(number, timestamp))
            .map(|(f, _)| *f)
            .max()
            .unwrap_or(Hardfork::Frontier)
    }

    /// Whether `fork` is active for a block with this number and timestamp.
    pub fn is_active(&self, fork: Hardfork, number: u64, timestamp: u64) -> bool {
        self.active_at(number, timestamp) >= fork
    }

    /// The scheduled forks and when each activates.
    pub fn iter(&self) -> impl Iterator<Item = (Hardfork, ForkCondition)> + '_ {
        self.forks.iter().copied()
    }
}
