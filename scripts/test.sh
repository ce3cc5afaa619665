#!/usr/bin/env bash
# Runs tickerd's whole test suite on a fresh machine, installing what it needs.
# Usage: ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test"
cargo test --all-targets --locked 2>&1

echo "== cargo test --doc"
cargo test --doc --locked 2>&1
