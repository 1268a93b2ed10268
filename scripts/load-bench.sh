#!/usr/bin/env bash
# Single-node figures with consort-bench: one validator, RocksDB, 1 s blocks and a 1 Ggas block
# gas limit (the dev chain's genesis with a larger limit). Inclusion throughput of ETH and
# ERC-20 transfers, three runs each, each run and the median; then JSON-RPC reads at
# concurrency 1, 16 and 64. Measures, never asserts.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$HOME/.cache/consort-target}"
profile="${BENCH_PROFILE:-debug}"
consort="$target/$profile/consort"
bench="$target/$profile/consort-bench"
txs="${BENCH_TXS:-20000}"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
python3 - "$work/genesis.json" <<'PY'
import json, sys
g = json.load(open("chainspecs/dev.json"))
g["gasLimit"] = hex(1_000_000_000)
json.dump(g, open(sys.argv[1], "w"))
PY
"$consort" --genesis-file="$work/genesis.json" --node-private-key-file=chainspecs/dev-validator.key \
  --data-path="$work/data" --p2p-enabled=false \
  --rpc-http-enabled --rpc-http-host=127.0.0.201 --rpc-http-port=8545 \
  --metrics-enabled --metrics-host=127.0.0.201 --metrics-port=9545 --host-allowlist='*' \
  --tx-pool-max-size=100000 >"$work/node.log" 2>&1 &
for _ in $(seq 100); do
  curl -sf -X POST -H 'Content-Type: application/json' \
    --data '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}' \
    http://127.0.0.201:8545 >/dev/null && break
  sleep 0.1
done
for kind in eth erc20; do
  rates=()
  for run in 1 2 3; do
    line=$("$bench" --rpc=http://127.0.0.201:8545 --metrics=http://127.0.0.201:9545/metrics \
      --kind="$kind" --txs="$txs" --senders=200 --concurrency=32 --json --label="$profile run $run")
    rate=$(echo "$line" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(round(r["tx_per_second"]))')
    p99=$(echo "$line" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(round(r["latency_ms"]["p99"]))')
    echo "load-bench: $kind run $run: $rate tx/s included, p99 ${p99} ms"
    rates+=("$rate")
  done
  median=$(printf '%s\n' "${rates[@]}" | sort -n | sed -n 2p)
  echo "load-bench: $kind single node ($profile build): median $median tx/s"
done
for method in eth_blockNumber eth_getBalance; do
  for c in 1 16 64; do
    echo "load-bench: $("$bench" --rpc=http://127.0.0.201:8545 --read="$method" --concurrency="$c" --seconds="${BENCH_READ_SECONDS:-5}")"
  done
done
