import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type deviceSdk from 'azure-iot-device';
import type iothub from 'azure-iothub';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CommandEndpoint } from '../../agent/commands/command-endpoint.js';
import { ExecutedIds } from '../../agent/commands/executed-ids.js';
import type { CommandReply } from '../../agent/commands/command.js';
import { CommandRegistry, type CommandOrigin, type CommandReport } from '../../agent/commands/registry.js';
import { openDevice } from '../cloud/hub/device-sdk.js';
import { startHub, type LocalHub } from '../cloud/hub/hub.js';
import { serviceClients } from '../cloud/hub/service-sdk.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { capturingLogger, commandContext } from './command-context.js';
import { arrayContaining, ofType } from '../support/matchers.js';

/**
 * The endpoint on a real connection: the unmodified device SDK over MQTT and TLS to the
 * local hub, in this process on a loopback address of its own, and the unmodified service
 * SDK invoking methods. The hub is started by the first test that needs it.
 */
let started: Promise<{ hub: LocalHub; service: { client: iothub.Client } }> | undefined;
const dirs: string[] = [];
const devices: deviceSdk.Client[] = [];

function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

function localHub() {
  started ??= (async () => {
    const hub = await startHub({ address: randomLoopbackAddress(), stateDir: tempDir('iot-agent-endpoint-hub-'), log: () => undefined });
    return { hub, service: serviceClients(hub.serviceConnectionString, hub.ca) };
  })();
  return started;
}

/** A device connected to the local hub with a CommandEndpoint attached; what it reported and logged. */
async function servedDevice(overrides: Parameters<typeof commandContext>[0] = {}, options: { Registry?: typeof CommandRegistry; report?: (r: CommandReport) => void } = {}) {
  const { hub, service } = await localHub();
  const deviceId = `endpoint-${randomBytes(4).toString('hex')}`;
  await hub.registerDevice({ deviceId, registrationId: deviceId, primaryKey: randomBytes(32) });
  const client = await openDevice(hub, deviceId);
  devices.push(client);
  const { log, lines } = capturingLogger();
  const results: CommandReport[] = [];
  const registry = new (options.Registry ?? CommandRegistry)(commandContext({ log, ...overrides }), (r) => results.push(r));
  const executed = await ExecutedIds.open(tempDir('iot-agent-endpoint-state-'), log);
  const reported: CommandReport[] = [];
  new CommandEndpoint(registry, executed, (r) => { reported.push(r); options.report?.(r); }, log).attach(client);
  const invoke = async (methodName: string, payload?: unknown) =>
    (await service.client.invokeDeviceMethod(deviceId, { methodName, payload, responseTimeoutInSeconds: 10 })).result as { status: number; payload: unknown };
  const send = (data: string | Buffer, messageId?: string) => hub.sendC2d(deviceId, { data, ...(messageId ? { messageId } : {}) });
  return { invoke, send, results, reported, executed, lines, client };
}

/** A registry whose dispatch fails after accepting the request: a fault outside any command (a log that cannot be written, a bug). */
class FailingRegistry extends CommandRegistry {
  override async dispatch(_name: string, _args: unknown, origin: CommandOrigin): Promise<CommandReply> {
    await origin.accepted?.();
    throw new Error('the registry broke\n    at dispatch (registry.ts:1:1)');
  }
}

afterEach(async () => {
  for (const client of devices.splice(0)) await client.close();
});

afterAll(async () => {
  if (started) await (await started).hub.stop();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('commands served as direct methods', () => {
  it('answers a method with the registry\'s status and payload', async () => {
    const { invoke } = await servedDevice();
    expect(await invoke('setTelemetryInterval', { seconds: 30 })).toEqual({ status: 200, payload: { intervalSeconds: 30, previous: 60 } });
    expect(await invoke('setTelemetryInterval', { seconds: 3 })).toMatchObject({ status: 400, payload: { field: 'seconds' } });
  });

  it('answers a method invoked without a payload as one with no arguments', async () => {
    const { invoke } = await servedDevice();
    expect(await invoke('ping')).toMatchObject({ status: 200, payload: { pong: true } });
  });

  it('reports a method\'s result as come by direct method, and logs no failed response when the answer left', async () => {
    const { invoke, results, lines } = await servedDevice();
    expect((await invoke('setTelemetryInterval', { seconds: 30 })).status).toBe(200);
    expect(results).toMatchObject([{ command: 'setTelemetryInterval', via: 'method', id: undefined, phase: 'done', status: 200 }]);
    expect(lines.filter((l) => l.includes('command.response_failed'))).toEqual([]);
  });

  it('answers a method whose dispatch failed with 500 and the first line of the error, never a stack', async () => {
    const { invoke } = await servedDevice({}, { Registry: FailingRegistry });
    expect(await invoke('ping')).toEqual({ status: 500, payload: { message: 'ping failed: the registry broke' } });
  });

  it('logs an answer that could not be sent because the connection went away meanwhile', async () => {
    let answer: ((facts: Record<string, unknown>) => void) | undefined;
    const { invoke, lines, client } = await servedDevice({ systemInfo: () => new Promise((resolve) => { answer = resolve; }) });
    void invoke('getSystemInfo').catch(() => undefined);
    await expect.poll(() => answer).toBeDefined();
    await client.close();
    answer!({ os: {} });
    await expect.poll(() => lines.find((l) => l.includes('event=command.response_failed'))).toMatch(/^level=warn event=command.response_failed command=getSystemInfo err=.*disconnected/);
  });

  it('answers an unregistered method whose dispatch failed with 500 too, instead of leaving the caller to time out', async () => {
    const { invoke, lines } = await servedDevice({}, { Registry: FailingRegistry });
    expect(await invoke('formatDisk')).toEqual({ status: 500, payload: { message: 'formatDisk failed: the registry broke' } });
    expect(lines.filter((l) => l.includes('command.response_failed'))).toEqual([]);
  });

  it('logs an answer to an unregistered method that could not be sent because the connection went away meanwhile', async () => {
    let asked = false;
    let release!: () => void;
    const held = new Promise<void>((resolve) => { release = resolve; });
    class HeldRegistry extends CommandRegistry {
      override async dispatch(...args: Parameters<CommandRegistry['dispatch']>): Promise<CommandReply> {
        asked = true;
        await held;
        return super.dispatch(...args);
      }
    }
    const { invoke, lines, client } = await servedDevice({}, { Registry: HeldRegistry });
    void invoke('formatDisk').catch(() => undefined);
    await expect.poll(() => asked).toBe(true);
    await client.close();
    release();
    await expect.poll(() => lines.find((l) => l.includes('event=command.response_failed'))).toMatch(/^level=warn event=command.response_failed command=formatDisk err=.*disconnected/);
  });

  it('answers a method nobody registered with 404 and the known names, instead of leaving the caller to time out', async () => {
    const { invoke, results } = await servedDevice();
    expect(await invoke('formatDisk', { now: true })).toMatchObject({ status: 404, payload: { known: arrayContaining(['ping', 'reboot']) } });
    expect(results).toMatchObject([{ command: 'formatDisk', via: 'method', status: 404 }]);
  });
});

describe('commands served as C2D envelopes', () => {
  it('runs an envelope once, records its id with the status it ended with, and reports a redelivery as a duplicate', async () => {
    const { send, results, reported, executed } = await servedDevice();
    await send(JSON.stringify({ command: 'setTelemetryInterval', args: { seconds: 45 }, id: 'op-1' }));
    await expect.poll(() => executed.find('op-1')?.status).toBe(200);
    expect(results).toMatchObject([{ command: 'setTelemetryInterval', via: 'c2d', id: 'op-1', status: 200, payload: { intervalSeconds: 45 } }]);
    expect(executed.find('op-1')).toMatchObject({ id: 'op-1', command: 'setTelemetryInterval', at: ofType(String) });
    await send(JSON.stringify({ command: 'setTelemetryInterval', args: { seconds: 50 }, id: 'op-1' }));
    await expect.poll(() => reported.length).toBe(1);
    expect(reported[0]).toMatchObject({
      command: 'setTelemetryInterval', via: 'c2d', id: 'op-1', phase: 'done', status: 208,
      payload: { message: `command id op-1 was already executed at ${executed.find('op-1')!.at}; not executed again`, duplicate: true, firstStatus: 200 },
    });
    expect(results).toHaveLength(1);
  });

  it('does not record an envelope refused for a mistake, so that it can be corrected and sent again', async () => {
    const { send, results, executed } = await servedDevice();
    await send(JSON.stringify({ command: 'setTelemetryInterval', args: { seconds: 1 }, id: 'op-2' }));
    await expect.poll(() => results.length).toBe(1);
    expect(results[0]).toMatchObject({ status: 400, id: 'op-2' });
    expect(executed.find('op-2')).toBeUndefined();
    await send(JSON.stringify({ command: 'setTelemetryInterval', args: { seconds: 20 }, id: 'op-2' }));
    await expect.poll(() => executed.find('op-2')?.status).toBe(200);
  });

  it('reports a malformed envelope with 400 under its own id, or else the message id, and logs it', async () => {
    const { send, reported, lines } = await servedDevice();
    await send('{"command":"ping","id":"op-3","extra":1}', 'msg-3');
    await send('not json', 'msg-4');
    await send(Buffer.from([0xff]));
    await expect.poll(() => reported.length).toBe(3);
    expect(reported[0]).toMatchObject({
      command: '(invalid)', via: 'c2d', id: 'op-3', phase: 'done', status: 400,
      payload: { message: 'invalid command envelope: body: unknown key; expected only command, args, id', field: 'body', reason: 'unknown key; expected only command, args, id' },
    });
    expect(reported[1]).toMatchObject({ id: 'msg-4', status: 400, payload: { field: 'body', reason: 'not JSON: expected {"command", "args", "id"}' } });
    expect(reported[2]).toMatchObject({ status: 400, payload: { reason: 'not valid UTF-8' } });
    expect(reported[2]!.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/); // the message id the hub gave it
    expect(lines.filter((l) => l.includes('event=command.bad_envelope'))).toHaveLength(3);
    expect(lines.find((l) => l.includes('messageId=msg-4'))).toMatch(/level=warn event=command.bad_envelope messageId=msg-4 reason="body: not JSON/);
  });

  it('gives a message id it quotes at most 128 characters', async () => {
    const { send, reported } = await servedDevice();
    await send('[]', 'm'.repeat(200));
    await expect.poll(() => reported.length).toBe(1);
    expect(reported[0]!.id).toBe(`${'m'.repeat(125)}...`);
  });

  it('records an envelope whose dispatch failed after it was accepted as finished with 500', async () => {
    const { send, executed } = await servedDevice({}, { Registry: FailingRegistry });
    await send(JSON.stringify({ command: 'ping', id: 'op-6' }));
    await expect.poll(() => executed.find('op-6')?.status).toBe(500);
  });

  it('logs a C2D message it could not handle instead of failing the connection', async () => {
    const { send, lines } = await servedDevice({}, { report: () => { throw new Error('the twin is gone'); } });
    await send('not json', 'msg-7');
    await expect.poll(() => lines.find((l) => l.includes('event=command.c2d_failed'))).toMatch(/^level=error event=command.c2d_failed err=.*the twin is gone/);
  });

  it('logs a duplicate it did not run again', async () => {
    const { send, executed, lines } = await servedDevice();
    await send(JSON.stringify({ command: 'ping', id: 'op-5' }));
    await expect.poll(() => executed.find('op-5')?.status).toBe(200);
    await send(JSON.stringify({ command: 'ping', id: 'op-5' }));
    await expect.poll(() => lines.some((l) => l.includes('event=command.duplicate'))).toBe(true);
    expect(lines.find((l) => l.includes('event=command.duplicate'))).toBe('level=info event=command.duplicate id=op-5 command=ping');
  });
});
