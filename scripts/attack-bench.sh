#!/usr/bin/env bash
# The block rate of four validators under attack as a share of their undisturbed rate, against
# the target of 90%: rogue peers with a Byzantine validator, and one validator flooded from
# every side (the denial-of-service suite). Runs the multi-process tests (which assert safety,
# progress and bounded memory, not speed) and reads the figures they print.
set -euo pipefail
cd "$(dirname "$0")/.."
target=90
out=$(cargo test --workspace --test network -- \
    rogue_peers_and_a_byzantine_validator_cannot_stop_or_fork_the_network \
    a_validator_flooded_from_every_side_keeps_the_network_finalizing --nocapture 2>&1) || {
    echo "$out" | tail -30
    exit 1
}
for what in "block rate" "flood block rate"; do
    line=$(echo "$out" | grep "^$what:")
    pct=$(echo "$line" | sed -n 's/.*(\([0-9]*\)%).*/\1/p')
    echo "attack: $line"
    if [ "${pct:-0}" -ge "$target" ]; then
        echo "attack: $what ${pct}% of the undisturbed rate, target >= ${target}%: met"
    else
        echo "attack: $what ${pct}% of the undisturbed rate, target >= ${target}%: MISSED"
    fi
done
