# consort — build, run and test. `make run` starts a node, `make test` runs every test.
SHELL := /bin/bash
# Builds share one target directory outside the clone, so CI and fresh clones reuse it.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/consort-target
export CONSORT_CONFORMANCE_DIR ?= $(abspath $(CURDIR)/../shared/conformance)
CONSORT := $(CARGO_TARGET_DIR)/debug/consort
# `make run` keeps its chain here, so a restart continues it (delete it to start over).
DEV_DATA ?= $(CURDIR)/.consort-dev
RUN_FLAGS ?= --network=dev --data-path=$(DEV_DATA) \
	--rpc-http-enabled --rpc-http-api=ETH,NET,WEB3,TXPOOL,QBFT,DEBUG,ADMIN --rpc-http-cors-origins=* \
	--rpc-ws-enabled --rpc-ws-api=ETH,NET,WEB3,TXPOOL,QBFT,DEBUG,ADMIN \
	--metrics-enabled
STATE_TESTS := $(CONSORT_CONFORMANCE_DIR)/ethereum-tests/GeneralStateTests

.PHONY: setup build release run network test js-test deploy-check conformance lint bench fuzz clean

setup:
	@scripts/setup.sh

build: setup
	cargo build --workspace --all-targets

release: setup
	cargo build --release -p consort

# A single-validator QBFT dev chain: JSON-RPC on 8545 (HTTP) and 8546 (WebSocket), metrics on 9545.
# Builds what `make test` builds, so the two never rebuild each other's dependencies.
run: setup
	cargo build --workspace --all-targets
	$(CONSORT) $(RUN_FLAGS) $(ARGS)

# Four validators of genesis/qbft-4 on 127.0.0.1: JSON-RPC on 8545-8548, metrics on 9545-9548.
network: setup
	cargo build --workspace --all-targets
	CONSORT_BIN=$(CONSORT) scripts/network.sh

# With the conformance data (CONSORT_CONFORMANCE_DIR, by default ../shared/conformance) every
# suite must run; without it the suites that need it are skipped and listed.
test: setup
	cargo build --workspace --all-targets
	@if [ -d "$(CONSORT_CONFORMANCE_DIR)" ]; then export CONSORT_REQUIRE_CONFORMANCE=1; fi; \
	  cargo test --workspace --no-fail-fast
	$(MAKE) --no-print-directory js-test
	$(MAKE) --no-print-directory deploy-check
	$(MAKE) --no-print-directory conformance

# ethers v6 and viem against a spawned node, compiling tests/contracts with solc-js.
js-test:
	CONSORT_BIN=$(CONSORT) npm --prefix tests/js test

# docker/ and docker/k8s/ checked offline (hadolint, kubernetes-validate, compose.yml checks).
deploy-check:
	CONSORT_BIN=$(CONSORT) scripts/deploy-check.sh

# Prints the Ethereum state-test counts (the cargo tests above already assert them).
conformance:
	@if [ -d "$(CONSORT_CONFORMANCE_DIR)" ]; then \
	  dir="$(STATE_TESTS)"; [ -d "$$dir" ] || dir="$(CONSORT_CONFORMANCE_DIR)/GeneralStateTests"; \
	  $(CONSORT) evm state-test --quiet "$$dir"; \
	else \
	  echo "conformance data not found at $(CONSORT_CONFORMANCE_DIR): skipped the Ethereum"; \
	  echo "GeneralStateTests, TransactionTests, RLPTests and TrieTests, the Sepolia and Besu QBFT"; \
	  echo "genesis hashes and Besu's QBFT block vectors (every other test ran). To run them, set"; \
	  echo "CONSORT_CONFORMANCE_DIR to the conformance directory, or to a checkout of"; \
	  echo "https://github.com/ethereum/tests for its suites: make test CONSORT_CONFORMANCE_DIR=..."; \
	fi

lint: setup
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

# libFuzzer over every decoder of outside bytes, FUZZ_SECONDS (60) each; `make test` replays
# the corpora it grows (crates/fuzz/tests/corpus.rs).
fuzz: setup
	@scripts/fuzz.sh

# Criterion's block execution, then consort (release and the debug build `make run` uses)
# against anvil with consort-bench; writes its figures into BENCHMARKS.md (scripts/bench.py).
bench: setup
	cargo bench -p consort-evm --bench block_execution
	cargo build --workspace --all-targets
	cargo build --release -p consort
	@scripts/bench.py
	@scripts/attack-bench.sh

clean:
	cargo clean
