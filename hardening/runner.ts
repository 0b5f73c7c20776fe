import { ExecRunner } from '../agent/lib/exec.js';

/** The programs the engine runs, and where a board without them gets them. */
const INSTALL_HINTS: Record<string, string> = {
  'iptables': 'install the Debian package iptables (scripts/setup.sh)',
  'ip6tables': 'install the Debian package iptables (scripts/setup.sh)',
  'sysctl': 'install the Debian package procps',
  'ip': 'install the Debian package iproute2',
};

/**
 * The engine's runner (agent/lib/exec.ts): fixed argv, never a shell, behind an optional
 * prefix such as `netnsPrefix(NAME)`; a missing tool's error names its Debian package.
 */
export function hardeningRunner(prefix: readonly string[] = []): ExecRunner {
  return new ExecRunner(prefix, INSTALL_HINTS);
}
