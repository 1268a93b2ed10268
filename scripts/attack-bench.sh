#!/usr/bin/env bash
# The block rate of four validators while rogue peers and a Byzantine validator attack, as a
# share of their undisturbed rate, against the target of 90%. Runs the multi-process attack
# test (which asserts safety and progress, not speed) and reads the figure it prints.
set -euo pipefail
cd "$(dirname "$0")/.."
target=90
out=$(cargo test --workspace --test network \
    rogue_peers_and_a_byzantine_validator_cannot_stop_or_fork_the_network -- --nocapture 2>&1) || {
    echo "$out" | tail -30
    exit 1
}
line=$(echo "$out" | grep '^block rate:')
pct=$(echo "$line" | sed -n 's/.*(\([0-9]*\)%).*/\1/p')
echo "attack: $line"
if [ "${pct:-0}" -ge "$target" ]; then
    echo "attack: ${pct}% of the undisturbed rate, target >= ${target}%: met"
else
    echo "attack: ${pct}% of the undisturbed rate, target >= ${target}%: MISSED"
fi
