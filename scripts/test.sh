#!/usr/bin/env bash
# Runs tickerd's whole test suite on a fresh machine, installing what it needs.
# Usage: ./scripts/test.sh
#
# Every stage runs even when an earlier one failed; the end prints one line per
# stage and the script exits non-zero if any stage failed.
set -uo pipefail
cd "$(dirname "$0")/.."

# --- what the tests need -----------------------------------------------------

apt_updated=0
# need COMMAND PACKAGE: installs the Debian PACKAGE when COMMAND is missing.
need() {
  command -v "$1" >/dev/null && return 0
  echo "installing $2 (apt)"
  export DEBIAN_FRONTEND=noninteractive
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq >/dev/null
    apt_updated=1
  fi
  apt-get install -y -qq "$2" >/dev/null
}

# Cluster tests (tests/cluster.rs) run a real nats-server with JetStream.
need nats-server nats-server
# Browser tests (tests/browser/) drive Debian's Chromium with Node.js.
need chromium chromium
need npm npm
need node nodejs
# tests/browser/tls.test.js makes Chromium trust a test CA through an NSS database.
need certutil libnss3-tools
# tests/readme_curl.rs runs the docs' curl examples with the real curl.
need curl curl

# Broker feed tests (tests/feeds_mqtt.rs, tests/feeds_redis.rs) run a real
# mosquitto (with mosquitto_passwd; openssl makes its test certificates) and
# redis-server.
need mosquitto mosquitto
need openssl openssl
need redis-server redis-server
# Feed tests run a real PostgreSQL 15 (tests/feeds_postgres.rs) and Prometheus
# (tests/feeds_prometheus.rs).
need /usr/lib/postgresql/15/bin/postgres postgresql
need prometheus prometheus
# tests/deploy.rs runs docs/deploy.md's proxy configs with the real proxies,
# each started by the test in a temp dir on loopback (never as a service).
need nginx nginx
need caddy caddy
need haproxy haproxy
# Tests that drive real Python clients run them from .venv (scripts/pyenv.sh).
need python3 python3
./scripts/pyenv.sh || echo "scripts/pyenv.sh failed: the Python client tests will fail"

# --- stages ------------------------------------------------------------------

summary=()
failed=0
# stage NAME COMMAND...: runs one stage, records its outcome and duration.
stage() {
  local name=$1
  shift
  echo
  echo "== $name"
  local start=$SECONDS
  if "$@"; then
    summary+=("ok      $name ($((SECONDS - start)) s)")
  else
    summary+=("FAILED  $name ($((SECONDS - start)) s)")
    failed=1
  fi
}

browser_tests() {
  cargo build --locked --bin tickerd 2>&1 &&
    (cd tests/browser &&
      npm ci --no-audit --no-fund --loglevel=error &&
      node --test --test-concurrency=1 ./*.test.js)
}

# The Python client (clients/python) against the real binary, from .venv
# (scripts/pyenv.sh installs it there, editable, with pytest).
python_client_tests() {
  cargo build --locked --bin tickerd 2>&1 &&
    .venv/bin/python -m pytest -q clients/python/tests
}

stage "cargo test" cargo test --all-targets --locked --no-fail-fast
stage "python client (pytest)" python_client_tests
stage "cargo test --doc" cargo test --doc --locked
stage "browser tests (headless Chromium)" browser_tests

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
