#!/usr/bin/env bash
# The fan-out benchmark: tickerd against a Node `ws` server and the tutorial-style
# Rust server, same job, same run. Prints a markdown table.
#
#   bench/run.sh            full mode: 3 repetitions, medians (~7 min)
#   bench/run.sh --quick    1 repetition, shorter windows (< 3 min)
#   SERVERS="tickerd" SCENARIOS="load saturation" bench/run.sh --quick   a subset
#   SERVERS="tickerd tickerd-cluster" ...   also one node of a cluster (needs nats-server)
#   SERVERS="tickerd tickerd-durable" ...   also with [history] path (a fresh store per run)
#   SERVERS="tickerd tickerd-base" TICKERD_BASE=/tmp/tickerd-old ...   this build against another one
#
# Each server is pinned to core 0 (taskset -c 0), the generator to core 1.
set -euo pipefail
cd "$(dirname "$0")"
BENCH=$PWD
ROOT=$(cd .. && pwd)

REPS=3 WARMUP=3 DURATION=8
if [[ "${1:-}" == "--quick" ]]; then REPS=1 WARMUP=2 DURATION=4; fi
SERVERS=${SERVERS:-"tickerd node-ws tutorial"}
SCENARIOS=${SCENARIOS:-"light load saturation idle"}

echo "Building release binaries and installing the Node peer..." >&2
# The `profiling` profile: the release build with symbols kept, so that
# `perf record` of a run names functions (the shipped release binary is stripped).
cargo build --profile profiling --quiet --manifest-path "$ROOT/Cargo.toml" --bin tickerd
cargo build --release --quiet --manifest-path "$BENCH/Cargo.toml"
(cd peers/node && npm ci --no-audit --no-fund --silent)
# Where cargo put them (CARGO_TARGET_DIR, when set, holds both).
TICKERD=${CARGO_TARGET_DIR:-$ROOT/target}/profiling/tickerd
GEN=${CARGO_TARGET_DIR:-$BENCH/target}/release/tickerd-bench

server_cmd() {
  case "$1" in
    tickerd) echo "env RUST_LOG=warn taskset -c 0 $TICKERD --config $BENCH/tickerd.toml" ;;
    tickerd-cluster) echo "env RUST_LOG=warn taskset -c 0 $TICKERD --config $BENCH/tickerd-cluster.toml" ;;
    tickerd-durable) echo "env RUST_LOG=warn taskset -c 0 $TICKERD --config $BENCH/tickerd-durable.toml" ;;
    tickerd-base) echo "env RUST_LOG=warn taskset -c 0 ${TICKERD_BASE:?set TICKERD_BASE to the tickerd binary to compare with} --config $BENCH/tickerd.toml" ;;
    node-ws) echo "taskset -c 0 node $BENCH/peers/node/server.js" ;;
    tutorial) echo "taskset -c 0 $GEN tutorial" ;;
  esac
}

scenario_args() {
  case "$1" in
    light) echo "--clients 500 --rate 20" ;;              # 10k deliveries/s offered: a typical board
    load) echo "--clients 1000 --rate 200" ;;             # 200k deliveries/s offered
    saturation) echo "--clients 1000 --rate 1000" ;;      # 1M deliveries/s offered
    idle) echo "--clients 10000 --rate 0 --idle" ;;       # RSS per subscribed connection
    publish) echo "--clients 10 --rate 5000" ;;           # per-publish costs (e.g. the store) over fan-out
  esac
}

# tickerd-cluster: the same node, with every update going through NATS JetStream
# first (a one-node cluster); nats-server shares core 1 with the generator.
if [[ " $SERVERS " == *" tickerd-cluster "* ]]; then
  NATS_STORE=$(mktemp -d)
  taskset -c 1 nats-server -js -sd "$NATS_STORE" -a 127.0.0.1 -p 19222 >/dev/null 2>&1 &
  NATS_PID=$!
  trap 'kill $NATS_PID 2>/dev/null; rm -rf "$NATS_STORE"' EXIT
fi

mkdir -p results
OUT="results/run-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
for rep in $(seq 1 "$REPS"); do
  for scenario in $SCENARIOS; do
    for server in $SERVERS; do
      echo "[$rep/$REPS] $scenario: $server" >&2
      rm -rf "$BENCH/results/durable-data"   # tickerd-durable starts on an empty store
      # shellcheck disable=SC2046
      timeout 240 taskset -c 1 "$GEN" gen \
        --server "$server" --scenario "$scenario" $(scenario_args "$scenario") \
        --symbols 16 --payload 64 --warmup "$WARMUP" --duration "$DURATION" \
        -- $(server_cmd "$server") >>"$OUT" || echo "  (failed: exit $?)" >&2
    done
  done
done
"$GEN" table "$OUT" | tee results/latest.md
echo >&2
echo "Raw results: bench/$OUT" >&2
