#!/usr/bin/env bash
# Starts the four-validator development network of genesis/qbft-4 on this machine and prints
# its endpoints. Ctrl-C stops every node; chains are kept in $NETWORK_DATA for the next start.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${CONSORT_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/consort-target}/debug/consort}
data=${NETWORK_DATA:-$root/.consort-network}
net=$root/genesis/qbft-4
mkdir -p "$data"

pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT
trap 'exit 130' INT TERM

boot="enode://$(sed 's/^0x//' "$net/validator1/key.pub")@127.0.0.1:30303"
for i in 1 2 3 4; do
  args=(
    --genesis-file="$net/genesis.json"
    --data-path="$data/validator$i"
    --node-private-key-file="$net/validator$i/key"
    --p2p-host=127.0.0.1 --p2p-interface=127.0.0.1 --p2p-port=$((30302 + i))
    --rpc-http-enabled --rpc-http-port=$((8544 + i)) --rpc-http-cors-origins=*
    --rpc-http-api=ETH,NET,WEB3,TXPOOL,QBFT,ADMIN,DEBUG
    --rpc-ws-enabled --rpc-ws-port=$((8644 + i))
    --metrics-enabled --metrics-port=$((9544 + i))
  )
  if [ "$i" -gt 1 ]; then args+=(--bootnodes="$boot"); fi
  "$bin" "${args[@]}" >"$data/validator$i.log" 2>&1 &
  pids+=($!)
done

echo "four-validator QBFT network (chain 1338), logs in $data/validator*.log"
for i in 1 2 3 4; do
  echo "  validator$i  http://127.0.0.1:$((8544 + i))  ws://127.0.0.1:$((8644 + i))  metrics http://127.0.0.1:$((9544 + i))/metrics"
done
echo "Ctrl-C stops the network."
wait -n "${pids[@]}" || true
echo "a node exited; see its log" >&2
