import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { list } from 'tar';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS, type AgentConfig } from '../../agent/config.js';
import type { DaemonSnapshot } from '../../agent/control/protocol.js';
import type { StatusReport } from '../../agent/control/status-report.js';
import type { HardeningSite } from '../../agent/hardening-bridge/site.js';
import { buildBundle, bundleName, collectorsFor } from '../../agent/support/bundle.js';
import { buildInDaemon } from '../../agent/support/daemon-sources.js';
import type { BundleSources } from '../../agent/support/sources.js';
import type { TpmReport } from '../../agent/tpm/tpm-report.js';
import { agentVersion } from '../../agent/version.js';
import { unpackBundle } from '../support/bundle-archive.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { restorePath, standInPrograms } from './stand-in-programs.js';
import { ofType } from '../support/matchers.js';

const dirs: string[] = [];
const savedEnv = { TMPDIR: process.env.TMPDIR };

afterEach(() => {
  restorePath();
  for (const [key, value] of Object.entries(savedEnv)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/**
 * A daemon's view of a board whose DPS is a loopback address of the test's own (refused),
 * whose hardening lives in a test root and namespace, and whose system tools are stand-ins:
 * nothing on this machine or beyond is read or reached.
 */
function liveDaemon() {
  standInPrograms({
    ip: 'case "$1" in netns) exit 1 ;; *) echo "[]" ;; esac',
    journalctl: "echo '2026-03-15T10:00:01+0000 board iot-agent[1]: connected with SharedAccessSignature sr=hub&sig=c2VjcmV0&se=1'",
    timedatectl: 'echo NTP=yes',
  });
  const hardening: HardeningSite = { root: tempDir('iot-agent-bundle-root-'), netns: 'iotagent-bundle-test', backend: 'nft' };
  const stateDir = tempDir('iot-agent-bundle-state-');
  const configPath = path.join(stateDir, 'config.yaml');
  const address = randomLoopbackAddress();
  writeFileSync(configPath, `provisioning:\n  idScope: 0ne00ABCDEF\n  globalEndpoint: ${address}\nstateDir: ${stateDir}\nlog:\n  level: info\n`);
  const config: AgentConfig = { ...structuredClone(DEFAULTS), stateDir, provisioning: { ...DEFAULTS.provisioning, idScope: '0ne00ABCDEF', globalEndpoint: address } };
  const snapshot = {
    status: { state: 'ready', pid: process.pid, deviceId: 'board-7', telemetryQueue: { depth: 2, dropped: 0, oldestAgeSeconds: 4 }, clockOffsetMs: 12 },
    logLevel: 'info', recentLog: ['level=info event=hub.connected token=SharedAccessSignature sr=x&sig=abc'], executedCommands: 3,
  } as unknown as DaemonSnapshot;
  const tpm = { transport: config.tpm.transport, endorsementKey: { ok: true, value: 'AAAA' } } as unknown as TpmReport;
  return { configPath, config, hardening, snapshot, tpm };
}

describe('the support bundle the daemon builds', () => {
  it('runs every collector, in the manifest\'s order', () => {
    expect(collectorsFor({ config: DEFAULTS, since: new Date(0), hardening: { root: '/', backend: 'auto' } } as BundleSources).map((c) => c.name))
      .toEqual(['versions', 'config', 'status', 'check', 'tpm', 'state', 'journal', 'daemon-log', 'hardening', 'network', 'time']);
  });

  it('packs every collector\'s files and a manifest, redacted, owner-only, and leaves no work directory behind', async () => {
    const live = liveDaemon();
    const outputDir = path.join(tempDir('iot-agent-bundle-out-'), 'bundles');
    const work = tempDir('iot-agent-bundle-tmp-');
    process.env.TMPDIR = work;
    const now = new Date('2026-03-15T10:15:00.000Z');
    const since = new Date('2026-03-14T10:15:00.000Z');
    const result = await buildInDaemon({ ...live, configPath: live.configPath, snapshot: () => live.snapshot, tpmReport: () => Promise.resolve(live.tpm) }, since, outputDir, now);

    const name = bundleName(os.hostname(), now);
    expect(result.path).toBe(path.join(outputDir, `${name}.tar.gz`));
    expect(result.bytes).toBe(statSync(result.path).size);
    expect(statSync(outputDir).mode & 0o777).toBe(0o700);
    expect(readdirSync(work)).toEqual([]);

    const bundle = await unpackBundle(result.path);
    expect(bundle.folder).toBe(name);
    expect(bundle.manifest).toEqual(result.manifest);
    expect(bundle.manifest).toMatchObject({
      kind: 'iot-agent/support-bundle', schema: 1, name, createdAt: '2026-03-15T10:15:00.000Z', hostname: os.hostname(), agentVersion: agentVersion(),
      builtBy: 'daemon', daemon: 'running', since: '2026-03-14T10:15:00.000Z', durationMs: ofType(Number),
      redaction: 'SAS tokens, their signatures, the values of SharedAccessKey and AccountKey, PEM private keys, credentials in URLs '
        + '(user:pass@), bearer tokens, and values of secret-sounding keys (password, secret, token, …key) are replaced by [redacted]',
    });
    expect(bundle.manifest.collectors.map((c) => c.name)).toEqual(['versions', 'config', 'status', 'check', 'tpm', 'state', 'journal', 'daemon-log', 'hardening', 'network', 'time']);
    expect(bundle.collector('status').status).toBe('ok');
    expect(bundle.json('status.json')).toMatchObject({ state: 'ready', deviceId: 'board-7', daemon: 'running' });
    expect(bundle.json('tpm.json')).toMatchObject({ endorsementKey: { ok: true, value: 'AAAA' }, via: `the running daemon (pid ${process.pid})` });
    expect(bundle.json('state.json')).toMatchObject({ telemetryQueue: { depth: 2 }, executedCommands: { count: 3 } });
    const checks = bundle.json<{ checks: { id: string }[] }>('check.json').checks;
    expect(checks.length).toBeGreaterThan(0);
    // The daemon's own status, not an answer over a socket it would have to ask itself on.
    expect(checks.find((c) => c.id === 'dps-hold')).toEqual({ id: 'dps-hold', status: 'pass', message: `daemon pid ${process.pid}: DPS is not held off` });
    expect(bundle.files.get('config.yaml')).toContain('idScope: 0ne00ABCDEF');
    // Text and JSON alike have their secrets removed.
    expect(bundle.files.get('journal.txt')).toContain('SharedAccessSignature [redacted]');
    expect(bundle.files.get('daemon-log.txt')).toContain('event=hub.connected token=[redacted]');
    expect([...bundle.files.values()].some((text) => text.includes('c2VjcmV0') || text.includes('sig=abc'))).toBe(false);

    const modes: Record<string, number> = {};
    await list({ file: result.path, onReadEntry: (e) => { modes[e.path] = (e.mode ?? 0) & 0o777; } });
    expect(modes[`${name}/`]).toBe(0o700);
    expect(modes[`${name}/manifest.json`]).toBe(0o600);
    expect(modes[`${name}/network/`]).toBe(0o700);
    expect(Object.entries(modes).filter(([p]) => !p.endsWith('/')).every(([, mode]) => mode === 0o600)).toBe(true);
  });

  it('is whole although collectors fail: each failure is noted in the manifest, with its secrets removed there and in what the caller gets', async () => {
    const live = liveDaemon();
    const outputDir = tempDir('iot-agent-bundle-out-');
    const now = new Date('2026-03-15T10:15:00.000Z');
    const sources: BundleSources = {
      configPath: live.configPath, config: live.config, since: now, builtBy: 'cli', daemon: undefined, hardening: live.hardening,
      status: () => Promise.resolve({
        daemon: 'not running', state: 'stopped', connection: 'HostName=h.example;DeviceId=d;SharedAccessKey=c2VjcmV0a2V5', password: 'hunter2',
      } as unknown as StatusReport),
      readTpm: () => Promise.reject(new Error('TPM busy: SharedAccessKey=c2VjcmV0a2V5 was sent')),
      runChecks: () => Promise.reject(new Error('checks broke')),
    };
    const started = performance.now();
    const result = await buildBundle(sources, outputDir, now);
    const elapsed = performance.now() - started;

    const bundle = await unpackBundle(result.path);
    expect([...bundle.files.keys()].sort()).toEqual([
      'config.json', 'config.yaml', 'hardening/firewall.json', 'hardening/records.json', 'hardening/sysctls.json', 'hardening/usb.json', 'hardening/verify.json',
      'journal.txt', 'manifest.json', 'network/network.json', 'network/resolv.conf', 'state.json', 'status.json', 'time.json', 'versions.json',
    ]);
    expect(bundle.manifest).toEqual(result.manifest);
    expect(result.manifest).toMatchObject({ builtBy: 'cli', daemon: 'not running', since: '2026-03-15T10:15:00.000Z' });
    expect(result.manifest.durationMs).toBeLessThanOrEqual(elapsed);
    expect(Object.fromEntries(result.manifest.collectors.map((c) => [c.name, c.status]))).toEqual({
      versions: 'ok', config: 'ok', status: 'ok', check: 'failed', tpm: 'failed', state: 'ok', journal: 'ok', 'daemon-log': 'unavailable',
      hardening: 'ok', network: 'ok', time: 'ok',
    });
    expect(bundle.collector('tpm')).toEqual({
      name: 'tpm', reads: `TPM ${live.config.tpm.transport}`, status: 'failed', durationMs: ofType(Number), timeoutMs: 5_000, files: [], commands: [],
      error: 'TPM busy: SharedAccessKey=[redacted] was sent',
    });
    expect(bundle.collector('check')).toMatchObject({ status: 'failed', error: 'checks broke', files: [] });
    expect(bundle.json('status.json')).toEqual({
      daemon: 'not running', state: 'stopped', connection: 'HostName=h.example;DeviceId=d;SharedAccessKey=[redacted]', password: '[redacted]',
    });
    expect([...bundle.files.values()].some((text) => text.includes('c2VjcmV0a2V5') || text.includes('hunter2'))).toBe(false);
  });

  it('removes its work directory when packing fails', async () => {
    const live = liveDaemon();
    const outputDir = tempDir('iot-agent-bundle-out-');
    const work = tempDir('iot-agent-bundle-tmp-');
    process.env.TMPDIR = work;
    const now = new Date('2026-03-15T10:15:00.000Z');
    mkdirSync(path.join(outputDir, `${bundleName(os.hostname(), now)}.tar.gz`));
    await expect(buildInDaemon({ ...live, snapshot: () => live.snapshot, tpmReport: () => Promise.resolve(live.tpm) }, now, outputDir, now))
      .rejects.toThrow(/EEXIST/);
    expect(readdirSync(work)).toEqual([]);
  });
});
