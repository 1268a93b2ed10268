# consort — build, run and test. `make run` starts a node, `make test` runs every test.
SHELL := /bin/bash
# Builds share one target directory outside the clone, so CI and fresh clones reuse it.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/consort-target
export CONSORT_CONFORMANCE_DIR ?= $(abspath $(CURDIR)/../shared/conformance)
CONSORT := $(CARGO_TARGET_DIR)/debug/consort
STATE_TESTS := $(CONSORT_CONFORMANCE_DIR)/ethereum-tests/GeneralStateTests

.PHONY: setup build release run test conformance lint bench clean

setup:
	@scripts/setup.sh

build: setup
	cargo build --workspace --all-targets

release: setup
	cargo build --release -p consort

run: release
	$(CARGO_TARGET_DIR)/release/consort $(ARGS)

test: setup
	cargo build --workspace --all-targets
	cargo test --workspace --no-fail-fast
	$(MAKE) --no-print-directory conformance

# Prints the Ethereum state-test counts (the cargo tests above already assert them).
conformance:
	@test -d "$(STATE_TESTS)" || { echo "conformance data not found at $(CONSORT_CONFORMANCE_DIR)"; exit 1; }
	$(CONSORT) evm state-test --quiet "$(STATE_TESTS)"

lint: setup
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

bench: setup
	cargo bench -p consort-evm --bench block_execution

clean:
	cargo clean
