import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS, type AgentConfig } from '../../agent/config.js';
import { Daemon } from '../../agent/daemon/daemon.js';
import { Logger } from '../../agent/log/logger.js';
import { freePortPair } from '../support/ports.js';

/** What the daemon tells systemd, recorded instead of sent. */
class RecordingNotifier {
  readonly messages: string[] = [];
  ready(status: string) { this.messages.push(`READY ${status}`); }
  status(status: string) { this.messages.push(`STATUS ${status}`); }
  stopping() { this.messages.push('STOPPING'); }
  startWatchdog() { this.messages.push('WATCHDOG started'); }
  stopWatchdog() { this.messages.push('WATCHDOG stopped'); }
}

describe('the daemon on a board that cannot get far: what it tells systemd, and how it keeps trying', () => {
  let dir: string;
  beforeAll(() => { dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-notify-')); });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('sends READY=1 after the grace time on a board that cannot connect, with the reason, and STATUS on every state', async () => {
    const port = await freePortPair(); // nothing listens: the TPM stays unavailable
    const config: AgentConfig = {
      ...DEFAULTS,
      provisioning: { ...DEFAULTS.provisioning, idScope: '0ne00000001', globalEndpoint: '127.0.0.1' },
      tpm: { transport: `swtpm:host=127.0.0.1,port=${port}` },
      stateDir: path.join(dir, 'state'),
      runtimeDir: path.join(dir, 'run'),
    };
    const notifier = new RecordingNotifier();
    const daemon = new Daemon({
      config, configPath: undefined, log: new Logger({ write: () => undefined }), agentVersion: '9.9.9', onRestartRequested: () => undefined, notifier, readyGraceMs: 300,
      overrides: { timings: { backoff: { initialMs: 50, maxMs: 100, multiplier: 2 } } },
    });
    await daemon.start();
    try {
      await expect.poll(() => notifier.messages.find((m) => m.startsWith('READY')), { timeout: 3_000 })
        .toMatch(/^READY started, not connected yet: TPM unavailable: swtpm 127\.0\.0\.1:\d+: TPM2_ReadPublic failed/);
      expect(notifier.messages).toContain('WATCHDOG started');
      expect(notifier.messages.some((m) => m.startsWith('STATUS degraded: TPM unavailable'))).toBe(true);
      expect(notifier.messages.filter((m) => m.startsWith('READY'))).toHaveLength(1);
    } finally {
      await daemon.stop();
    }
    expect(notifier.messages.slice(-3)).toEqual(['STATUS stopping', 'STOPPING', 'WATCHDOG stopped']);
  });

  it('retries a flow that stopped on something mended later, such as a missing CA file', async () => {
    const port = await freePortPair();
    const caFile = path.join(dir, 'later-ca.pem');
    const config: AgentConfig = {
      ...DEFAULTS,
      provisioning: { ...DEFAULTS.provisioning, idScope: '0ne00000001', globalEndpoint: '127.0.0.1' },
      tpm: { transport: `swtpm:host=127.0.0.1,port=${port}` },
      tls: { extraCaFile: caFile },
      stateDir: path.join(dir, 'state2'),
      runtimeDir: path.join(dir, 'run2'),
    };
    const daemon = new Daemon({
      config, configPath: undefined, log: new Logger({ write: () => undefined }), agentVersion: '9.9.9', onRestartRequested: () => undefined, notifier: new RecordingNotifier(),
      overrides: { timings: { backoff: { initialMs: 50, maxMs: 100, multiplier: 2 } } },
    });
    await daemon.start();
    try {
      await expect.poll(() => daemon.status().reason ?? '', { timeout: 3_000 }).toMatch(/later-ca\.pem cannot be read \(ENOENT\).*\(next try in \d+ s\)/);
      writeFileSync(caFile, 'no certificate in here');
      await expect.poll(() => daemon.status().reason ?? '', { timeout: 3_000 }).toMatch(/later-ca\.pem holds no PEM certificate/);
      writeFileSync(caFile, rootCertificates[0]!);
      await expect.poll(() => daemon.status().reason ?? '', { timeout: 3_000 }).toMatch(/^TPM unavailable/);
    } finally {
      await daemon.stop();
    }
  });
});
