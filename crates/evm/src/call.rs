//! Read-only calls and gas estimation against any state in the history window, bounded in gas
//! and in wall-clock time.

use crate::db::{bytecode, DbError, StoreDb};
use crate::executor::{block_env, cfg_env, ExecutionError};
use alloy_eips::eip2930::AccessList;
use alloy_primitives::{Address, Bytes, Log, TxKind, B256, U256};
use consort_chainspec::Genesis;
use consort_primitives::Header;
use consort_storage::{StateView, Store};
use revm::context::result::{EVMError, ExecutionResult};
use revm::context::TxEnv;
use revm::database::State;
use revm::database_interface::DatabaseRef;
use revm::interpreter::{InstructionResult, Interpreter};
use revm::state::{AccountInfo, Bytecode};
use revm::{Context, InspectEvm, Inspector, MainBuilder, MainContext};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Intrinsic cost of the cheapest transaction: the lower bound of every estimate.
const MIN_TRANSACTION_GAS: u64 = 21_000;
/// Instructions executed between two looks at the clock.
const CLOCK_CHECK_INTERVAL: u32 = 1_024;

/// What one `eth_call` or `eth_estimateGas` may spend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallLimits {
    /// Gas of a call that names none, and the most one may name (`--rpc-gas-cap`).
    pub gas_cap: u64,
    /// Wall-clock time of the whole request, every execution of an estimate included
    /// (`--Xrpc-call-timeout-ms`).
    pub timeout: Duration,
}

impl Default for CallLimits {
    fn default() -> Self {
        CallLimits {
            gas_cap: 50_000_000,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Halts execution once the deadline has passed: gas alone does not bound time when the cap is
/// high. Checked every [`CLOCK_CHECK_INTERVAL`] instructions; once expired, every frame still
/// running halts at its next instruction.
#[derive(Debug)]
struct Deadline {
    at: Instant,
    steps: u32,
    expired: bool,
}

impl Deadline {
    fn new(at: Instant) -> Self {
        Deadline {
            at,
            steps: 0,
            expired: Instant::now() >= at,
        }
    }
}

impl<CTX> Inspector<CTX> for Deadline {
    fn step(&mut self, interp: &mut Interpreter, _context: &mut CTX) {
        if !self.expired {
            self.steps = self.steps.wrapping_add(1);
            if !self.steps.is_multiple_of(CLOCK_CHECK_INTERVAL) || Instant::now() < self.at {
                return;
            }
            self.expired = true;
        }
        interp.halt(InstructionResult::OutOfGas);
    }
}

/// The fields of `eth_call` / `eth_estimateGas`.
#[derive(Clone, Debug, Default)]
pub struct CallRequest {
    /// Sender; the zero address when absent.
    pub from: Option<Address>,
    /// Recipient; a contract creation when absent.
    pub to: Option<Address>,
    /// Gas limit; the cap when absent.
    pub gas: Option<u64>,
    /// Legacy gas price.
    pub gas_price: Option<u128>,
    /// EIP-1559 fee cap.
    pub max_fee_per_gas: Option<u128>,
    /// EIP-1559 tip cap.
    pub max_priority_fee_per_gas: Option<u128>,
    /// Value sent.
    pub value: Option<U256>,
    /// Call data.
    pub input: Bytes,
    /// Nonce; the account's when absent.
    pub nonce: Option<u64>,
    /// EIP-2930 access list.
    pub access_list: Option<AccessList>,
    /// Accounts to pretend are different for this call (`eth_call`'s state override set).
    pub overrides: BTreeMap<Address, AccountOverride>,
}

/// One account of a state override set: each field replaces what the state holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountOverride {
    /// Balance.
    pub balance: Option<U256>,
    /// Nonce.
    pub nonce: Option<u64>,
    /// Code.
    pub code: Option<Bytes>,
    /// The whole storage: slots not named read as zero.
    pub state: Option<BTreeMap<B256, B256>>,
    /// Individual slots; the rest read through.
    pub state_diff: BTreeMap<B256, B256>,
}

/// The store's state with a call's overrides on top.
#[derive(Debug)]
struct OverrideDb<'a> {
    inner: StoreDb<'a>,
    overrides: &'a BTreeMap<Address, AccountOverride>,
}

impl DatabaseRef for OverrideDb<'_> {
    type Error = DbError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, DbError> {
        let base = self.inner.basic_ref(address)?;
        let Some(o) = self.overrides.get(&address) else {
            return Ok(base);
        };
        let mut info = base.unwrap_or_default();
        if let Some(b) = o.balance {
            info.balance = b;
        }
        if let Some(n) = o.nonce {
            info.nonce = n;
        }
        if let Some(code) = &o.code {
            let code = bytecode(code.clone());
            info.code_hash = code.hash_slow();
            info.code = Some(code);
        }
        Ok(Some(info))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, DbError> {
        for o in self.overrides.values() {
            if let Some(code) = &o.code {
                let code = bytecode(code.clone());
                if code.hash_slow() == code_hash {
                    return Ok(code);
                }
            }
        }
        self.inner.code_by_hash_ref(code_hash)
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, DbError> {
        if let Some(o) = self.overrides.get(&address) {
            let slot = B256::from(index);
            if let Some(v) = o.state_diff.get(&slot) {
                return Ok(U256::from_be_bytes(v.0));
            }
            if let Some(state) = &o.state {
                return Ok(state
                    .get(&slot)
                    .map_or(U256::ZERO, |v| U256::from_be_bytes(v.0)));
            }
        }
        self.inner.storage_ref(address, index)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, DbError> {
        self.inner.block_hash_ref(number)
    }
}

/// What a call did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallOutcome {
    /// Whether it succeeded.
    pub success: bool,
    /// Return data, or revert data.
    pub output: Bytes,
    /// Gas used.
    pub gas_used: u64,
    /// Logs emitted.
    pub logs: Vec<Log>,
    /// Whether it ended in REVERT (as opposed to a halt such as out-of-gas).
    pub reverted: bool,
    /// The halt reason when it neither succeeded nor reverted.
    pub halt: Option<String>,
}

fn run(
    view: &StateView<'_>,
    chain: &Genesis,
    header: &Header,
    req: &CallRequest,
    gas: u64,
    limits: &CallLimits,
    deadline: Instant,
) -> Result<CallOutcome, ExecutionError> {
    let timeout = || ExecutionError::Timeout {
        limit: limits.timeout,
    };
    let mut clock = Deadline::new(deadline);
    if clock.expired {
        return Err(timeout());
    }
    let mut cfg = cfg_env(chain, header.number, header.timestamp);
    // As geth and Besu: no fee or balance checks unless a price is given, no EIP-3607.
    let priced = req.gas_price.is_some() || req.max_fee_per_gas.is_some();
    cfg.disable_base_fee = !priced;
    cfg.disable_balance_check = !priced;
    cfg.disable_eip3607 = true;
    cfg.disable_nonce_check = req.nonce.is_none();
    cfg.disable_block_gas_limit = true;
    let block = block_env(chain, header, &cfg);
    let tx = TxEnv {
        tx_type: if req.max_fee_per_gas.is_some() {
            2
        } else if req.access_list.is_some() {
            1
        } else {
            0
        },
        caller: req.from.unwrap_or_default(),
        gas_limit: gas,
        gas_price: req.max_fee_per_gas.or(req.gas_price).unwrap_or(0),
        kind: req.to.map_or(TxKind::Create, TxKind::Call),
        value: req.value.unwrap_or_default(),
        data: req.input.clone(),
        nonce: req.nonce.unwrap_or_default(),
        chain_id: Some(chain.chain_id),
        access_list: req.access_list.clone().unwrap_or_default(),
        gas_priority_fee: req.max_priority_fee_per_gas,
        ..Default::default()
    };
    let mut state = State::builder()
        .with_database_ref(OverrideDb {
            inner: StoreDb::new(view.clone()),
            overrides: &req.overrides,
        })
        .build();
    let result = Context::mainnet()
        .with_db(&mut state)
        .with_cfg(cfg)
        .with_block(block)
        .build_mainnet_with_inspector(&mut clock)
        .inspect_tx(tx);
    if clock.expired {
        return Err(timeout());
    }
    let result = match result {
        Ok(r) => r.result,
        Err(EVMError::Transaction(e)) => {
            return Err(ExecutionError::InvalidTransaction {
                index: 0,
                hash: Default::default(),
                reason: e.to_string(),
            })
        }
        Err(EVMError::Database(e)) => return Err(e.into()),
        Err(e) => return Err(ExecutionError::Evm(e.to_string())),
    };
    let gas_used = result.tx_gas_used();
    Ok(match result {
        ExecutionResult::Success { logs, output, .. } => CallOutcome {
            success: true,
            output: output.into_data(),
            gas_used,
            logs,
            reverted: false,
            halt: None,
        },
        ExecutionResult::Revert { output, logs, .. } => CallOutcome {
            success: false,
            output,
            gas_used,
            logs,
            reverted: true,
            halt: None,
        },
        ExecutionResult::Halt { reason, logs, .. } => CallOutcome {
            success: false,
            output: Bytes::new(),
            gas_used,
            logs,
            reverted: false,
            halt: Some(format!("{reason:?}")),
        },
    })
}

/// Executes `req` on the state after block `header` without changing anything, reading one
/// snapshot of it. `limits.gas_cap` bounds the gas of a call that names none (and of one that
/// names more); a call still running after `limits.timeout` fails with
/// [`ExecutionError::Timeout`].
pub fn call(
    store: &Store,
    chain: &Genesis,
    header: &Header,
    req: &CallRequest,
    limits: &CallLimits,
) -> Result<CallOutcome, ExecutionError> {
    let deadline = deadline_after(limits.timeout);
    let view = store.state_at(header.number)?;
    let gas = req.gas.unwrap_or(limits.gas_cap).min(limits.gas_cap);
    run(&view, chain, header, req, gas, limits, deadline)
}

fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    // A timeout too large for the clock means none.
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

/// The least gas with which `req` succeeds, found by binary search between 21,000 and the smaller
/// of the request's gas, the block gas limit and `limits.gas_cap`, every execution on one
/// snapshot of the state and all of them together within `limits.timeout`. A call that fails
/// even with the most gas returns its outcome as the error.
pub fn estimate_gas(
    store: &Store,
    chain: &Genesis,
    header: &Header,
    req: &CallRequest,
    limits: &CallLimits,
) -> Result<Result<u64, CallOutcome>, ExecutionError> {
    let deadline = deadline_after(limits.timeout);
    let view = store.state_at(header.number)?;
    let attempt = |gas: u64| run(&view, chain, header, req, gas, limits, deadline);
    let mut hi = req
        .gas
        .unwrap_or(header.gas_limit)
        .min(header.gas_limit)
        .min(limits.gas_cap);
    let top = attempt(hi)?;
    if !top.success {
        return Ok(Err(top));
    }
    // Start just below what the full run used: most calls succeed with that plus refunds.
    let mut lo = MIN_TRANSACTION_GAS
        .saturating_sub(1)
        .max(top.gas_used.saturating_sub(1));
    if lo >= hi {
        return Ok(Ok(hi));
    }
    let first = lo.saturating_add(1);
    if attempt(first)?.success {
        return Ok(Ok(first));
    }
    lo = first;
    // Bounded: at most log2(hi) ≈ 30 executions.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if attempt(mid)?.success {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(Ok(hi))
}
