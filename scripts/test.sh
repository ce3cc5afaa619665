#!/usr/bin/env bash
# Runs tickerd's whole test suite on a fresh machine, installing what it needs.
# Usage: ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Cluster tests (tests/cluster.rs) run a real nats-server with JetStream.
if ! command -v nats-server >/dev/null; then
  echo "installing nats-server (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq nats-server >/dev/null
fi

# Feed tests run a real PostgreSQL 15 (tests/feeds_postgres.rs) and Prometheus
# (tests/feeds_prometheus.rs).
if [ ! -x /usr/lib/postgresql/15/bin/postgres ]; then
  echo "installing postgresql (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql >/dev/null
fi
if ! command -v prometheus >/dev/null; then
  echo "installing prometheus (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq prometheus >/dev/null
fi

echo "== cargo test"
cargo test --all-targets --locked --no-fail-fast 2>&1

echo "== cargo test --doc"
cargo test --doc --locked 2>&1

echo "== browser tests (headless Chromium)"
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq chromium >/dev/null
fi
if ! command -v npm >/dev/null; then
  echo "installing nodejs and npm (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq nodejs npm >/dev/null
fi
cargo build --locked --bin tickerd 2>&1
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error && node --test --test-concurrency=1 ./*.test.js)
