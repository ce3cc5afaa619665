#!/usr/bin/env bash
# Regenerates the pictures of docs/screenshots/ (the README's dashboard picture
# is one of them): the real tickerd with the shipped config.toml, feeds/ and
# dashboards/ (copied to a temp dir, so its durable history stays out of the
# tree), photographed by headless Chromium at `/`, `/d/markets`, `/d/host` and
# `/auto`, light and dark, 1400 and 400 px wide.
# Usage: ./scripts/screenshots.sh   (honours CARGO_TARGET_DIR, like cargo)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --bin tickerd
(cd tests/browser && npm ci --silent --no-audit --no-fund)
node scripts/screenshots.mjs
