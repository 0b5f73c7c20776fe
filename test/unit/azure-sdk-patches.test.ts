import type { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import device from 'azure-iot-device';
import deviceMqtt from 'azure-iot-device-mqtt';
import { describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { DESIRED_PATCH_EVENT, enableDesiredUpdates, onDesiredPatch } from '../../agent/azure-sdk/desired-updates.js';
import { interceptMethodRequests } from '../../agent/azure-sdk/method-requests.js';
import { sdkWs } from '../../agent/azure-sdk/sdk-modules.js';
import { sendWholePacketsOverWebSockets } from '../../agent/azure-sdk/websocket-packets.js';
import { sdkClient, tpmProvider } from '../support/azure-sdk.js';

// What the patches in agent/azure-sdk/ do to the real SDK; that the members they rely on exist is azure-sdk-contract.test.ts's part.
function transportOf(client: InstanceType<typeof device.Client>) {
  return (client as unknown as { _transport: { emit(event: string, ...args: unknown[]): boolean; listenerCount(e: string): number } })._transport;
}

describe('the patches of the device SDK', () => {
  it('hands a method request with an empty body to the handler as null, where the SDK alone answers 400', () => {
    const client = sdkClient();
    const payloads: unknown[] = [];
    const answered: number[] = [];
    interceptMethodRequests(client, () => undefined);
    // The listener the SDK itself registers for onDeviceMethod, without connecting.
    const transport = transportOf(client) as unknown as { on(e: string, l: (m: unknown) => void): void; sendMethodResponse(r: { status: number }, done: () => void): void };
    transport.sendMethodResponse = (response, done) => { answered.push(response.status); done(); };
    (client as unknown as { _addMethodCallback(name: string, cb: (req: { payload: unknown }) => void): void })._addMethodCallback('ping', (req) => payloads.push(req.payload));
    transportOf(client).emit('method_ping', { requestId: '1', methods: { methodName: 'ping' }, body: Buffer.alloc(0), properties: {} });
    transportOf(client).emit('method_ping', { requestId: '2', methods: { methodName: 'ping' }, body: Buffer.from('{"a":1}'), properties: {} });
    expect(payloads).toEqual([null, { a: 1 }]);
    expect(answered).toEqual([]);
  });

  it('passes a method nobody registered to the unknown-method handler, which answers it', async () => {
    const client = sdkClient();
    const statuses: number[] = [];
    const transport = transportOf(client) as unknown as { sendMethodResponse(r: { status: number }, done: () => void): void };
    transport.sendMethodResponse = (response, done) => { statuses.push(response.status); done(); };
    const unknown: string[] = [];
    interceptMethodRequests(client, (name, answer) => { unknown.push(name); void answer(404, { message: 'unknown' }); });
    expect(transportOf(client).emit('method_selfDestruct', { requestId: '9', methods: { methodName: 'selfDestruct' }, body: Buffer.alloc(0) })).toBe(true);
    await new Promise((r) => setTimeout(r, 0));
    expect(unknown).toEqual(['selfDestruct']);
    expect(statuses).toEqual([404]);
  });

  it('takes MQTT over WebSockets to wss://{hub}:443/$iothub/websocket with the same username and client id as over 8883', () => {
    // The agent picks the SDK's MqttWs (agent/hub/session.ts); this pins where it goes, as Microsoft Learn documents the endpoint.
    type Transport = { _getBaseTransportConfig(credentials: object): { uri: string; username: string; clientId: string } };
    const provider = tpmProvider();
    const credentials = { host: 'hub.example', deviceId: 'd1', sharedAccessSignature: 'SharedAccessSignature sr=x' };
    const ws = (new deviceMqtt.MqttWs(provider) as unknown as Transport)._getBaseTransportConfig(credentials);
    const tls = (new deviceMqtt.Mqtt(provider) as unknown as Transport)._getBaseTransportConfig(credentials);
    expect(ws.uri).toBe('wss://hub.example:443/$iothub/websocket');
    expect(tls.uri).toBe('mqtts://hub.example');
    expect({ ...ws, uri: undefined }).toEqual({ ...tls, uri: undefined });
  });

  it('passes desired patches from the transport on, sanitised', () => {
    const client = sdkClient();
    const patches: unknown[] = [];
    const stop = onDesiredPatch(client, (p) => patches.push(p));
    transportOf(client).emit(DESIRED_PATCH_EVENT, JSON.parse('{"logLevel":"warn","constructor":[1],"$version":3}'));
    stop();
    transportOf(client).emit(DESIRED_PATCH_EVENT, { logLevel: 'error', $version: 4 });
    expect(patches).toEqual([{ logLevel: 'warn', $version: 3 }]);
  });

  it('passes every other transport event on untouched, with all its arguments', () => {
    const client = sdkClient();
    interceptMethodRequests(client, () => { throw new Error('not a method'); });
    const seen: unknown[][] = [];
    (transportOf(client) as unknown as { on(e: string, l: (...a: unknown[]) => void): void }).on('message', (...args) => seen.push(args));
    const symbol = Symbol('s');
    (transportOf(client) as unknown as { on(e: symbol, l: (...a: unknown[]) => void): void }).on(symbol, (...args) => seen.push(args));
    expect(transportOf(client).emit('message', 'a', 'b')).toBe(true);
    expect((transportOf(client) as unknown as { emit(e: symbol, ...a: unknown[]): boolean }).emit(symbol, 1)).toBe(true);
    expect(transportOf(client).emit('nobody_listens', 1)).toBe(false);
    expect(seen).toEqual([['a', 'b'], [1]]);
  });

  it('hands a registered method its request with the body and extra arguments as they came', () => {
    const client = sdkClient();
    interceptMethodRequests(client, () => { throw new Error('registered'); });
    const got: unknown[][] = [];
    (transportOf(client) as unknown as { on(e: string, l: (...a: unknown[]) => void): void }).on('method_ping', (...args) => got.push(args));
    const body = Buffer.from('{"a":1}');
    expect(transportOf(client).emit('method_ping', { requestId: '1', methods: { methodName: 'ping' }, body }, 'extra')).toBe(true);
    expect(got).toEqual([[{ requestId: '1', methods: { methodName: 'ping' }, body }, 'extra']]);
  });

  it('listens for desired patches under the event name the SDK\'s MQTT transport uses', () => {
    expect(DESIRED_PATCH_EVENT).toBe('twinDesiredPropertiesUpdate');
  });

  it('lets the unknown-method handler know when its answer went out, or why it did not', async () => {
    const client = sdkClient();
    const transport = transportOf(client) as unknown as { sendMethodResponse(r: { status: number }, done: (err?: Error) => void): void };
    let fail = false;
    transport.sendMethodResponse = (_response, done) => setImmediate(() => done(fail ? new Error('link down') : undefined));
    const answers: Promise<void>[] = [];
    interceptMethodRequests(client, (_name, answer) => { answers.push(answer(404, { message: 'unknown' })); });
    transportOf(client).emit('method_a', { requestId: '1', methods: { methodName: 'a' }, body: Buffer.alloc(0) });
    await expect(answers[0]).resolves.toBeUndefined();
    fail = true;
    transportOf(client).emit('method_b', { requestId: '2', methods: { methodName: 'b' }, body: Buffer.alloc(0) });
    await expect(answers[1]).rejects.toThrow('link down');
  });

  it('subscribes to desired patches through the transport, resolving once the hub took the subscription and rejecting with its error', async () => {
    const client = sdkClient();
    const transport = transportOf(client) as unknown as { enableTwinDesiredPropertiesUpdates(done: (err?: Error) => void): void };
    const refused = new Error('SUBACK refused');
    const answers = [undefined, refused];
    let subscriptions = 0;
    // The transport's own subscription would connect to the (unresolvable) hub; the answer is the test's.
    transport.enableTwinDesiredPropertiesUpdates = (done) => { subscriptions++; const answer = answers.shift(); setImmediate(() => done(answer)); };
    await expect(enableDesiredUpdates(client)).resolves.toBeUndefined();
    await expect(enableDesiredUpdates(client)).rejects.toBe(refused);
    expect(subscriptions).toBe(2);
  });

  it('passes on only desired patches that are objects', () => {
    const client = sdkClient();
    const patches: unknown[] = [];
    onDesiredPatch(client, (p) => patches.push(p));
    for (const patch of [null, [1], 'text', 7, { logLevel: 'debug' }]) transportOf(client).emit(DESIRED_PATCH_EVENT, patch);
    expect(patches).toEqual([{ logLevel: 'debug' }]);
  });
});

describe('MQTT over WebSockets through the SDK\'s own ws', () => {
  it('is patched once, however many WebSocket sessions are made (each reconnect asks again)', () => {
    const installed = () => Object.getOwnPropertyDescriptor(sdkWs(), 'createWebSocketStream')?.value as unknown;
    sendWholePacketsOverWebSockets();
    const patched = installed();
    sendWholePacketsOverWebSockets();
    expect(installed()).toBe(patched);
  });


  it('sends the pieces of one MQTT packet as one WebSocket message', async () => {
    const ws = sdkWs() as unknown as { createWebSocketStream(ws: unknown): Duplex } & (new (url: string) => EventEmitter);
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((r) => server.once('listening', r));
    const messages: Buffer[] = [];
    server.on('connection', (socket) => socket.on('message', (data: Buffer) => messages.push(data)));
    try {
      sendWholePacketsOverWebSockets();
      const client = new ws(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
      await new Promise((r) => client.once('open', r));
      const stream = ws.createWebSocketStream(client);
      // What mqtt-packet does for one packet: cork, several writes, uncork on the next tick.
      stream.cork();
      for (const piece of ['\x30', '\x0b', '\x00\x03a/b', 'hello']) stream.write(Buffer.from(piece, 'latin1'));
      process.nextTick(() => stream.uncork());
      await expect.poll(() => messages.length).toBe(1);
      expect(messages[0]!.toString('latin1')).toBe('\x30\x0b\x00\x03a/bhello');
      stream.destroy();
    } finally {
      server.close();
    }
  });
});
