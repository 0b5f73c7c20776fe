import type { HardeningSite } from '../hardening-bridge/site.js';
import type { CheckResult } from '../check/result.js';
import type { AgentConfig } from '../config.js';
import type { DaemonSnapshot } from '../control/protocol.js';
import type { SharedTpmReport } from '../control/shared-tpm.js';
import type { StatusReport } from '../control/status-report.js';

/**
 * Where a support bundle's facts come from. The CLI and the daemon build the same bundle;
 * they differ only in how they reach the live parts: the CLI asks the running daemon over
 * its control socket (or reads state files when none runs), the daemon reads itself.
 */
export interface BundleSources {
  /** The config file as given (--config), or undefined for the default path. */
  configPath: string | undefined;
  /** The config the agent uses: the file's, or its valid keys over the defaults when it is invalid. */
  config: AgentConfig;
  /** Journal entries from this time on. */
  since: Date;
  builtBy: 'cli' | 'daemon';
  /** The daemon's live state; undefined when no daemon runs. */
  daemon: DaemonSnapshot | undefined;
  status(): Promise<StatusReport>;
  readTpm(): Promise<SharedTpmReport>;
  runChecks(): Promise<CheckResult[]>;
  /** Where hardening keeps its records and which namespace its firewall lives in. */
  hardening: HardeningSite;
}
