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
#   SCENARIOS=scale bench/run.sh --quick   19,500 connections at two rates (not in the default set)
#   TICKERD_BIN=... BENCH_BIN=... bench/run.sh   prebuilt binaries, no cargo
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
    # As many connections as one process may hold here (open-file hard limit
    # 20,000), 5,000 per 127.0.0.x source address; 1 topic at 1/s, then 16 at
    # 10/s each (3.1M deliveries/s offered). The cheap client, latency timed on
    # every 16th connection, so that one generator core keeps up.
    scale) echo "--clients 19500 --phases 1x1,16x10 --per-source 5000 --raw --sample-every 16" ;;
  esac
}

# Bounds one scenario's run: the scale scenario connects 19,500 clients
# (up to ~2 min on a slow server) before its two phases.
scenario_timeout() {
  case "$1" in
    scale) echo 420 ;;
    *) echo 240 ;;
  esac
}

# The generator and the server each hold one socket per client, plus a few:
# raise the soft open-file limit (they inherit it) and refuse up front if the
# hard one cannot hold the largest scenario.
ulimit -n "$(ulimit -Hn)"
for scenario in $SCENARIOS; do
  clients=$(scenario_args "$scenario" | sed -n 's/.*--clients \([0-9]*\).*/\1/p')
  need=$(( ${clients:-0} + 200 ))
  if [[ $(ulimit -Hn) != unlimited ]] && (( $(ulimit -Hn) < need )); then
    echo "bench/run.sh: scenario $scenario needs an open-file hard limit of at least $need" \
      "(${clients} client sockets in the generator and as many in the server, plus 200 spare);" \
      "this shell's is $(ulimit -Hn) (ulimit -Hn). Raise it (limits.conf, systemd LimitNOFILE)" \
      "or leave $scenario out of SCENARIOS." >&2
    exit 1
  fi
done

echo "Building release binaries and installing the Node peer..." >&2
# TICKERD_BIN and BENCH_BIN, both set, name prebuilt binaries: no cargo (as in scale.sh).
if [[ -z "${TICKERD_BIN:-}" || -z "${BENCH_BIN:-}" ]]; then
  cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin tickerd
  cargo build --release --quiet --manifest-path "$BENCH/Cargo.toml"
fi
(cd peers/node && npm ci --no-audit --no-fund --silent)
# Where cargo put them (CARGO_TARGET_DIR, when set, holds both).
TICKERD=${TICKERD_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/tickerd}
GEN=${BENCH_BIN:-${CARGO_TARGET_DIR:-$BENCH/target}/release/tickerd-bench}

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
      # The generator kills its server on exit, even when killed itself
      # (PR_SET_PDEATHSIG), so a timeout leaves no server behind.
      # shellcheck disable=SC2046
      timeout --kill-after=10 "$(scenario_timeout "$scenario")" taskset -c 1 "$GEN" gen \
        --server "$server" --scenario "$scenario" $(scenario_args "$scenario") \
        --symbols 16 --payload 64 --warmup "$WARMUP" --duration "$DURATION" \
        -- $(server_cmd "$server") >>"$OUT" || echo "  (failed: exit $?)" >&2
    done
  done
done
"$GEN" table "$OUT" | tee results/latest.md
echo >&2
echo "Raw results: bench/$OUT" >&2
