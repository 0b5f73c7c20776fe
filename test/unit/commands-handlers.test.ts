import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { CommandFailure } from '../../agent/commands/command.js';
import { MAX_LOG_LINES, MAX_LOG_PAYLOAD_BYTES } from '../../agent/commands/get-logs.js';
import { CommandRegistry } from '../../agent/commands/registry.js';
import { ExitCode } from '../../agent/lib/errors.js';
import type { HardeningStatus } from '../../agent/hardening-bridge/access.js';
import { Logger } from '../../agent/log/logger.js';
import type { ApplyReport } from '../../hardening/engine.js';
import { applyReport, commandContext, NOTHING_APPLIED } from './command-context.js';

const method = { via: 'method' } as const;

/** A logger whose lines are exactly `length` characters: `time=… level=info event=x text=aaa…`. */
function loggerWithLines(count: number, length: number, text: (i: number) => string = () => ''): Logger {
  const log = new Logger({ write: () => undefined, keep: 1000, journal: false, now: () => new Date('2026-11-26T00:00:00Z') });
  const prefix = 'time=2026-11-26T00:00:00.000Z level=info event=x text='.length;
  for (let i = 0; i < count; i++) {
    const own = text(i);
    log.info('x', { text: `${own}${'a'.repeat(length - prefix - own.length)}` });
  }
  return log;
}

describe('ping', () => {
  it('answers liveness with the agent\'s version, Node\'s, the connection state and the uptime', async () => {
    const before = Date.now();
    const reply = await new CommandRegistry(commandContext({ identity: () => ({ state: 'connecting' }) })).dispatch('ping', {}, method);
    const payload = reply.payload as { time: string; uptimeSeconds: number };
    expect(reply).toEqual({ status: 200, payload: {
      pong: true, time: payload.time, agentVersion: '9.9.9', node: process.versions.node, state: 'connecting', uptimeSeconds: payload.uptimeSeconds,
    } });
    expect(Date.parse(payload.time)).toBeGreaterThanOrEqual(before - 1);
    expect(Date.parse(payload.time)).toBeLessThanOrEqual(Date.now());
    expect(Number.isInteger(payload.uptimeSeconds)).toBe(true);
    expect(Math.abs(payload.uptimeSeconds - process.uptime())).toBeLessThanOrEqual(1);
  });
});

describe('the commands that answer what the daemon knows', () => {
  it('getSystemInfo answers the daemon\'s system facts as they are', async () => {
    const facts = { os: { distro: 'Debian' }, temperature: null };
    expect(await new CommandRegistry(commandContext({ systemInfo: () => Promise.resolve(facts) })).dispatch('getSystemInfo', {}, method)).toEqual({ status: 200, payload: facts });
  });

  it('getHardeningStatus answers the engine\'s status as it is', async () => {
    const status: HardeningStatus = { profile: 'strict', appliedHash: 'h', confirmed: true, drift: 0 };
    const context = commandContext({ hardening: { apply: () => Promise.resolve(applyReport({})), status: () => Promise.resolve(status) } });
    expect(await new CommandRegistry(context).dispatch('getHardeningStatus', {}, method)).toEqual({ status: 200, payload: status });
  });

  it('attestationKey answers the key the TPM side holds', async () => {
    const key = { akPublic: 'AAAA', akName: '000b11', handle: '0x81010100', created: true };
    const context = commandContext({ attestation: { ...commandContext().attestation, key: () => Promise.resolve(key) } });
    expect(await new CommandRegistry(context).dispatch('attestationKey', {}, method)).toEqual({ status: 200, payload: key });
  });
});

describe('setTelemetryInterval', () => {
  it('sets the interval and answers it with the one it replaced', async () => {
    const context = commandContext();
    const registry = new CommandRegistry(context);
    expect(await registry.dispatch('setTelemetryInterval', { seconds: 30 }, method)).toEqual({ status: 200, payload: { intervalSeconds: 30, previous: 60 } });
    expect(context.telemetry.intervalSeconds()).toBe(30);
    expect(await registry.dispatch('setTelemetryInterval', { seconds: 86_400 }, method)).toEqual({ status: 200, payload: { intervalSeconds: 86_400, previous: 30 } });
  });

  it('needs the number of seconds', async () => {
    expect(await new CommandRegistry(commandContext()).dispatch('setTelemetryInterval', {}, method)).toMatchObject({ status: 400, payload: { field: 'seconds', reason: 'is required' } });
  });
});

describe('restartAgent', () => {
  it(`asks the daemon to restart and answers 202 with the exit code ${ExitCode.restartRequested} systemd restarts on`, async () => {
    let asked = 0;
    const reply = await new CommandRegistry(commandContext({ requestRestart: () => { asked++; } })).dispatch('restartAgent', {}, method);
    expect(ExitCode.restartRequested).toBe(75);
    expect(reply).toEqual({ status: 202, payload: { accepted: true, message: 'restarting (exit code 75)', exitCode: 75 } });
    expect(asked).toBe(1);
  });
});

describe('the exclusive commands', () => {
  it.each(['reboot', 'reprovision', 'restartAgent', 'applyHardening'])('refuse %s with 409 while another exclusive command runs', async (name) => {
    const registry = new CommandRegistry(commandContext({ hardening: { apply: () => new Promise(() => undefined), status: () => Promise.resolve(NOTHING_APPLIED) } }));
    const first = name === 'applyHardening' ? 'reboot' : 'applyHardening';
    expect((await registry.dispatch(first, first === 'applyHardening' ? { profile: 'strict' } : {}, method)).status).toBe(202);
    const args = name === 'applyHardening' ? { profile: 'strict' } : {};
    expect(await registry.dispatch(name, args, method)).toMatchObject({ status: 409, payload: { running: first } });
  });
});

describe('reprovision', () => {
  it('acknowledges first, re-provisions after the answer has left, and answers the new identity', async () => {
    let identity = { state: 'ready', deviceId: 'd1', assignedHub: 'hub-a' };
    let asked = 0;
    const context = commandContext({
      identity: () => identity,
      requestReprovision: () => { asked++; identity = { state: 'ready', deviceId: 'd1', assignedHub: 'hub-b' }; return Promise.resolve(); },
    });
    const started = performance.now();
    const { reply, final } = await new CommandRegistry(context).execute('reprovision', {}, method);
    expect(reply).toEqual({ status: 202, payload: { accepted: true, message: 're-provisioning: the device will reconnect, possibly to another hub' } });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(asked).toBe(0);
    expect(await final).toEqual({ status: 200, payload: { message: 're-provisioned: d1 on hub-b', deviceId: 'd1', assignedHub: 'hub-b' } });
    expect(asked).toBe(1);
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
  });
});

describe('reboot', () => {
  it('acknowledges with the delay, then reports that the reboot started', async () => {
    let start!: () => void;
    const context = commandContext({ reboot: { schedule: () => ({ delaySeconds: 7, done: new Promise<void>((r) => { start = r; }) }), pending: () => false } });
    const { reply, final } = await new CommandRegistry(context).execute('reboot', {}, method);
    expect(reply).toEqual({ status: 202, payload: { accepted: true, message: 'rebooting in 7 s', delaySeconds: 7 } });
    start();
    expect(await final).toEqual({ status: 200, payload: { message: 'reboot started' } });
  });

  it('reports a reboot program that failed as the final result', async () => {
    const context = commandContext({ reboot: { schedule: () => ({ delaySeconds: 0, done: Promise.reject(new Error('systemctl reboot failed: Access denied')) }), pending: () => false } });
    const { final } = await new CommandRegistry(context).execute('reboot', {}, method);
    expect(await final).toEqual({ status: 500, payload: { message: 'reboot failed: systemctl reboot failed: Access denied' } });
  });
});

describe('applyHardening', () => {
  function withApply(apply: (profile: string, timeout: number) => Promise<ApplyReport>) {
    const calls: [string, number][] = [];
    const context = commandContext({ hardening: { apply: (p, t) => { calls.push([p, t]); return apply(p, t); }, status: () => Promise.resolve(NOTHING_APPLIED) } });
    return { registry: new CommandRegistry(context), calls };
  }

  it('confirms within 60 s unless asked otherwise, and says so in its acknowledgement', async () => {
    const { registry, calls } = withApply(() => Promise.resolve(applyReport({ confirmed: true })));
    const { reply } = await registry.execute('applyHardening', { profile: 'strict' }, method);
    expect(reply).toEqual({ status: 202, payload: {
      accepted: true, message: 'applying profile strict, confirming within 60 s', profile: 'strict', confirmTimeoutSec: 60,
    } });
    expect(calls).toEqual([['strict', 60]]);
  });

  it('takes a confirm timeout from 5 s to an hour', async () => {
    const { registry, calls } = withApply(() => Promise.resolve(applyReport({ confirmed: true })));
    await (await registry.execute('applyHardening', { profile: 'strict', confirmTimeoutSec: 5 }, method)).final;
    await (await registry.execute('applyHardening', { profile: 'strict', confirmTimeoutSec: 3600 }, method)).final;
    expect(calls).toEqual([['strict', 5], ['strict', 3600]]);
    expect(await registry.dispatch('applyHardening', { profile: 'strict', confirmTimeoutSec: 4 }, method)).toMatchObject({ status: 400, payload: { field: 'confirmTimeoutSec' } });
    expect(await registry.dispatch('applyHardening', { profile: 'strict', confirmTimeoutSec: 3601 }, method)).toMatchObject({ status: 400, payload: { field: 'confirmTimeoutSec' } });
  });

  it('reports the engine\'s report as the final result: applied and confirmed, or applied', async () => {
    const confirmedReport = applyReport({ confirmed: true, rolledBack: false });
    const confirmed = withApply(() => Promise.resolve(confirmedReport));
    expect(await (await confirmed.registry.execute('applyHardening', { profile: 'strict' }, method)).final).toEqual({
      status: 200, payload: { message: 'profile strict applied and confirmed', report: confirmedReport },
    });
    const unconfirmedReport = applyReport({ profile: 'baseline', confirmed: false });
    const unconfirmed = withApply(() => Promise.resolve(unconfirmedReport));
    expect(await (await unconfirmed.registry.execute('applyHardening', { profile: 'baseline' }, method)).final).toEqual({
      status: 200, payload: { message: 'profile baseline applied', report: unconfirmedReport },
    });
  });

  it('reports a rolled-back profile as 500 with the engine\'s reason, or says it recorded none', async () => {
    const withReason = applyReport({ rolledBack: true, reason: 'hub-1.azure-devices.net:8883 unreachable after apply' });
    const explained = withApply(() => Promise.resolve(withReason));
    expect(await (await explained.registry.execute('applyHardening', { profile: 'strict' }, method)).final).toEqual({
      status: 500, payload: { message: 'profile strict was rolled back: hub-1.azure-devices.net:8883 unreachable after apply', report: withReason },
    });
    const silent = applyReport({ rolledBack: true });
    const unexplained = withApply(() => Promise.resolve(silent));
    expect(await (await unexplained.registry.execute('applyHardening', { profile: 'strict' }, method)).final).toEqual({
      status: 500, payload: { message: 'profile strict was rolled back: no reason recorded', report: silent },
    });
  });

  it('reports a refusal with its own status, and any other failure as 500 naming the profile', async () => {
    const refused = withApply(() => Promise.reject(new CommandFailure(400, 'profile must be a name, never a path')));
    expect(await (await refused.registry.execute('applyHardening', { profile: 'strict' }, method)).final).toEqual({
      status: 400, payload: { message: 'profile must be a name, never a path' },
    });
    const broken = withApply(() => Promise.reject(new Error('iptables-restore: line 3 failed')));
    expect(await (await broken.registry.execute('applyHardening', { profile: 'strict' }, method)).final).toEqual({
      status: 500, payload: { message: 'profile strict not applied: iptables-restore: line 3 failed' },
    });
  });

  it.each(['../etc/x', 'strict.yaml', ''])('refuses the profile %j before anything is applied', async (profile) => {
    const { registry, calls } = withApply(() => Promise.resolve(applyReport({})));
    expect(await registry.dispatch('applyHardening', { profile }, method)).toMatchObject({ status: 400, payload: { field: 'profile' } });
    expect(calls).toEqual([]);
  });
});

describe('getLogs', () => {
  it(`answers the last 100 lines unless asked for 1 to ${MAX_LOG_LINES}`, async () => {
    const log = loggerWithLines(600, 80, (i) => `${i}-`);
    const registry = new CommandRegistry(commandContext({ log }));
    const lines = async (args: unknown) => ((await registry.dispatch('getLogs', args, method)).payload as { lines: string[] }).lines;
    const all = log.recent(1000);
    expect(await lines({})).toEqual(all.slice(-100));
    expect(await lines({ lines: 1 })).toEqual(all.slice(-1));
    expect(await lines({ lines: MAX_LOG_LINES })).toEqual(all.slice(-MAX_LOG_LINES));
    expect(await registry.dispatch('getLogs', { lines: 0 }, method)).toMatchObject({ status: 400, payload: { field: 'lines' } });
  });

  it('keeps as many of the newest lines as fit in 96 KiB of JSON, oldest first', async () => {
    // 500 lines of 194 characters: 196 bytes each as JSON, a comma between them; 498 fit, 499 would not.
    const log = loggerWithLines(500, 194, (i) => `${i}-`);
    const reply = await new CommandRegistry(commandContext({ log })).dispatch('getLogs', { lines: 500 }, method);
    const payload = reply.payload as { lines: string[]; count: number };
    expect(payload.count).toBe(498);
    expect(payload.lines).toEqual(log.recent(498));
    expect(Buffer.byteLength(JSON.stringify(payload))).toBeLessThanOrEqual(MAX_LOG_PAYLOAD_BYTES);
    expect(Buffer.byteLength(JSON.stringify({ lines: log.recent(499), count: 499 }))).toBeGreaterThan(MAX_LOG_PAYLOAD_BYTES);
  });

  it('keeps a line that fills the 96 KiB exactly', async () => {
    // 360 lines of 270 characters: 24 bytes of envelope and 273 per line (quotes and comma) make 98 304 bytes, the budget to the byte.
    const log = loggerWithLines(360, 270, (i) => `${i}-`);
    const reply = await new CommandRegistry(commandContext({ log })).dispatch('getLogs', { lines: 360 }, method);
    const payload = reply.payload as { lines: string[]; count: number };
    expect(payload.count).toBe(360);
    expect(payload.lines).toEqual(log.recent(360));
    // One character more on each line: 360 bytes over, so the two oldest lines stay out.
    const longer = loggerWithLines(360, 271, (i) => `${i}-`);
    expect(((await new CommandRegistry(commandContext({ log: longer })).dispatch('getLogs', { lines: 360 }, method)).payload as { count: number }).count).toBe(358);
  });

  it('counts the answer around the lines in the budget', async () => {
    // 100 lines of 980 characters take 98 300 bytes, 4 under the budget, but not with {"lines":[],"count":…} around them.
    const log = loggerWithLines(100, 980, (i) => `${i}-`);
    const payload = (await new CommandRegistry(commandContext({ log })).dispatch('getLogs', { lines: 100 }, method)).payload as { lines: string[]; count: number };
    expect(payload.count).toBe(99);
    expect(payload.lines).toEqual(log.recent(99));
  });

  it('cuts a line longer than 2048 characters, never inside a character', async () => {
    const plain = loggerWithLines(1, 3000);
    const [line] = ((await new CommandRegistry(commandContext({ log: plain })).dispatch('getLogs', { lines: 1 }, method)).payload as { lines: string[] }).lines;
    expect(line).toBe(`${plain.recent(1)[0]!.slice(0, 2048)}...`);
    const fits = loggerWithLines(1, 2048);
    expect(((await new CommandRegistry(commandContext({ log: fits })).dispatch('getLogs', {}, method)).payload as { lines: string[] }).lines).toEqual(fits.recent(1));
    // An emoji whose first half is the 2048th character: cut before it.
    const prefix = 'time=2026-11-26T00:00:00.000Z level=info event=x text='.length;
    const astral = new Logger({ write: () => undefined, journal: false, now: () => new Date('2026-11-26T00:00:00Z') });
    astral.info('x', { text: `${'a'.repeat(2047 - prefix)}\u{1F600}${'b'.repeat(100)}` });
    const [cut] = ((await new CommandRegistry(commandContext({ log: astral })).dispatch('getLogs', {}, method)).payload as { lines: string[] }).lines;
    expect(cut).toBe(`${astral.recent(1)[0]!.slice(0, 2047)}...`);
  });
});

describe('uploadSupportBundle', () => {
  it('names the blob after this host and the time, and echoes the default since', async () => {
    const { reply, final } = await new CommandRegistry(commandContext()).execute('uploadSupportBundle', {}, method);
    const { blobName } = reply.payload as { blobName: string };
    const host = os.hostname().replace(/[^A-Za-z0-9.-]/g, '_').slice(0, 64) || 'unknown';
    expect(blobName).toMatch(new RegExp(`^iot-agent-support-${host.replace(/\./g, '\\.')}-\\d{8}T\\d{6}Z\\.tar\\.gz$`));
    expect(reply.payload).toEqual({
      accepted: true, message: `building the support bundle ${blobName}; the result follows in lastCommands.uploadSupportBundle`, blobName, since: '24h',
    });
    expect(await final).toMatchObject({ status: 200, payload: { message: `uploaded ${blobName} (2 KiB)`, bytes: 2048 } });
  });

  it('rounds the size up to whole KiB', async () => {
    const context = commandContext({ support: { buildAndUpload: ({ blobName }) => Promise.resolve({ blobName, bytes: 1, collectors: {} }) } });
    const { final } = await new CommandRegistry(context).execute('uploadSupportBundle', {}, method);
    expect(((await final).payload as { message: string }).message).toMatch(/ \(1 KiB\)$/);
  });

  it('keeps the status of a failure the daemon understood (not connected: 503)', async () => {
    const context = commandContext({ support: { buildAndUpload: () => Promise.reject(new CommandFailure(503, 'not connected to the hub')) } });
    const { final } = await new CommandRegistry(context).execute('uploadSupportBundle', {}, method);
    expect(await final).toEqual({ status: 503, payload: { message: 'support bundle not uploaded: not connected to the hub' } });
  });

  it('takes a bundle again after one failed', async () => {
    let fail = true;
    const context = commandContext({ support: { buildAndUpload: ({ blobName }) =>
      fail ? Promise.reject(new Error('no storage linked')) : Promise.resolve({ blobName, bytes: 1, collectors: {} }) } });
    const registry = new CommandRegistry(context);
    expect((await (await registry.execute('uploadSupportBundle', {}, method)).final).status).toBe(500);
    fail = false;
    expect((await (await registry.execute('uploadSupportBundle', {}, method)).final).status).toBe(200);
  });

  it('builds one bundle per daemon: another daemon\'s bundle does not block this one', async () => {
    const slow = commandContext({ support: { buildAndUpload: () => new Promise(() => undefined) } });
    expect((await new CommandRegistry(slow).dispatch('uploadSupportBundle', {}, method)).status).toBe(202);
    expect((await new CommandRegistry(commandContext()).dispatch('uploadSupportBundle', {}, method)).status).toBe(202);
  });
});

describe('attest', () => {
  it('answers a TPM failure as a failure of the command', async () => {
    const context = commandContext({ attestation: { ...commandContext().attestation, quote: () => Promise.reject(new CommandFailure(409, 'no attestation key yet: call attestationKey first')) } });
    const nonce = Buffer.alloc(16, 1).toString('base64');
    expect(await new CommandRegistry(context).dispatch('attest', { nonce }, method)).toEqual({ status: 409, payload: { message: 'no attestation key yet: call attestationKey first' } });
  });

  it.each([[16, 200], [15, 400], [66, 200], [67, 400]])('takes a nonce of %i bytes: %i', async (bytes, status) => {
    const nonce = Buffer.alloc(bytes, 7).toString('base64');
    expect((await new CommandRegistry(commandContext()).dispatch('attest', { nonce }, method)).status).toBe(status);
  });
});
