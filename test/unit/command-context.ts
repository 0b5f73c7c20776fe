import type { CommandContext } from '../../agent/commands/command.js';
import type { HardeningStatus } from '../../agent/hardening-bridge/access.js';
import { Logger } from '../../agent/log/logger.js';
import type { ApplyReport } from '../../hardening/engine.js';

/** An apply report of profile strict, with the fields a test is about. */
export const applyReport = (fields: Partial<ApplyReport>): ApplyReport => ({
  profile: 'strict', hash: 'h', changed: true, confirmed: false, rolledBack: false, notes: [], durationMs: 1, ...fields,
});

export const NOTHING_APPLIED: HardeningStatus = { profile: null, appliedHash: null, confirmed: false, drift: null };

/**
 * What the daemon lends to commands, with plain in-memory parts: an interval that can be
 * set, a reboot that never comes, a hardening engine that confirms, an attestation key.
 * Each test replaces the parts it is about.
 */
export function commandContext(overrides: Partial<CommandContext> = {}): CommandContext {
  let interval = 60;
  return {
    log: new Logger({ write: () => undefined }),
    agentVersion: '9.9.9',
    identity: () => ({ state: 'ready', deviceId: 'd1', assignedHub: 'hub' }),
    requestReprovision: () => Promise.resolve(),
    requestRestart: () => undefined,
    reboot: { schedule: () => ({ delaySeconds: 5, done: new Promise<void>(() => undefined) }), pending: () => false },
    telemetry: { intervalSeconds: () => interval, setIntervalSeconds: (s) => { interval = s; } },
    hardening: { apply: () => Promise.resolve(applyReport({ confirmed: true })), status: () => Promise.resolve(NOTHING_APPLIED) },
    attestation: {
      key: () => Promise.resolve({ akPublic: '', akName: '', handle: '0x81010100', created: false }),
      activate: () => Promise.resolve(Buffer.alloc(32)),
      quote: () => Promise.resolve({ quote: '', signature: '', pcrs: {}, eventLog: null, akName: '' }),
    },
    systemInfo: () => Promise.resolve({ os: {} }),
    support: { buildAndUpload: ({ blobName }) => Promise.resolve({ blobName, bytes: 2048, collectors: { tpm: 'ok' } }) },
    ...overrides,
  };
}

/** A logger whose lines (without the time) the test reads. */
export function capturingLogger(level: 'debug' | 'info' = 'info'): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: new Logger({ journal: false, level, write: (l) => lines.push(l.replace(/^time=\S+ /, '').trimEnd()) }), lines };
}
