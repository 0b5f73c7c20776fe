import { openTransport } from '../tpm/open-transport.js';
import { TpmClient } from '../tpm/tpm-client.js';
import { readTpmReport, type TpmReport } from '../tpm/tpm-report.js';
import { formatTransport, type TransportSpec } from '../tpm/transport-spec.js';
import { askDaemon, DaemonAbsentError, payloadOf } from './client.js';
import { DAEMON_LOCK_OWNER, TpmLock } from '../daemon/tpm-lock.js';

export interface SharedTpmReport {
  report: TpmReport;
  /** Through the running daemon (its pid), or over a connection of our own. */
  via: { daemonPid: number } | 'direct';
}

export interface SharedTpmOptions {
  runtimeDir: string;
  spec: TransportSpec;
  /** Deadline per TPM command on a connection of our own. */
  commandTimeoutMs?: number;
  /** How long the daemon may take to answer. */
  daemonTimeoutMs?: number;
}

/**
 * The TPM report for a CLI command (check, tpm info, support-bundle). While the daemon holds
 * the TPM and uses the same transport, it is asked over its control socket: swtpm serves one
 * connection at a time, and a second one would wait until it times out, reporting a healthy
 * TPM as unreachable. Otherwise the TPM is opened directly, read and closed.
 */
export async function readSharedTpm(options: SharedTpmOptions): Promise<SharedTpmReport> {
  const transport = formatTransport(options.spec);
  const holder = await TpmLock.holder(options.runtimeDir);
  if (holder?.owner === DAEMON_LOCK_OWNER) {
    try {
      const { pid, ...report } = payloadOf(await askDaemon(options.runtimeDir, { op: 'tpm' }, 'tpm', options.daemonTimeoutMs ?? 12_000));
      if (report.transport === transport) return { report, via: { daemonPid: pid } };
    } catch (err) {
      if (!(err instanceof DaemonAbsentError)) throw err;
      // Its socket is not up yet (starting) or gone (crashed): try the TPM ourselves.
    }
  }
  const client = new TpmClient(openTransport(options.spec, options.commandTimeoutMs ? { commandTimeoutMs: options.commandTimeoutMs } : {}));
  try {
    return { report: await readTpmReport(client, transport), via: 'direct' };
  } finally {
    await client.close().catch(() => undefined);
  }
}
