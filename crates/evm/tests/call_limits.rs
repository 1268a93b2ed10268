//! `eth_call` and `eth_estimateGas` are bounded in wall-clock time as well as in gas: a contract
//! that loops forever under a huge gas cap is stopped at the time limit with an error naming it.

use alloy_primitives::{Address, Bytes};
use consort_chainspec::Genesis;
use consort_evm::{call, estimate_gas, init_genesis, CallLimits, CallRequest, ExecutionError};
use consort_primitives::Header;
use consort_storage::{Store, StoreOptions};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `JUMPDEST PUSH1 0 JUMP`: jumps back to itself until the gas runs out.
const LOOP_FOREVER: &str = "0x5b600056";
const LOOPER: Address = Address::repeat_byte(0x10);

fn setup() -> (tempfile::TempDir, Store, Genesis, Header) {
    let json = serde_json::json!({
        "config": { "chainId": 1337, "berlinBlock": 0, "londonBlock": 0, "shanghaiTime": 0, "cancunTime": 0,
                    "qbft": { "blockperiodseconds": 1 } },
        "gasLimit": "0x1c9c380", "difficulty": "0x1", "extraData": "0xe5a00000000000000000000000000000000000000000000000000000000000000000c0c080c0",
        "alloc": { format!("{LOOPER:x}"): { "balance": "0", "code": LOOP_FOREVER } }
    });
    let genesis = Genesis::from_json(&json.to_string()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let (header, _) = init_genesis(&store, &genesis).unwrap();
    (dir, store, genesis, header)
}

/// Gas for about 10^11 loop iterations: hours of execution if time did not bound it.
const HUGE_GAS_CAP: u64 = 1_000_000_000_000;
const TIMEOUT: Duration = Duration::from_millis(200);
/// How long past the limit a call may take to notice it.
const SLACK: Duration = Duration::from_secs(5);

/// Runs `f` on its own thread and fails the test if it has not returned within `bound`.
fn within<T: Send + 'static>(bound: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(bound)
        .unwrap_or_else(|_| panic!("still running after {bound:?}"))
}

fn endless_call() -> CallRequest {
    CallRequest {
        to: Some(LOOPER),
        gas: Some(HUGE_GAS_CAP),
        input: Bytes::new(),
        ..Default::default()
    }
}

#[test]
fn an_endless_call_under_a_huge_gas_cap_stops_at_the_time_limit() {
    let (dir, store, genesis, header) = setup();
    let limits = CallLimits {
        gas_cap: HUGE_GAS_CAP,
        timeout: TIMEOUT,
    };
    let start = Instant::now();
    let result = within(TIMEOUT + SLACK, move || {
        let _dir = dir;
        call(&store, &genesis, &header, &endless_call(), &limits)
    });
    let elapsed = start.elapsed();
    let err = result.unwrap_err();
    assert!(
        matches!(err, ExecutionError::Timeout { limit } if limit == TIMEOUT),
        "{err}"
    );
    assert_eq!(err.to_string(), "execution aborted (timeout = 200ms)");
    assert!(
        elapsed >= TIMEOUT,
        "stopped after {elapsed:?}, before the limit"
    );
}

#[test]
fn an_endless_gas_estimate_stops_at_the_time_limit() {
    let (dir, store, genesis, mut header) = setup();
    // The estimate searches up to the block gas limit: make that huge too.
    header.gas_limit = HUGE_GAS_CAP;
    let limits = CallLimits {
        gas_cap: HUGE_GAS_CAP,
        timeout: TIMEOUT,
    };
    let result = within(TIMEOUT + SLACK, move || {
        let _dir = dir;
        estimate_gas(&store, &genesis, &header, &endless_call(), &limits)
    });
    assert!(
        matches!(result, Err(ExecutionError::Timeout { .. })),
        "{result:?}"
    );
}

#[test]
fn a_call_that_ends_in_time_is_not_affected() {
    let (_dir, store, genesis, header) = setup();
    // The same loop under a small gas cap runs out of gas well within the limit.
    let limits = CallLimits {
        gas_cap: 1_000_000,
        timeout: Duration::from_secs(30),
    };
    let out = call(&store, &genesis, &header, &endless_call(), &limits).unwrap();
    assert!(!out.success && !out.reverted);
    assert!(out.halt.unwrap().contains("OutOfGas"));
}
