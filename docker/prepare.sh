#!/usr/bin/env bash
# Lays out a network made by `consort operator generate-blockchain-config --to=<dir>` for
# docker/compose.yml (docker/network/genesis.json and validator<N>/key) and writes
# docker/.env pointing compose at it, with validator1's enode id as the bootnode.
set -euo pipefail
src="${1:?usage: docker/prepare.sh <generated network directory>}"
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/network"
[ -f "$src/genesis.json" ] || { echo "no genesis.json in $src" >&2; exit 1; }
mapfile -t keys < <(find "$src/keys" -mindepth 1 -maxdepth 1 -type d | sort)
[ "${#keys[@]}" -eq 4 ] || { echo "compose.yml runs 4 validators; $src/keys has ${#keys[@]}" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out"
cp "$src/genesis.json" "$out/genesis.json"
for i in 0 1 2 3; do
  [ -f "${keys[$i]}/key.priv" ] || { echo "no key.priv in ${keys[$i]} (imported keys stay with their owners)" >&2; exit 1; }
  mkdir -p "$out/validator$((i + 1))"
  install -m 0600 "${keys[$i]}/key.priv" "$out/validator$((i + 1))/key"
  cp "${keys[$i]}/key.pub" "$out/validator$((i + 1))/key.pub"
done
boot="$(tr -d '\n' < "$out/validator1/key.pub")"
printf 'NETWORK_DIR=./network\nBOOTNODE_ID=%s\n' "${boot#0x}" > "$here/.env"
echo "docker/network and docker/.env written; the key files are owned by $(id -un):" \
  "give them to uid 10001 (chown -R 10001 docker/network) before docker compose up"
