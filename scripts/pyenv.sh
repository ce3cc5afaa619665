#!/usr/bin/env bash
# Makes (or refreshes) the virtualenv in which the tests run real Python clients
# (`websockets`, the InfluxDB client, the OpenTelemetry SDK, tickerd's own
# Python client): `.venv/` at the repository root, from
# scripts/requirements-test.txt. Nothing is installed globally.
# Usage: ./scripts/pyenv.sh   (./scripts/test.sh runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
  echo "installing python3-venv (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq python3-venv >/dev/null
fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r scripts/requirements-test.txt
