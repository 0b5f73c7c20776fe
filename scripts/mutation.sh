#!/usr/bin/env bash
# Mutation testing of the unit tests (StrykerJS with its vitest runner):
#
#   npm run mutation                       # every production module of agent/ and hardening/
#   npm run mutation -- agent/retry/connection-policy.ts hardening/drift.ts
#
# Prints the score per file; a mutant that survives is a behaviour no unit test pins.
# The JSON report lands in .stryker-tmp/mutation-report.json.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then exec npx stryker run; fi
exec npx stryker run --mutate "$(IFS=,; echo "$*")"
