//! Crash safety: a child process commits blocks in a loop and is killed with SIGKILL at
//! arbitrary moments; every reopen must find a consistent head (header, canonical index,
//! receipts and state root agree, flat state matches the trie) and carry on from it.

mod common;

use alloy_primitives::{keccak256, U256};
use common::*;
use consort_storage::{Store, StoreOptions};
use consort_trie::verify_proof;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const CHILD_ENV: &str = "CONSORT_CRASH_CHILD_DIR";
const KILLS: u64 = 25;

/// Not a test on its own: the body of the child process.
#[test]
#[ignore = "run by kill_during_commits_never_corrupts_the_database as a child process"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = Store::open(std::path::Path::new(&dir), StoreOptions::default()).unwrap();
    loop {
        let next = store.head().unwrap().map_or(0, |(n, _)| n + 1);
        commit_next(&store, &changes_for(next));
        println!("committed {next}");
    }
}

fn check_consistent(store: &Store) -> u64 {
    store.verify_head_state().unwrap();
    let Some((number, hash)) = store.head().unwrap() else {
        return 0;
    };
    let header = store.header(&hash).unwrap().expect("head header");
    assert_eq!(header.number, number);
    assert_eq!(store.canonical_hash(number).unwrap(), Some(hash));
    assert_eq!(
        store.receipts(&hash).unwrap().expect("head receipts"),
        vec![receipt(number)]
    );
    assert_eq!(
        store.transactions(&hash).unwrap().expect("head body"),
        vec![transaction(number)]
    );
    // The last block's account has exactly what that block wrote, in flat state and in the trie.
    let address = account(number % 50);
    let view = store.state_at(number).unwrap();
    let flat = view
        .account(&address)
        .unwrap()
        .expect("account written by the head block");
    assert_eq!(flat.balance, U256::from(number));
    assert_eq!(
        view.storage(&address, &U256::from(number % 7)).unwrap(),
        U256::from(number)
    );
    let (_, proof, _) = store.proof(&address, &[]).unwrap();
    let proven = verify_proof(header.state_root, keccak256(address).as_slice(), &proof).unwrap();
    assert_eq!(proven, Some(alloy_rlp::encode(flat).into()));
    number
}

#[test]
fn kill_during_commits_never_corrupts_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut last = None;
    // A fixed sequence of delays between the first commit and the kill, so runs are repeatable.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..KILLS {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the child has committed at least one block in this round.
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let line = lines
                .next()
                .expect("child exited before committing")
                .unwrap();
            if line.starts_with("committed") {
                break;
            }
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 40));
        child.kill().unwrap();
        child.wait().unwrap();
        drop(lines);

        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let head = check_consistent(&store);
        if let Some(prev) = last {
            assert!(
                head > prev,
                "round {round}: head {head} did not advance past {prev}"
            );
        }
        last = Some(head);
    }
}
