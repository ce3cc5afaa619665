#!/usr/bin/env bash
# Does tickerd use a second core? The same saturating load against tickerd on
# one core, then on two (taskset -c 0, then 0,1), with the generator's
# clients dealt over threads on the other cores. Prints a markdown table and
# the two-core / one-core ratio of deliveries per second.
#
#   bench/scale.sh                          3 repetitions, medians (~2 min)
#   CLIENTS=2000 RATE=2000 REPS=1 bench/scale.sh
#   TICKERD_BIN=... BENCH_BIN=... bench/scale.sh   prebuilt binaries, no cargo
#
# Needs at least 6 cores: the server's two, the upstream's thread, and enough
# generator threads to receive more than two of tickerd's cores deliver (a
# 2-core machine cannot show this; the README says where it was measured).
set -euo pipefail
cd "$(dirname "$0")"
BENCH=$PWD
ROOT=$(cd .. && pwd)
REPS=${REPS:-3} CLIENTS=${CLIENTS:-4000} RATE=${RATE:-4000}
CORES=$(nproc)
if (( CORES < 6 )); then
  echo "bench/scale.sh needs at least 6 cores; this machine has $CORES" >&2
  exit 1
fi
if [[ -z "${TICKERD_BIN:-}" || -z "${BENCH_BIN:-}" ]]; then
  cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin tickerd
  cargo build --release --quiet --manifest-path "$BENCH/Cargo.toml"
fi
TICKERD=${TICKERD_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/tickerd}
GEN=${BENCH_BIN:-${CARGO_TARGET_DIR:-$BENCH/target}/release/tickerd-bench}
THREADS=$(( CORES - 3 ))   # cores 2.. hold the generator: its upstream thread and clients

mkdir -p results
OUT="results/scale-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
for rep in $(seq 1 "$REPS"); do
  for cores in 0 0,1; do
    label=tickerd-1core
    [[ $cores == 0,1 ]] && label=tickerd-2cores
    echo "[$rep/$REPS] $label: $CLIENTS clients x $RATE msg/s" >&2
    timeout 240 taskset -c "2-$(( CORES - 1 ))" "$GEN" gen \
      --server "$label" --scenario saturation --clients "$CLIENTS" --rate "$RATE" \
      --symbols 16 --payload 64 --warmup 3 --duration 6 --threads "$THREADS" \
      -- env RUST_LOG=warn taskset -c "$cores" "$TICKERD" --config "$BENCH/tickerd.toml" \
      >>"$OUT" || echo "  (failed: exit $?)" >&2
  done
done
"$GEN" table "$OUT"
echo >&2
echo "Raw results: bench/$OUT" >&2
