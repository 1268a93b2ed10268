#!/usr/bin/env bash
# `make fuzz`: runs every libFuzzer target for FUZZ_SECONDS (default 60) each, growing
# fuzz/corpus/<target>/ with the new inputs it finds; a crash is saved under
# fuzz/artifacts/<target>/ and stops the run. Needs the nightly toolchain; installs cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-60}"
targets="${FUZZ_TARGETS:-$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | tail -n +2)}"

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "make fuzz needs the nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked

# The harness resolves the workspace's locked versions, so it fuzzes the code the node runs.
[ -f fuzz/Cargo.lock ] || cp Cargo.lock fuzz/Cargo.lock
# Sanitizer builds must not share the test builds' directory.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/consort-fuzz-target}"
for target in $targets; do
  echo "fuzz: $target for ${seconds}s"
  cargo +nightly fuzz run --fuzz-dir fuzz "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1
done
