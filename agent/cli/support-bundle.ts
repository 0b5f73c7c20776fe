import { checkConfig } from '../check/config-check.js';
import { runChecks } from '../check/runner.js';
import { askDaemon, DaemonAbsentError, payloadOf } from '../control/client.js';
import type { DaemonSnapshot } from '../control/protocol.js';
import { readSharedTpm } from '../control/shared-tpm.js';
import { statusReport } from '../control/status-report.js';
import { PRODUCTION_SITE } from '../hardening-bridge/site.js';
import type { RuntimeOverrides } from '../runtime-overrides.js';
import { buildBundle, type BundleResult } from '../support/bundle.js';
import { DEFAULT_SINCE, parseSince } from '../support/since.js';
import type { BundleSources } from '../support/sources.js';
import { parseTransport } from '../config/transport-spec.js';

export interface SupportBundleOptions {
  config?: string;
  output?: string;
  since?: string;
  json?: boolean;
}

/**
 * `iot-agent support-bundle`: one archive with everything support needs, secrets removed.
 * Works with a broken config (its valid keys over the defaults, as `check` does), with the
 * daemon stopped (state files and the journal) and running (asked over its control socket).
 */
export async function supportBundle(options: SupportBundleOptions, overrides: RuntimeOverrides): Promise<number> {
  const sinceSeconds = parseSince(options.since ?? DEFAULT_SINCE);
  const { config } = await checkConfig(options.config);
  const daemon = await daemonSnapshot(config.runtimeDir);
  const tpmOverride = overrides.tpmTransport;
  const sources: BundleSources = {
    configPath: options.config,
    config,
    since: new Date(Date.now() - sinceSeconds * 1000),
    builtBy: 'cli',
    daemon,
    status: async () => (daemon ? { ...daemon.status, daemon: 'running' } : statusReport(config)),
    readTpm: () => readSharedTpm({ runtimeDir: config.runtimeDir, spec: parseTransport(tpmOverride ?? config.tpm.transport) }),
    // The hold the bundle's status shows: one snapshot, not a second question to the daemon.
    runChecks: () => runChecks({ configPath: options.config, tpmOverride, daemonStatus: daemon && (() => Promise.resolve(daemon.status)) }),
    hardening: overrides.hardeningSite ?? PRODUCTION_SITE,
  };
  const result = await buildBundle(sources, options.output ?? '.');
  process.stdout.write(options.json ? `${JSON.stringify(summary(result))}\n` : describe(result));
  return 0;
}

/** The daemon's live state, or undefined when none answers (not running, or hung). */
async function daemonSnapshot(runtimeDir: string): Promise<DaemonSnapshot | undefined> {
  try {
    return payloadOf(await askDaemon(runtimeDir, { op: 'support' }, 'support', 5_000));
  } catch (err) {
    if (err instanceof DaemonAbsentError) return undefined;
    process.stderr.write(`iot-agent: warning: the daemon did not answer (${(err as Error).message}); bundling what the state files say\n`);
    return undefined;
  }
}

function summary(result: BundleResult) {
  return {
    path: result.path,
    bytes: result.bytes,
    durationMs: result.manifest.durationMs,
    daemon: result.manifest.daemon,
    collectors: Object.fromEntries(result.manifest.collectors.map((c) => [c.name, c.status])),
  };
}

function describe(result: BundleResult): string {
  const { collectors } = result.manifest;
  const notOk = collectors.filter((c) => c.status !== 'ok').map((c) => `  ${c.name}: ${c.status}${c.error ? ` (${c.error})` : ''}`);
  const counts = `${collectors.length - notOk.length} of ${collectors.length} collectors complete`;
  return [`${result.path}`, `  ${Math.ceil(result.bytes / 1024)} KiB, ${counts}, daemon ${result.manifest.daemon}`, ...notOk, ''].join('\n');
}
