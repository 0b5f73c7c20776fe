import { runChecks } from '../check/runner.js';
import type { AgentConfig } from '../config.js';
import type { DaemonSnapshot } from '../control/protocol.js';
import type { HardeningSite } from '../hardening-bridge/site.js';
import type { SharedTpmReport } from '../control/shared-tpm.js';
import type { TpmReport } from '../tpm/tpm-report.js';
import { buildBundle, type BundleResult } from './bundle.js';
import type { BundleSources } from './sources.js';

/** What the running daemon lends to a bundle it builds itself. */
export interface LiveDaemon {
  config: AgentConfig;
  configPath: string | undefined;
  /** Where hardening keeps its records (a test's sandbox, or the real root). */
  hardening: HardeningSite;
  snapshot(): DaemonSnapshot;
  /** Through the daemon's own TPM connection: swtpm would not serve a second one. */
  tpmReport(): Promise<TpmReport>;
}

/** The support bundle as the daemon builds it for `uploadSupportBundle`: the same collectors as the CLI's. */
export function buildInDaemon(live: LiveDaemon, since: Date, outputDir: string, now: Date): Promise<BundleResult> {
  const snapshot = live.snapshot();
  const readTpm = async (): Promise<SharedTpmReport> => ({ report: await live.tpmReport(), via: { daemonPid: process.pid } });
  const sources: BundleSources = {
    configPath: live.configPath,
    config: live.config,
    since,
    builtBy: 'daemon',
    daemon: snapshot,
    status: () => Promise.resolve({ ...snapshot.status, daemon: 'running' as const }),
    readTpm,
    runChecks: () => runChecks({
      configPath: live.configPath, tpmOverride: undefined, tpmRead: readTpm, daemonStatus: () => Promise.resolve(snapshot.status),
    }),
    hardening: live.hardening,
  };
  return buildBundle(sources, outputDir, now);
}
