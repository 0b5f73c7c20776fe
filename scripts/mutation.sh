#!/usr/bin/env bash
# Mutation testing of the unit tests (StrykerJS with its vitest runner):
#
#   npm run mutation                       # every production module of agent/ and hardening/
#   npm run mutation -- agent/retry/connection-policy.ts hardening/drift.ts
#
# Prints the score per file; a mutant that survives is a behaviour no unit test pins.
# The JSON report lands in .stryker-tmp/mutation-report.json.
#
# As root, a mutant can turn a test's private network namespace or scratch directory into
# the real ones (the unit tests apply profiles for real, in namespaces of their own): one
# did harden this machine's firewall and sysctls. So Stryker runs in a network and mount
# namespace of its own, with the directories hardening writes covered by empty tmpfs.
set -euo pipefail
cd "$(dirname "$0")/.."
WRITES=(/etc/sysctl.d /etc/modprobe.d /etc/udev/rules.d /var/lib/iot-agent-hardening /var/lib/iot-agent /etc/iot-agent /run/iot-agent)

stryker() {
  if [ $# -eq 0 ]; then npx stryker run; else npx stryker run --mutate "$(IFS=,; echo "$*")"; fi
}

# The unit tests run the registration helper as built (dist/agent/provisioning/child-main.js),
# and Stryker copies dist/ into its sandbox: a stale build would test old helper code.
[ "${IOT_AGENT_MUTATION_SANDBOX:-}" = inside ] || npx tsc -p tsconfig.build.json

if [ "${IOT_AGENT_MUTATION_SANDBOX:-}" = inside ]; then
  ip link set lo up
  for dir in "${WRITES[@]}"; do mount -t tmpfs -o mode=0755 tmpfs "$dir"; done
  stryker "$@"
  exit
fi
if [ "$(id -u)" -ne 0 ]; then
  stryker "$@"
  exit
fi
# The mount points must exist; the ones made here for it are removed again.
made=()
for dir in "${WRITES[@]}"; do
  if [ ! -e "$dir" ]; then mkdir -p "$dir" && made+=("$dir"); fi
done
status=0
IOT_AGENT_MUTATION_SANDBOX=inside unshare --net --mount --propagation private bash "$0" "$@" || status=$?
for dir in "${made[@]}"; do rmdir "$dir" 2>/dev/null || true; done
exit "$status"
