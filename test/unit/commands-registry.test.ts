import { describe, expect, it } from 'vitest';
import { CommandFailure, defineCommand } from '../../agent/commands/command.js';
import { MAX_LOG_PAYLOAD_BYTES } from '../../agent/commands/get-logs.js';
import { COMMANDS, CommandRegistry, type CommandReport } from '../../agent/commands/registry.js';
import { HardeningRequestError } from '../../agent/hardening-bridge/refusal.js';
import { Logger } from '../../agent/log/logger.js';
import type { ApplyReport } from '../../hardening/engine.js';
import { arrayContaining } from '../support/matchers.js';
import { applyReport as report, capturingLogger, commandContext as context, NOTHING_APPLIED } from './command-context.js';

describe('the command registry', () => {
  it('holds every command of the issue, each once', () => {
    expect(COMMANDS.map((c) => c.name)).toEqual(['ping', 'getSystemInfo', 'reboot', 'reprovision', 'restartAgent',
      'applyHardening', 'getHardeningStatus', 'getLogs', 'setTelemetryInterval', 'uploadSupportBundle', 'attestationKey', 'activateAttestationKey', 'attest']);
  });

  it('answers an unknown command with 404 listing the known ones', async () => {
    const reply = await new CommandRegistry(context()).dispatch('format', {}, { via: 'method' });
    expect(reply.status).toBe(404);
    expect(reply.payload).toMatchObject({ known: arrayContaining(['ping', 'reboot']) });
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

  it('lets a fault in reading the arguments escape, rather than answer it as invalid arguments', async () => {
    const fault = new TypeError('argument reader broke');
    const args = { get seconds(): number { throw fault; } };
    await expect(new CommandRegistry(context()).dispatch('setTelemetryInterval', args, { via: 'method' })).rejects.toBe(fault);
  });

  it('refuses a telemetry interval under the 10 s floor, and takes the floor itself', async () => {
    const registry = new CommandRegistry(context());
    expect(await registry.dispatch('setTelemetryInterval', { seconds: 9 }, { via: 'method' })).toMatchObject({ status: 400, payload: { field: 'seconds' } });
    expect(await registry.dispatch('setTelemetryInterval', { seconds: 10 }, { via: 'method' })).toMatchObject({ status: 200, payload: { intervalSeconds: 10 } });
  });

  it('tells the caller when a request is accepted for execution, before it runs, and not when it is refused', async () => {
    const registry = new CommandRegistry(context());
    const seen: string[] = [];
    const origin = (tag: string) => ({ via: 'c2d' as const, id: tag, accepted: () => { seen.push(tag); return Promise.resolve(); } });
    await registry.dispatch('nope', {}, origin('unknown'));
    await registry.dispatch('getLogs', { lines: 0 }, origin('invalid'));
    await registry.dispatch('ping', undefined, origin('good'));
    expect(seen).toEqual(['good']);
  });

  it('answers a handler failure with 500 and a message, never a stack trace', async () => {
    const registry = new CommandRegistry(context({ systemInfo: () => Promise.reject(new Error('df hung', { cause: new Error('ETIMEDOUT') })) }));
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
    const registry = new CommandRegistry(context({ hardening: { apply: () => new Promise((r) => { finish = r; }), status: () => Promise.resolve(NOTHING_APPLIED) } }), (r) => results.push(r));
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
    const registry = new CommandRegistry(context({ hardening: { apply: () => Promise.resolve(report({ rolledBack: true, reason: 'hub unreachable' })), status: () => Promise.resolve(NOTHING_APPLIED) } }));
    const { final } = await registry.execute('applyHardening', { profile: 'strict', confirmTimeoutSec: 30 }, { via: 'twin' });
    expect(await final).toMatchObject({ status: 500, payload: { message: 'profile strict was rolled back: hub unreachable' } });
  });

  it('answers a refusal of the hardening bridge with its own status and message', async () => {
    const refused = new HardeningRequestError(500, 'profile strict: iot-agent-harden-apply@strict.service failed (exit 1)');
    const registry = new CommandRegistry(context({ hardening: { apply: () => Promise.reject(refused), status: () => Promise.resolve(NOTHING_APPLIED) } }));
    const { final } = await registry.execute('applyHardening', { profile: 'strict' }, { via: 'twin' });
    expect(await final).toEqual({ status: 500, payload: { message: refused.message } });
  });

  it('adds a command with one new module and one registry line', async () => {
    const echo = defineCommand({ name: 'echo', args: { text: { type: 'string', pattern: /^.*$/, maxLength: 10, expected: 'text' } },
      run: ({ text }) => (text === 'fail' ? Promise.reject(new CommandFailure(418, 'teapot')) : Promise.resolve({ status: 200, payload: { text } })) });
    const registry = new CommandRegistry(context(), undefined, [...COMMANDS, echo]);
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

  it('keeps an exclusive command\'s slot held while quick commands come and go', async () => {
    const registry = new CommandRegistry(context({ hardening: { apply: () => new Promise(() => undefined), status: () => Promise.resolve(NOTHING_APPLIED) } }));
    expect((await registry.dispatch('applyHardening', { profile: 'strict' }, { via: 'method' })).status).toBe(202);
    expect((await registry.dispatch('ping', {}, { via: 'method' })).status).toBe(200);
    expect((await registry.dispatch('setTelemetryInterval', { seconds: 30 }, { via: 'method' })).status).toBe(200);
    expect(registry.busyWith()).toBe('applyHardening');
    expect(await registry.dispatch('reboot', {}, { via: 'method' })).toEqual({ status: 409, payload: {
      message: 'applyHardening is in progress; reboot refused, try again when it has finished', running: 'applyHardening',
    } });
  });

  it('keeps an exclusive command\'s slot held when other slow work that is not exclusive ends', async () => {
    const results: CommandReport[] = [];
    const registry = new CommandRegistry(context({ hardening: { apply: () => new Promise(() => undefined), status: () => Promise.resolve(NOTHING_APPLIED) } }), (r) => results.push(r));
    expect((await registry.dispatch('applyHardening', { profile: 'strict' }, { via: 'method' })).status).toBe(202);
    const upload = await registry.execute('uploadSupportBundle', {}, { via: 'method' });
    expect((await upload.final).status).toBe(200);
    expect(registry.busyWith()).toBe('applyHardening');
    expect((await registry.dispatch('reprovision', {}, { via: 'c2d', id: 'r-1' })).status).toBe(409);
    expect(results.at(-1)).toMatchObject({ command: 'reprovision', id: 'r-1', phase: 'done', status: 409 });
  });

  it('frees the exclusive slot when a quick exclusive command has answered, and when it failed', async () => {
    let restarts = 0;
    const registry = new CommandRegistry(context({ requestRestart: () => { restarts++; if (restarts === 2) throw new Error('stop failed'); } }));
    expect((await registry.dispatch('restartAgent', {}, { via: 'method' })).status).toBe(202);
    expect(registry.busyWith()).toBeUndefined();
    expect(await registry.dispatch('restartAgent', {}, { via: 'method' })).toEqual({ status: 500, payload: { message: 'restartAgent failed: stop failed' } });
    expect(registry.busyWith()).toBeUndefined();
    expect((await registry.dispatch('restartAgent', {}, { via: 'method' })).status).toBe(202);
  });

  it('frees the exclusive slot and reports 500 when slow work fails after its acknowledgement', async () => {
    const results: CommandReport[] = [];
    const registry = new CommandRegistry(context({ requestReprovision: () => Promise.reject(new Error('DPS refused', { cause: new Error('401') })) }), (r) => results.push(r));
    const { reply, final } = await registry.execute('reprovision', {}, { via: 'c2d', id: 'op-7' });
    expect(reply.status).toBe(202);
    expect(registry.busyWith()).toBe('reprovision');
    expect(await final).toEqual({ status: 500, payload: { message: 'reprovision failed: DPS refused: 401' } });
    expect(registry.busyWith()).toBeUndefined();
    expect(results.map((r) => [r.command, r.via, r.id, r.phase, r.status])).toEqual([
      ['reprovision', 'c2d', 'op-7', 'accepted', 202], ['reprovision', 'c2d', 'op-7', 'final', 500],
    ]);
  });

  it('keeps a failure\'s message to its first line', async () => {
    const registry = new CommandRegistry(context({ systemInfo: () => Promise.reject(new Error('df failed\n    at stack frame 1\n    at stack frame 2')) }));
    expect(await registry.dispatch('getSystemInfo', {}, { via: 'method' })).toEqual({ status: 500, payload: { message: 'getSystemInfo failed: df failed' } });
  });

  it('gives a quick command\'s result, and a refused one\'s, as one `done` result with the time it was settled', async () => {
    const results: CommandReport[] = [];
    const registry = new CommandRegistry(context(), (r) => results.push(r));
    const before = Date.now();
    await registry.dispatch('ping', {}, { via: 'method' });
    await registry.dispatch('getLogs', { lines: 'all' }, { via: 'c2d', id: 'x1' });
    await registry.dispatch('nope\u0000'.repeat(20), {}, { via: 'twin' });
    expect(results.map(({ at: _at, payload: _p, ...rest }) => rest)).toEqual([
      { command: 'ping', via: 'method', id: undefined, phase: 'done', status: 200 },
      { command: 'getLogs', via: 'c2d', id: 'x1', phase: 'done', status: 400 },
      { command: `${'nope?'.repeat(12)}n...`, via: 'twin', id: undefined, phase: 'done', status: 404 },
    ]);
    for (const { at } of results) {
      expect(at).toBe(new Date(at).toISOString());
      expect(Date.parse(at)).toBeGreaterThanOrEqual(before - 1);
    }
  });

  it('names an unknown command clipped and printable in its 404, with every known name', async () => {
    const registry = new CommandRegistry(context());
    const reply = await registry.dispatch('x\n'.repeat(100), {}, { via: 'method' });
    expect(reply).toEqual({ status: 404, payload: {
      message: `unknown command "${'x?'.repeat(30)}x..."; known commands: ${registry.names().join(', ')}`, known: registry.names(),
    } });
    expect(registry.names()).toEqual(COMMANDS.map((c) => c.name));
  });

  it('still answers when reporting a result fails, and logs that the report failed', async () => {
    const { log, lines } = capturingLogger();
    const registry = new CommandRegistry(context({ log }), () => { throw new Error('queue full'); });
    expect((await registry.dispatch('ping', {}, { via: 'method' })).status).toBe(200);
    expect(lines.filter((l) => l.includes('event=command.report_failed'))).toEqual(['level=warn event=command.report_failed command=ping err="queue full"']);
  });

  it('logs quick method answers at debug, other results at info, and failures at warn with the handler\'s error', async () => {
    const { log, lines } = capturingLogger('debug');
    const registry = new CommandRegistry(context({ log, systemInfo: () => Promise.reject(new Error('df hung')) }));
    await registry.dispatch('ping', {}, { via: 'method' });
    await registry.dispatch('ping', {}, { via: 'c2d', id: 'p1' });
    await registry.execute('reprovision', {}, { via: 'method' }).then((r) => r.final);
    await registry.dispatch('getSystemInfo', {}, { via: 'method', id: 'm1' });
    expect(lines).toEqual([
      'level=debug event=command.result command=ping via=method status=200 phase=done',
      'level=info event=command.result command=ping via=c2d id=p1 status=200 phase=done',
      'level=info event=command.result command=reprovision via=method status=202 phase=accepted',
      'level=info event=command.result command=reprovision via=method status=200 phase=final',
      'level=warn event=command.failed command=getSystemInfo via=method id=m1 status=500 err="df hung"',
      'level=warn event=command.result command=getSystemInfo via=method id=m1 status=500 phase=done',
    ]);
  });
});
