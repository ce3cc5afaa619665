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

# Broker feed tests (tests/feeds_mqtt.rs, tests/feeds_redis.rs) run a real
# mosquitto (with mosquitto_passwd; openssl makes its test certificates) and
# redis-server.
if ! command -v mosquitto >/dev/null; then
  echo "installing mosquitto (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq mosquitto >/dev/null
fi
if ! command -v openssl >/dev/null; then
  echo "installing openssl (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq openssl >/dev/null
fi
if ! command -v redis-server >/dev/null; then
  echo "installing redis-server (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq redis-server >/dev/null
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
