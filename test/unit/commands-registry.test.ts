import { describe, expect, it } from 'vitest';
import { CommandFailure, defineCommand, type CommandContext } from '../../agent/commands/command.js';
import { MAX_LOG_PAYLOAD_BYTES } from '../../agent/commands/get-logs.js';
import { COMMANDS, CommandRegistry, type CommandReport } from '../../agent/commands/registry.js';
import type { HardeningStatus } from '../../agent/hardening-bridge/access.js';
import { HardeningRequestError } from '../../agent/hardening-bridge/refusal.js';
import { Logger } from '../../agent/log/logger.js';
import type { ApplyReport } from '../../hardening/engine.js';

const report = (fields: Partial<ApplyReport>): ApplyReport => ({
  profile: 'strict', hash: 'h', changed: true, confirmed: false, rolledBack: false, notes: [], durationMs: 1, ...fields,
});
const NOTHING_APPLIED: HardeningStatus = { profile: null, appliedHash: null, confirmed: false, drift: null };

function context(overrides: Partial<CommandContext> = {}): CommandContext {
  let interval = 60;
  return {
    log: new Logger({ write: () => undefined }),
    agentVersion: '9.9.9',
    identity: () => ({ state: 'ready', deviceId: 'd1', assignedHub: 'hub' }),
    requestReprovision: async () => undefined,
    requestRestart: () => undefined,
    reboot: { schedule: () => ({ delaySeconds: 5, done: new Promise<void>(() => undefined) }), pending: () => false },
    telemetry: { intervalSeconds: () => interval, setIntervalSeconds: (s) => { interval = s; } },
    hardening: { apply: async () => report({ confirmed: true }), status: async () => NOTHING_APPLIED },
    attestation: {
      key: async () => ({ akPublic: '', akName: '', handle: '0x81010100', created: false }),
      activate: async () => Buffer.alloc(32),
      quote: async () => ({ quote: '', signature: '', pcrs: {}, eventLog: null, akName: '' }),
    },
    systemInfo: async () => ({ os: {} }),
    support: { buildAndUpload: async ({ blobName }) => ({ blobName, bytes: 2048, collectors: { tpm: 'ok' } }) },
    ...overrides,
  };
}

describe('the command registry', () => {
  it('holds every command of the issue, each once', () => {
    expect(COMMANDS.map((c) => c.name)).toEqual(['ping', 'getSystemInfo', 'reboot', 'reprovision', 'restartAgent',
      'applyHardening', 'getHardeningStatus', 'getLogs', 'setTelemetryInterval', 'uploadSupportBundle', 'attestationKey', 'activateAttestationKey', 'attest']);
  });

  it('answers an unknown command with 404 listing the known ones', async () => {
    const reply = await new CommandRegistry(context()).dispatch('format', {}, { via: 'method' });
    expect(reply.status).toBe(404);
    expect(reply.payload).toMatchObject({ known: expect.arrayContaining(['ping', 'reboot']) });
  });

  it.each(['constructor', '__proto__', 'toString', 'hasOwnProperty'])('treats the inherited name %s as unknown', async (name) => {
    expect((await new CommandRegistry(context()).dispatch(name, {}, { via: 'method' })).status).toBe(404);
  });

  it('answers invalid arguments with 400, the field and the reason', async () => {
    const reply = await new CommandRegistry(context()).dispatch('setTelemetryInterval', { seconds: 86_401 }, { via: 'method' });
    expect(reply).toEqual({ status: 400, payload: {
      message: 'invalid arguments for setTelemetryInterval: seconds: 86401 is out of range: expected 10 to 86400', field: 'seconds', reason: '86401 is out of range: expected 10 to 86400',
    } });
  });

  it('refuses a telemetry interval under the 10 s floor, and takes the floor itself', async () => {
    const registry = new CommandRegistry(context());
    expect(await registry.dispatch('setTelemetryInterval', { seconds: 9 }, { via: 'method' })).toMatchObject({ status: 400, payload: { field: 'seconds' } });
    expect(await registry.dispatch('setTelemetryInterval', { seconds: 10 }, { via: 'method' })).toMatchObject({ status: 200, payload: { intervalSeconds: 10 } });
  });

  it('tells the caller when a request is accepted for execution, before it runs, and not when it is refused', async () => {
    const registry = new CommandRegistry(context());
    const seen: string[] = [];
    const origin = (tag: string) => ({ via: 'c2d' as const, id: tag, accepted: async () => { seen.push(tag); } });
    await registry.dispatch('nope', {}, origin('unknown'));
    await registry.dispatch('getLogs', { lines: 0 }, origin('invalid'));
    await registry.dispatch('ping', undefined, origin('good'));
    expect(seen).toEqual(['good']);
  });

  it('answers a handler failure with 500 and a message, never a stack trace', async () => {
    const registry = new CommandRegistry(context({ systemInfo: async () => { throw new Error('df hung', { cause: new Error('ETIMEDOUT') }); } }));
    const reply = await registry.dispatch('getSystemInfo', undefined, { via: 'method' });
    expect(reply).toEqual({ status: 500, payload: { message: 'getSystemInfo failed: df hung: ETIMEDOUT' } });
  });

  it('passes a CommandFailure status through', async () => {
    const registry = new CommandRegistry(context({ reboot: { schedule: () => ({ delaySeconds: 1, done: Promise.resolve() }), pending: () => true } }));
    expect(await registry.dispatch('reboot', {}, { via: 'method' })).toEqual({ status: 409, payload: { message: 'a reboot is already pending' } });
  });

  it('serialises exclusive commands: a second one while slow work runs gets 409, and the slot frees when it ends', async () => {
    let finish!: (report: ApplyReport) => void;
    const results: CommandReport[] = [];
    const registry = new CommandRegistry(context({ hardening: { apply: () => new Promise((r) => { finish = r; }), status: async () => NOTHING_APPLIED } }), (r) => results.push(r));
    const first = await registry.dispatch('applyHardening', { profile: 'strict' }, { via: 'c2d', id: 'a' });
    expect(first.status).toBe(202);
    expect(await registry.dispatch('reprovision', {}, { via: 'method' })).toMatchObject({ status: 409, payload: { running: 'applyHardening' } });
    expect((await registry.dispatch('ping', {}, { via: 'method' })).status).toBe(200);
    finish(report({ confirmed: true, rolledBack: false }));
    await new Promise((r) => setTimeout(r, 0));
    await new Promise((r) => setTimeout(r, 0));
    expect(registry.busyWith()).toBeUndefined();
    expect(results.filter((r) => r.id === 'a').map((r) => [r.phase, r.status])).toEqual([['accepted', 202], ['final', 200]]);
  });

  it('reports a rolled-back hardening change as a failed final result', async () => {
    const registry = new CommandRegistry(context({ hardening: { apply: async () => report({ rolledBack: true, reason: 'hub unreachable' }), status: async () => NOTHING_APPLIED } }));
    const { final } = await registry.execute('applyHardening', { profile: 'strict', confirmTimeoutSec: 30 }, { via: 'twin' });
    expect(await final).toMatchObject({ status: 500, payload: { message: 'profile strict was rolled back: hub unreachable' } });
  });

  it('answers a refusal of the hardening bridge with its own status and message', async () => {
    const refused = new HardeningRequestError(500, 'profile strict: iot-agent-harden-apply@strict.service failed (exit 1)');
    const registry = new CommandRegistry(context({ hardening: { apply: async () => { throw refused; }, status: async () => NOTHING_APPLIED } }));
    const { final } = await registry.execute('applyHardening', { profile: 'strict' }, { via: 'twin' });
    expect(await final).toEqual({ status: 500, payload: { message: refused.message } });
  });

  it('adds a command with one new module and one registry line', async () => {
    const echo = defineCommand({ name: 'echo', summary: 'echo', args: { text: { type: 'string', pattern: /^.*$/, maxLength: 10, expected: 'text' } },
      run: async ({ text }) => { if (text === 'fail') throw new CommandFailure(418, 'teapot'); return { status: 200, payload: { text } }; } });
    const registry = new CommandRegistry(context(), undefined, [...COMMANDS, echo as never]);
    expect(await registry.dispatch('echo', { text: 'hi' }, { via: 'method' })).toEqual({ status: 200, payload: { text: 'hi' } });
    expect(await registry.dispatch('echo', { text: 'fail' }, { via: 'method' })).toEqual({ status: 418, payload: { message: 'teapot' } });
  });

  it('bounds getLogs to the asked lines and keeps them in order', async () => {
    const log = new Logger({ write: () => undefined });
    for (let i = 0; i < 20; i++) log.info('line', { i });
    const reply = await new CommandRegistry(context({ log })).dispatch('getLogs', { lines: 3 }, { via: 'method' });
    expect((reply.payload as { lines: string[] }).lines.map((l) => /i=(\d+)/.exec(l)?.[1])).toEqual(['17', '18', '19']);
    expect((await new CommandRegistry(context({ log })).dispatch('getLogs', { lines: 501 }, { via: 'method' })).status).toBe(400);
  });

  it.each([
    ['quotes', '"'], ['backslashes', '\\'], ['control characters', '\u0001'], ['astral characters', '\u{1F600}'], ['non-ASCII', 'é'],
  ])('keeps getLogs under 96 KiB of encoded JSON (well inside the 128 KB method limit) for lines full of %s', async (_what, char) => {
    const log = new Logger({ write: () => undefined, keep: 1000 });
    // formatLine writes a value with quotes or backslashes as a JSON string, so these lines only get longer when encoded again.
    for (let i = 0; i < 600; i++) log.info('line', { text: char.repeat(3000) });
    const reply = await new CommandRegistry(context({ log })).dispatch('getLogs', { lines: 500 }, { via: 'method' });
    const payload = reply.payload as { lines: string[]; count: number };
    const encoded = Buffer.byteLength(JSON.stringify(payload));
    expect(encoded).toBeLessThanOrEqual(MAX_LOG_PAYLOAD_BYTES);
    expect(payload.count).toBeGreaterThan(0);
    expect(payload.count).toBe(payload.lines.length);
    expect(payload.lines.every((l) => !/[\uD800-\uDBFF]$/.test(l.replace(/\.\.\.$/, '')))).toBe(true);
  });
});
