import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CHECK_IDS } from '../../agent/check/result.js';
import { runChecks, type CheckOptions } from '../../agent/check/runner.js';
import type { SharedTpmReport } from '../../agent/control/shared-tpm.js';
import { writeAssignment } from '../../agent/state/assignment-store.js';
import { ensureServerCredentials } from '../cloud/tls.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { stringMatching } from '../support/matchers.js';
import { closeListeners, connectProxy, httpsServer, listen } from './loopback-proxy.js';

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

  it('fails the hold check, not the run, when the daemon\'s status breaks it', async () => {
    const { configPath } = board();
    const results = await runChecks(options(configPath, { daemonStatus: () => Promise.resolve(null as never) }));
    expect(results.find((r) => r.id === 'dps-hold')).toMatchObject({ status: 'fail', message: stringMatching(/^the check itself failed: TypeError/), hint: 'please report this' });
  });

  it('fails the TPM checks, not the run, when the check itself breaks', async () => {
    const { configPath } = board();
    const results = await runChecks(options(configPath, { tpmRead: () => Promise.resolve({ via: 'direct', report: {} as never }) }));
    expect(results[1]).toMatchObject({ id: 'tpm', status: 'fail', message: stringMatching(/^the check itself failed: TypeError/), hint: 'please report this' });
    expect(results[2]).toMatchObject({ id: 'identity', status: 'fail', message: stringMatching(/^the check itself failed: /) });
  });
});

describe('check: the clock against DPS\'s', () => {
  afterEach(closeListeners);

  /**
   * DPS on port 443 of a loopback address of its own (443 is fixed), or by name behind a proxy,
   * answering with a Date header `skewMs` off this clock; the config trusts its test CA.
   */
  async function dps(skewMs: number | undefined, dpsHost?: string): Promise<{ host: string; extra: string; proxyPort?: number }> {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-check-runner-dps-'));
    const host = dpsHost ?? randomLoopbackAddress();
    const credentials = await ensureServerCredentials(dir, [host]);
    const date = () => (skewMs === undefined ? undefined : new Date(Date.now() + skewMs).toUTCString());
    const extra = `tls:\n  extraCaFile: ${credentials.caCertPath}`;
    if (dpsHost === undefined) {
      await httpsServer(credentials, { date, port: 443, host });
      return { host, extra };
    }
    const { url } = await connectProxy((await httpsServer(credentials, { date })).port, 200);
    return { host, extra: `${extra}\nnetwork:\n  proxy: ${url}` };
  }

  /**
   * The offset in a clock message: the Date header counts whole seconds and the request takes
   * its time, so the estimate is the skew within a second or two (more on a loaded machine).
   */
  const secondsIn = (message: string) => Number(/ (\d+) s /.exec(message)?.[1]);

  function boardFor(host: string, extra: string): string {
    const { configPath } = board(extra);
    writeFileSync(configPath, readFileSync(configPath, 'utf8').replace('globalEndpoint: 127.0.0.1', `globalEndpoint: ${host}`));
    return configPath;
  }

  it('warns when DPS\'s Date header is ten minutes ahead, naming DPS', async () => {
    const { host, extra } = await dps(600_000);
    const results = await runChecks(options(boardFor(host, extra)));
    expect(results.find((r) => r.id === 'dps-tls')).toMatchObject({ status: 'pass' });
    const clock = results.find((r) => r.id === 'clock')!;
    expect(clock.status).toBe('warn');
    expect(clock.message.replace(/ \d+ s /, ' N s ')).toBe(`system time 2026-11-26T12:00:00Z is N s behind DPS ${host}: the agent signs its tokens with the service's time, but TLS certificates and logs use this clock`);
    expect(secondsIn(clock.message)).toBeCloseTo(600, -1);
  });

  it('asks DPS through the proxy that applies to it', async () => {
    const { host, extra } = await dps(-3_600_000, 'dps.example');
    const results = await runChecks(options(boardFor(host, extra)));
    const clock = results.find((r) => r.id === 'clock')!;
    expect(clock).toMatchObject({ status: 'warn', message: stringMatching(/^system time 2026-11-26T12:00:00Z is \d+ s ahead of DPS dps\.example: /) });
    expect(secondsIn(clock.message)).toBeCloseTo(3_600, -1);
  });

  it('says the service\'s time was not measured when DPS sends no Date header', async () => {
    const { host, extra } = await dps(undefined);
    const results = await runChecks(options(boardFor(host, extra)));
    expect(results.find((r) => r.id === 'dps-tls')).toMatchObject({ status: 'pass' });
    expect(results.find((r) => r.id === 'clock')!.message).toBe('system time 2026-11-26T12:00:00Z is plausible (the service\'s time was not measured)');
  });

  it('gives each network step the time it is told, inside the deadline of the whole group', async () => {
    const host = randomLoopbackAddress();
    await listen(net.createServer(), 443, host);
    const t0 = performance.now();
    const results = await runChecks(options(boardFor(host, ''), { networkTimeoutMs: 300 }));
    expect(performance.now() - t0).toBeLessThan(5_000);
    expect(results.find((r) => r.id === 'dps-tls')).toMatchObject({
      status: 'fail', message: `DPS ${host}:443: TCP connected, but the TLS handshake did not finish within 0.3 s`,
    });
  });

  it('does not ask DPS when the extra CA file is unusable', async () => {
    const { host, extra } = await dps(600_000);
    const results = await runChecks(options(boardFor(host, extra.replace(/extraCaFile: .*/, 'extraCaFile: /nonexistent/ca.pem'))));
    expect(results.find((r) => r.id === 'clock')!.message).toBe('system time 2026-11-26T12:00:00Z is plausible (the service\'s time was not measured)');
  });
});
