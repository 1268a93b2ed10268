//! Ethereum TransactionTests: consort accepts exactly the valid transactions for each fork, with
//! the same hash, sender and intrinsic gas.

use alloy_primitives::{Address, B256};
use consort_chainspec::Hardfork;
use consort_evm::validate_raw_transaction;
#[path = "../../../tests/support/conformance.rs"]
mod conformance;

#[test]
fn transaction_tests_pass() {
    let Some(dir) = conformance::find("ethereum-tests/TransactionTests") else {
        return;
    };
    let files = consort_evm::statetest::collect_files(&[dir]).unwrap();
    assert!(files.len() > 100);
    let skips: Vec<(&str, &str)> = include_str!("transaction-test-skips.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .collect();
    let (mut passed, mut skipped, mut failures) = (0usize, 0usize, Vec::new());
    for file in files {
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        for (name, test) in json.as_object().unwrap() {
            let raw = alloy_primitives::hex::decode(test["txbytes"].as_str().unwrap())
                .unwrap_or_default();
            for (fork_name, expected) in test["result"].as_object().unwrap() {
                let fork = match fork_name.as_str() {
                    "Constantinople" => Hardfork::Constantinople,
                    other => Hardfork::from_test_name(other)
                        .unwrap_or_else(|| panic!("unknown fork {other}")),
                };
                let got = validate_raw_transaction(&raw, fork, 1);
                let outcome = match (expected.get("exception"), got) {
                    (Some(_), Err(_)) => Ok(()),
                    (Some(ex), Ok(_)) => Err(format!("accepted, expected {ex}")),
                    (None, Err(e)) => Err(format!("rejected: {e}")),
                    (None, Ok(valid)) => {
                        let hash: B256 = expected["hash"].as_str().unwrap().parse().unwrap();
                        let sender: Address = expected["sender"].as_str().unwrap().parse().unwrap();
                        let intrinsic = u64::from_str_radix(
                            expected["intrinsicGas"]
                                .as_str()
                                .unwrap()
                                .trim_start_matches("0x"),
                            16,
                        )
                        .unwrap();
                        if *valid.tx.tx_hash() != hash {
                            Err(format!("hash {} != {hash}", valid.tx.tx_hash()))
                        } else if valid.sender != sender {
                            Err(format!("sender {} != {sender}", valid.sender))
                        } else if valid.intrinsic_gas != intrinsic {
                            Err(format!(
                                "intrinsic gas {} != {intrinsic}",
                                valid.intrinsic_gas
                            ))
                        } else {
                            Ok(())
                        }
                    }
                };
                match outcome {
                    Ok(()) => passed += 1,
                    // A listed test must still fail only by being rejected at decode time.
                    Err(e)
                        if skips.iter().any(|(n, _)| n == name)
                            && e.contains("could not be decoded") =>
                    {
                        skipped += 1
                    }
                    Err(e) => failures.push(format!("{name} {fork_name}: {e}")),
                }
            }
        }
    }
    println!(
        "transaction tests: {passed} passed, {} failed, {skipped} skipped",
        failures.len()
    );
    assert!(skipped <= 27, "more skips than the listed cases: {skipped}");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
