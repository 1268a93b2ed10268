//! Where the conformance data is, for the crates' tests that read it (each includes this file
//! with `#[path]`). The data is `CONSORT_CONFORMANCE_DIR`, else `../shared/conformance` beside
//! the clone: `ethereum-tests/<suite>`, `genesis/`, `qbft-vectors.json`. A checkout of
//! ethereum/tests may be given directly as `CONSORT_CONFORMANCE_DIR`: its suites are found at
//! its top.
//!
//! Absent data skips the test with a line on stderr naming the suite, unless
//! `CONSORT_REQUIRE_CONFORMANCE` is set (`make test` sets it whenever the data is there, so
//! with the data nothing is skipped).

#![allow(dead_code)]

use std::path::PathBuf;

fn root() -> PathBuf {
    std::env::var_os("CONSORT_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        })
}

/// `relative` (for example `ethereum-tests/RLPTests`) in the conformance data, or `None` when
/// it is not there and may be skipped.
pub fn find(relative: &str) -> Option<PathBuf> {
    let root = root();
    let direct = relative
        .strip_prefix("ethereum-tests/")
        .map(|suite| root.join(suite));
    if let Some(found) = std::iter::once(root.join(relative))
        .chain(direct)
        .find(|p| p.exists())
    {
        return Some(found);
    }
    let message = format!(
        "conformance data {relative} not found in {}: set CONSORT_CONFORMANCE_DIR to the \
         conformance directory (or to a checkout of ethereum/tests for its suites)",
        root.display()
    );
    assert!(
        std::env::var_os("CONSORT_REQUIRE_CONFORMANCE").is_none(),
        "{message}"
    );
    eprintln!("skipped: {message}");
    None
}
