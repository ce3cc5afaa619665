#!/usr/bin/env bash
# The hostile-input attacks of tests/hostile.rs at full size, against a release
# build of the tickerd binary; prints a markdown table of RSS before and at the
# peak of each attack, and how the attacker was treated (SECURITY.md "Limits").
#
#   bench/hostile.sh             full size (HOSTILE_SCALE=16): a few minutes
#   bench/hostile.sh --quick     the test suite's size (HOSTILE_SCALE=1)
#   bench/hostile.sh --debug     against the debug build (no release build)
#   HOSTILE_SCALE=4 bench/hostile.sh   any size in between
#
# Traffic stays on 127.0.0.1 (and 127.0.0.2, also loopback). Every attack is
# bounded in count and time; row numbers are those of the hardening issue.
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE=${HOSTILE_SCALE:-16}
PROFILE=(--release)
for arg in "$@"; do
  case "$arg" in
    --quick) SCALE=1 ;;
    --debug) PROFILE=() ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

echo "Running the attacks at scale $SCALE (${PROFILE[*]:-debug} build)..." >&2
out=$(HOSTILE_SCALE=$SCALE cargo test "${PROFILE[@]}" --quiet --test hostile -- \
  --test-threads=1 --nocapture 2>&1) || { echo "$out" >&2; exit 1; }

echo "| # attack | size | RSS before | RSS peak | attacker |"
echo "|---|---|---|---|---|"
grep -o 'HOSTILE|.*' <<<"$out" | sed 's/^HOSTILE//' | sort -t'|' -k2,2
