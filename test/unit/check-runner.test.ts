import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHECK_IDS } from '../../agent/check/result.js';
import { runChecks, type CheckOptions } from '../../agent/check/runner.js';
import type { SharedTpmReport } from '../../agent/control/shared-tpm.js';
import { writeAssignment } from '../../agent/state/assignment-store.js';
import { stringMatching } from '../support/matchers.js';

/**
 * A board whose config names loopback endpoints where nothing speaks TLS: every check runs
 * for real and ends quickly. The TPM is read through the runner's own `tpmRead` parameter.
 */
function board(extra = ''): { dir: string; configPath: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-check-runner-'));
  const configPath = path.join(dir, 'config.yaml');
  writeFileSync(configPath, [
    'provisioning:', '  idScope: 0ne0012ABCD', '  globalEndpoint: 127.0.0.1',
    `stateDir: ${path.join(dir, 'state')}`, `runtimeDir: ${path.join(dir, 'run')}`, extra,
  ].join('\n'));
  return { dir, configPath };
}

const tpmReport = (): SharedTpmReport => ({
  via: 'direct',
  report: {
    transport: 'swtpm:host=127.0.0.1,port=2321',
    endorsementKey: { ok: true, value: Buffer.from('0006000b00000000', 'hex').toString('base64') },
    storageRootKey: { ok: true, value: null },
    identityKey: { ok: true, value: null },
    facts: { ok: false, error: 'not read', refused: false },
  },
});

const options = (configPath: string, overrides: Partial<CheckOptions> = {}): CheckOptions => ({
  configPath, tpmOverride: undefined, now: () => new Date('2026-11-26T12:00:00Z'), networkTimeoutMs: 2_000, tpmCommandTimeoutMs: 500,
  tpmRead: () => Promise.resolve(tpmReport()), ...overrides,
});

describe('check: the whole run', () => {
  it('returns one result per check, in the printed order, whatever order they finish in', async () => {
    const { configPath } = board();
    const results = await runChecks(options(configPath));
    expect(results.map((r) => r.id)).toEqual([...CHECK_IDS]);
    expect(results.map((r) => [r.id, r.status])).toEqual([
      ['config', 'pass'], ['tpm', 'pass'], ['identity', 'warn'], ['clock', 'pass'], ['state', 'warn'], ['state-dir', 'pass'],
      ['dps-hold', 'pass'], ['proxy', 'pass'], ['dps-dns', 'pass'], ['dps-tls', 'fail'], ['hub-dns', 'warn'], ['hub-tls', 'warn'], ['hub-wss', 'warn'], ['hub-choice', 'warn'],
    ]);
    expect(results[3]!.message).toBe('system time 2026-11-26T12:00:00Z is plausible (the service\'s time was not measured)');
    expect(results[6]!.message).toMatch(/^no daemon running: /);
    expect(results[10]).toEqual({ id: 'hub-dns', status: 'warn', message: 'not provisioned, no hub known', hint: 'the hub is known once DPS has assigned one' });
  });

  it('checks the assigned hub once there is a cached assignment', async () => {
    const { dir, configPath } = board();
    await writeAssignment(path.join(dir, 'state'), {
      assignedHub: '127.0.0.1', deviceId: 'board-17', registrationId: 'board-17', idScope: '0ne0012ABCD', globalEndpoint: '127.0.0.1',
      assignedAt: '2026-11-26T02:30:00.000Z', identityKeyHandle: 0x81000100,
    });
    const results = await runChecks(options(configPath));
    expect(results.find((r) => r.id === 'state')!.status).toBe('pass');
    expect(results.find((r) => r.id === 'hub-dns')).toEqual({ id: 'hub-dns', status: 'pass', message: 'hub 127.0.0.1 is an IP address: nothing to resolve' });
    expect(results.find((r) => r.id === 'hub-tls')!.message).toMatch(/^hub 127\.0\.0\.1:8883: /);
    expect(results.find((r) => r.id === 'dps-tls')!.message).toMatch(/^DPS 127\.0\.0\.1:443: /);
  });

  it('names an unusable cached assignment as the reason no hub is known', async () => {
    const { dir, configPath } = board();
    mkdirSync(path.join(dir, 'state'), { recursive: true });
    writeFileSync(path.join(dir, 'state', 'assignment.json'), '{');
    const results = await runChecks(options(configPath));
    expect(results.find((r) => r.id === 'hub-tls')).toMatchObject({ status: 'warn', message: 'the cached assignment is not usable (see state), no hub known' });
  });

  it('runs the other checks with the defaults\' help when the config is invalid, and fails it', async () => {
    const { configPath } = board('log:\n  level: loud');
    const results = await runChecks(options(configPath));
    expect(results[0]).toMatchObject({ id: 'config', status: 'fail' });
    expect(results.find((r) => r.id === 'dps-dns')!.message).toBe('DPS 127.0.0.1 is an IP address: nothing to resolve');
  });

  it('reads the TPM named by IOT_AGENT_TPM, and says so', async () => {
    const { configPath } = board();
    const read: string[] = [];
    const results = await runChecks(options(configPath, {
      tpmOverride: 'swtpm:port=2400',
      tpmRead: (spec) => { read.push(JSON.stringify(spec)); return Promise.resolve(tpmReport()); },
    }));
    expect(read).toEqual([JSON.stringify({ kind: 'swtpm', host: '127.0.0.1', port: 2400 })]);
    expect(results[1]!.message).toContain('swtpm:host=127.0.0.1,port=2400 from IOT_AGENT_TPM');
  });

  it('fails the TPM checks, not the run, when reading the TPM hangs', async () => {
    const { configPath } = board();
    const t0 = performance.now();
    const results = await runChecks(options(configPath, { tpmCommandTimeoutMs: 100, tpmRead: () => new Promise(() => undefined) }));
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(results.slice(1, 3)).toEqual([
      { id: 'tpm', status: 'fail', message: 'did not finish within 1.2 s', hint: 'something hangs: see the other checks' },
      { id: 'identity', status: 'fail', message: 'did not finish within 1.2 s', hint: 'something hangs: see the other checks' },
    ]);
  });

  it('warns, not fails, when the running daemon does not tell its hold on DPS in time', async () => {
    const { configPath } = board();
    const t0 = performance.now();
    const results = await runChecks(options(configPath, { daemonTimeoutMs: 100, daemonStatus: () => new Promise(() => undefined) }));
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(results.find((r) => r.id === 'dps-hold')).toMatchObject({ status: 'warn', message: 'the running daemon did not say whether DPS is held off: no answer within 0.1 s' });
  });

  it('fails the TPM checks, not the run, when the check itself breaks', async () => {
    const { configPath } = board();
    const results = await runChecks(options(configPath, { tpmRead: () => Promise.resolve({ via: 'direct', report: {} as never }) }));
    expect(results[1]).toMatchObject({ id: 'tpm', status: 'fail', message: stringMatching(/^the check itself failed: TypeError/), hint: 'please report this' });
    expect(results[2]).toMatchObject({ id: 'identity', status: 'fail', message: stringMatching(/^the check itself failed: /) });
  });
});
