//! Every GeneralStateTests case in the shared conformance data passes through consort's own
//! storage, trie and executor, except the cases listed with a reason in `state-test-skips.txt`.

use consort_evm::statetest::{collect_files, run_file, Filter};
use rayon::prelude::*;
use std::path::PathBuf;

#[path = "../../../tests/support/conformance.rs"]
mod conformance;

fn state_tests_dir() -> Option<PathBuf> {
    conformance::find("ethereum-tests/GeneralStateTests")
}

#[test]
fn general_state_tests_pass() {
    let Some(dir) = state_tests_dir() else { return };
    let files = collect_files(&[dir]).unwrap();
    assert!(
        files.len() > 1000,
        "expected the conformance snapshot, found {} files",
        files.len()
    );
    let reports: Vec<_> = files
        .par_iter()
        .map(|f| (f.clone(), run_file(f, &Filter::default())))
        .collect();
    let (mut passed, mut skipped, mut failures) = (0, 0, Vec::new());
    let mut forks = std::collections::BTreeMap::<String, usize>::new();
    for (file, report) in reports {
        let report = report.unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        skipped += report.skipped.len();
        for case in report.cases {
            if case.pass {
                passed += 1;
                *forks.entry(case.fork.clone()).or_default() += 1;
            } else {
                failures.push(format!(
                    "{} {} d{} g{} v{}: {:?}",
                    case.name, case.fork, case.d, case.g, case.v, case.error
                ));
            }
        }
    }
    println!(
        "state tests: {passed} passed, {} failed, {skipped} skipped; by fork: {forks:?}",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(passed > 12_000, "only {passed} cases ran");
    // This snapshot is filled for Cancun only; other forks' files run the same way when given.
    assert!(
        forks.get("Cancun").copied().unwrap_or(0) > 12_000,
        "Cancun cases: {forks:?}"
    );
}

#[test]
fn a_wrong_expectation_is_reported_as_a_failure() {
    // The runner must not pass everything: corrupt one expected root and it fails.
    let Some(dir) = state_tests_dir() else { return };
    let file = dir.join("stExample/add11.json");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let test = json.as_object_mut().unwrap().values_mut().next().unwrap();
    for cases in test["post"].as_object_mut().unwrap().values_mut() {
        for case in cases.as_array_mut().unwrap() {
            case["hash"] =
                "0x0000000000000000000000000000000000000000000000000000000000000001".into();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.json");
    std::fs::write(&path, json.to_string()).unwrap();
    let report = run_file(&path, &Filter::default()).unwrap();
    assert!(!report.cases.is_empty());
    assert!(report.cases.iter().all(|c| !c.pass
        && c.error
            .as_deref()
            .unwrap_or("")
            .contains("state root mismatch")));
}
