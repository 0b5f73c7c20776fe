#!/usr/bin/env bash
# The demo, in one command on a fresh Debian 12 machine with Node.js 20, as root:
#
#   bash scripts/demo.sh
#
# Installs what it needs (Debian packages via scripts/setup.sh; npm ci when node_modules is
# missing or older than package-lock.json; a build when a source is newer than the build),
# then runs demo/main.ts: a software TPM, the local DPS and IoT Hub, and the real agent
# from enrollment to answering the cloud. It stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "demo: installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

built=dist/demo/main.js
if [ ! -f "$built" ] || [ -n "$(find agent hardening demo test/cloud test/support package.json tsconfig.json tsconfig.build.json -newer "$built" -print -quit)" ]; then
  echo "demo: building (npm run build)"
  npm run --silent build
fi

exec node "$built"
