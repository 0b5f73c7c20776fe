#!/usr/bin/env bash
# The whole test suite in one command on a fresh Debian 12 machine with Node.js 20, as root:
#
#   bash scripts/test.sh
#
# Installs the Debian packages the tests need (scripts/setup.sh), the npm dependencies
# (npm ci), then runs lint, typecheck, build and every test (npm test), the boot test of
# the Debian package in a booted trixie container and the demo included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm ci --no-audit --no-fund
npm test
