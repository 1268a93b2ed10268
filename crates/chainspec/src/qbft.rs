//! `config.qbft` and `config.transitions.qbft` (see Besu's `JsonQbftConfigOptions`, `QbftFork`).

use crate::json::{parse_address, parse_u256, Obj};
use crate::{GenesisError, Result};
use alloy_primitives::{Address, U256};
use serde_json::Value;

/// How the validator set is chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValidatorSelection {
    /// Validators come from block headers and votes.
    BlockHeader,
    /// Validators are read from a contract at this address.
    Contract(Address),
}

/// The QBFT parameters in force at some block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QbftParams {
    /// Minimum seconds between blocks.
    pub block_period_seconds: u64,
    /// Minimum seconds between empty blocks; 0 means the block period applies.
    pub empty_block_period_seconds: u64,
    /// Test-only sub-second block period; 0 when unused.
    pub block_period_milliseconds: u64,
    /// Wei credited to the beneficiary per block.
    pub block_reward: U256,
    /// Who receives the block reward; the block's coinbase when `None`.
    pub mining_beneficiary: Option<Address>,
    /// Where validators come from.
    pub validator_selection: ValidatorSelection,
    /// Optional cap on gas per transaction (0 = none).
    pub per_tx_gas_limit: Option<u64>,
    /// Base round timeout in seconds (a transition may change it; Besu's cannot).
    pub request_timeout_seconds: u64,
}

/// A `transitions.qbft` entry: overrides from `block` on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QbftTransition {
    /// First block the overrides apply to.
    pub block: u64,
    /// New block period.
    pub block_period_seconds: Option<u64>,
    /// New empty-block period.
    pub empty_block_period_seconds: Option<u64>,
    /// New sub-second block period.
    pub block_period_milliseconds: Option<u64>,
    /// New block reward.
    pub block_reward: Option<U256>,
    /// New beneficiary; `Some(None)` clears it (an empty string in the file).
    pub mining_beneficiary: Option<Option<Address>>,
    /// New per-transaction gas cap.
    pub per_tx_gas_limit: Option<u64>,
    /// New base round timeout.
    pub request_timeout_seconds: Option<u64>,
    /// New validator selection mode.
    pub validator_selection: Option<ValidatorSelection>,
    /// Validators that replace the current set at this block (block-header mode).
    pub validators: Option<Vec<Address>>,
}

/// The whole QBFT configuration of a genesis file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QbftConfig {
    /// Parameters from genesis.
    pub genesis: QbftParams,
    /// Blocks between vote-tally resets.
    pub epoch_length: u64,
    /// First QBFT block when migrating from another consensus.
    pub start_block: Option<u64>,
    /// Size of the re-gossip dedup cache.
    pub gossiped_history_limit: u64,
    /// Capacity of the consensus event queue.
    pub message_queue_limit: u64,
    /// Size of the received-message dedup cache.
    pub duplicate_message_limit: u64,
    /// Maximum buffered future-height messages.
    pub future_messages_limit: u64,
    /// Maximum height distance of buffered messages.
    pub future_messages_max_distance: u64,
    /// Overrides by block, sorted by block.
    pub transitions: Vec<QbftTransition>,
}

impl QbftParams {
    /// The least a child's timestamp must exceed its parent's, in seconds: the block period,
    /// or 0 with `xblockperiodmilliseconds` (several blocks may share a second).
    pub fn min_timestamp_gap(&self) -> u64 {
        if self.block_period_milliseconds > 0 {
            0
        } else {
            self.block_period_seconds
        }
    }
}

impl QbftConfig {
    pub(crate) fn parse(qbft: &Obj<'_>, transitions: Option<&Obj<'_>>) -> Result<Self> {
        let positive = |key: &str, default: u64| -> Result<u64> {
            let v = qbft.u64(key)?.unwrap_or(default);
            if v == 0 {
                return Err(GenesisError::field(
                    qbft.name(key),
                    "must be greater than zero",
                ));
            }
            Ok(v)
        };
        let contract = qbft.address("validatorcontractaddress")?;
        let genesis = QbftParams {
            block_period_seconds: positive("blockperiodseconds", 1)?,
            empty_block_period_seconds: match qbft.u64("emptyblockperiodseconds")? {
                Some(v) => v,
                None => qbft.u64("xemptyblockperiodseconds")?.unwrap_or(0),
            },
            block_period_milliseconds: qbft.u64("xblockperiodmilliseconds")?.unwrap_or(0),
            block_reward: qbft.u256("blockreward")?.unwrap_or_default(),
            mining_beneficiary: beneficiary(qbft)?.flatten(),
            validator_selection: contract.map_or(
                ValidatorSelection::BlockHeader,
                ValidatorSelection::Contract,
            ),
            per_tx_gas_limit: qbft.u64("pertxgaslimit")?.filter(|v| *v > 0),
            request_timeout_seconds: positive("requesttimeoutseconds", 1)?,
        };
        let mut config = QbftConfig {
            genesis,
            epoch_length: positive("epochlength", 30_000)?,
            start_block: qbft.u64("startblock")?,
            gossiped_history_limit: qbft.u64("gossipedhistorylimit")?.unwrap_or(1000),
            message_queue_limit: qbft.u64("messagequeuelimit")?.unwrap_or(1000),
            duplicate_message_limit: qbft.u64("duplicatemessagelimit")?.unwrap_or(100),
            future_messages_limit: qbft.u64("futuremessageslimit")?.unwrap_or(1000),
            future_messages_max_distance: qbft.u64("futuremessagesmaxdistance")?.unwrap_or(10),
            transitions: Vec::new(),
        };
        if let Some(t) = transitions {
            config.transitions = parse_transitions(t)?;
        }
        Ok(config)
    }

    /// The parameters in force for block `number`: genesis values with every transition up to
    /// `number` applied in order.
    pub fn params_at(&self, number: u64) -> QbftParams {
        let mut p = self.genesis.clone();
        for t in self.transitions.iter().filter(|t| t.block <= number) {
            if let Some(v) = t.block_period_seconds {
                p.block_period_seconds = v;
            }
            if let Some(v) = t.empty_block_period_seconds {
                p.empty_block_period_seconds = v;
            }
            if let Some(v) = t.block_period_milliseconds {
                p.block_period_milliseconds = v;
            }
            if let Some(v) = t.block_reward {
                p.block_reward = v;
            }
            if let Some(v) = t.mining_beneficiary {
                p.mining_beneficiary = v;
            }
            if let Some(v) = t.per_tx_gas_limit {
                p.per_tx_gas_limit = (v > 0).then_some(v);
            }
            if let Some(v) = t.request_timeout_seconds {
                p.request_timeout_seconds = v;
            }
            if let Some(v) = &t.validator_selection {
                p.validator_selection = v.clone();
            }
        }
        p
    }
}

fn beneficiary(obj: &Obj<'_>) -> Result<Option<Option<Address>>> {
    match obj.string("miningbeneficiary")? {
        None => Ok(None),
        Some("") => Ok(Some(None)),
        Some(s) => parse_address(s)
            .map(|a| Some(Some(a)))
            .map_err(|r| GenesisError::field(obj.name("miningbeneficiary"), r)),
    }
}

fn parse_transitions(transitions: &Obj<'_>) -> Result<Vec<QbftTransition>> {
    let field = transitions.name("qbft");
    let items = match transitions.get("qbft") {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(GenesisError::field(
                field,
                format!("expected an array, got {other}"),
            ))
        }
    };
    let mut out: Vec<QbftTransition> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("{field}[{i}]");
        let map = item
            .as_object()
            .ok_or_else(|| GenesisError::field(&path, "expected an object"))?;
        let obj = Obj {
            path: path.clone(),
            map,
        };
        let block = obj
            .u64("block")?
            .ok_or_else(|| GenesisError::field(obj.name("block"), "is required"))?;
        if block == 0 {
            return Err(GenesisError::field(
                obj.name("block"),
                "must be greater than zero",
            ));
        }
        if out.iter().any(|t| t.block == block) {
            return Err(GenesisError::field(
                obj.name("block"),
                format!("block {block} has two transitions"),
            ));
        }
        let validators = match obj.get("validators") {
            None => None,
            Some(Value::Array(list)) => Some(
                list.iter()
                    .enumerate()
                    .map(|(j, v)| {
                        let name = format!("{}[{j}]", obj.name("validators"));
                        v.as_str()
                            .ok_or_else(|| GenesisError::field(&name, "expected an address string"))
                            .and_then(|s| {
                                parse_address(s).map_err(|r| GenesisError::field(&name, r))
                            })
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            Some(other) => {
                return Err(GenesisError::field(
                    obj.name("validators"),
                    format!("expected an array, got {other}"),
                ))
            }
        };
        let contract = obj.address("validatorcontractaddress")?;
        let validator_selection = match obj
            .string("validatorselectionmode")?
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None => contract.map(ValidatorSelection::Contract),
            Some("blockheader") => {
                if validators.as_ref().is_none_or(Vec::is_empty) {
                    return Err(GenesisError::field(
                        obj.name("validators"),
                        "blockheader mode needs a non-empty validators list",
                    ));
                }
                Some(ValidatorSelection::BlockHeader)
            }
            Some("contract") => Some(ValidatorSelection::Contract(contract.ok_or_else(|| {
                GenesisError::field(
                    obj.name("validatorcontractaddress"),
                    "contract mode needs a validator contract address",
                )
            })?)),
            Some(other) => {
                return Err(GenesisError::field(
                    obj.name("validatorselectionmode"),
                    format!("`{other}` is neither blockheader nor contract"),
                ))
            }
        };
        let positive_or_none = |key: &str| -> Result<Option<u64>> {
            match obj.u64(key)? {
                Some(0) => Err(GenesisError::field(
                    obj.name(key),
                    "must be greater than zero",
                )),
                v => Ok(v),
            }
        };
        out.push(QbftTransition {
            block,
            block_period_seconds: positive_or_none("blockperiodseconds")?,
            empty_block_period_seconds: match obj.u64("emptyblockperiodseconds")? {
                Some(v) => Some(v),
                None => obj.u64("xemptyblockperiodseconds")?,
            },
            block_period_milliseconds: obj.u64("xblockperiodmilliseconds")?,
            block_reward: obj
                .get("blockreward")
                .map(parse_u256)
                .transpose()
                .map_err(|r| GenesisError::field(obj.name("blockreward"), r))?,
            mining_beneficiary: beneficiary(&obj)?,
            per_tx_gas_limit: obj.u64("pertxgaslimit")?,
            request_timeout_seconds: positive_or_none("requesttimeoutseconds")?,
            validator_selection,
            validators,
        });
    }
    out.sort_by_key(|t| t.block);
    Ok(out)
}
