import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { identityKeyHandleInUse } from '../../agent/azure-sdk/identity-key-handle.js';
import { parseProxyUrl } from '../../agent/config/proxy-setting.js';
import { DpsError } from '../../agent/provisioning/dps-error.js';
import { registerWithDps, type ProvisionStep, type RegisterOptions } from '../../agent/provisioning/register.js';
import { parseTransport } from '../../agent/config/transport-spec.js';
import { IDENTITY_KEY_HANDLE } from '../../agent/tpm/identity.js';
import { openTransport } from '../../agent/tpm/open-transport.js';
import { TpmClient } from '../../agent/tpm/tpm-client.js';
import { buildActivationBlob } from '../cloud/dps/activation-blob.js';
import { SoftwareTpm } from '../cloud/dps/software-tpm.js';
import { ensureServerCredentials, type ServerCredentials } from '../cloud/tls.js';
import { freePort } from '../support/ports.js';

/**
 * One registration through the unmodified provisioning SDK, end to end over real sockets:
 * the SDK's HTTPS goes through a CONNECT proxy on loopback (DPS is reached at port 443 by
 * name, which a test can only answer behind a proxy) to a stand-in DPS that answers the
 * challenge and the signed registration as the test says. The TPM is the one dependency
 * registerWithDps takes as a parameter: here a scripted tss.js stand-in that answers the
 * commands the SDK's TPM security client sends, with the public areas of a software TPM.
 */

let made: Promise<ServerCredentials> | undefined;
/** A private test CA and a certificate for the stand-in DPS's name, made once per file (openssl). */
let credentialsDir: string | undefined;
const credentials = () => (made ??= ensureServerCredentials(credentialsDir = mkdtempSync(path.join(tmpdir(), 'iot-agent-register-dps-')), ['dps.example']));
afterAll(() => {
  if (credentialsDir) rmSync(credentialsDir, { recursive: true, force: true });
});
let software: SoftwareTpm | undefined;
const softwareTpm = () => (software ??= SoftwareTpm.create());

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

/** What a tss.js command answers with: an error carries a TPM response code. */
type Done = (err: { responseCode: number } | null, result?: unknown) => void;
const last = (args: unknown[]) => args[args.length - 1] as Done;
const TPM_RC_HANDLE = 0x18b;
const TPM_PT_INPUT_BUFFER = 0x10d;
const EK_HANDLE = 0x81010001;
const SRK_HANDLE = 0x81000001;

/**
 * A tss.js Tpm as the SDK's TpmSecurityClient drives it: EK and SRK present, no identity key
 * yet; every activation succeeds unless `failActivation`. Records where the hub key was
 * persisted and which handle signed.
 */
function scriptedTpm(options: { failActivation?: boolean } = {}) {
  const { endorsementKey, storageRootKey } = softwareTpm();
  const persistedTo: number[] = [];
  const signedWith: number[] = [];
  const publicArea = (bytes: Buffer) => ({ asTpm2B: () => bytes, toString: () => 'public area' });
  const tpm: Record<string, (...args: unknown[]) => unknown> = {
    connect: (done) => setImmediate(done as () => void),
    allowErrors: () => tpm,
    withSession: () => tpm,
    withSessions: () => tpm,
    ReadPublic: (handle, done) => {
      const h = (handle as { handle: number }).handle;
      if (h === EK_HANDLE) (done as Done)(null, { outPublic: publicArea(endorsementKey) });
      else if (h === SRK_HANDLE) (done as Done)(null, { outPublic: publicArea(storageRootKey) });
      else (done as Done)({ responseCode: TPM_RC_HANDLE });
    },
    GetRandom: (size, done) => (done as Done)(null, randomBytes(size as number)),
    StartAuthSession: (...args) => last(args)(null, { handle: { handle: 0x03000000 }, nonceTPM: Buffer.alloc(32) }),
    PolicySecret: (...args) => last(args)(null, {}),
    ActivateCredential: (...args) => (options.failActivation
      ? last(args)({ responseCode: 0x922 }, Buffer.alloc(0))
      : last(args)(null, randomBytes(16))),
    Import: (...args) => last(args)(null, { buffer: randomBytes(64) }),
    Load: (...args) => last(args)(null, { handle: 0x80000001 }),
    EvictControl: (_auth, object, persistent, done) => {
      if ((object as { handle: number }).handle === 0x80000001) persistedTo.push((persistent as { handle: number }).handle);
      (done as Done)(null);
    },
    FlushContext: (_handle, done) => (done as Done)(null),
    GetCapability: (...args) => last(args)(null, { capabilityData: { tpmProperty: [{ property: TPM_PT_INPUT_BUFFER, value: 1024 }] } }),
    HMAC: (handle, _data, _alg, done) => {
      signedWith.push((handle as { handle: number }).handle);
      (done as Done)(null, randomBytes(32));
    },
  };
  return { client: { sdkTpm: () => tpm } as unknown as TpmClient, persistedTo, signedWith };
}

/** A fresh activation blob for the software TPM's keys, base64 as DPS sends it. */
function authenticationKey(): string {
  const { endorsementKey, storageRootKey } = softwareTpm();
  return buildActivationBlob(endorsementKey, storageRootKey, randomBytes(32)).toString('base64');
}

interface Answer { status: number; body: unknown }

/** DPS's challenge: a 401 that carries an activation blob. */
const challenge = (): Answer => ({ status: 401, body: { authenticationKey: authenticationKey(), keyName: 'registration', message: 'tpm challenge' } });

/** The stand-in DPS over HTTPS: `unsigned()` (the TPM challenge) to an unsigned registration, then `signed(n)` to the n-th signed request. */
async function standInDps(signed: (n: number) => Answer, unsigned = challenge): Promise<number> {
  const { key, cert } = await credentials();
  let count = 0;
  const server = https.createServer({ key, cert }, (request, response) => {
    request.resume();
    const answer: Answer = request.headers.authorization === undefined ? unsigned() : signed(count++);
    response.writeHead(answer.status, { 'content-type': 'application/json' });
    response.end(JSON.stringify(answer.body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => {
    server.closeAllConnections();
    server.close();
  });
  return (server.address() as net.AddressInfo).port;
}

/** A CONNECT proxy on loopback: tunnels to `port` on 127.0.0.1 whatever it is asked for, or refuses every CONNECT with `refuse`. */
async function connectProxy(port: number, refuse?: number): Promise<string> {
  const sockets: net.Socket[] = [];
  const server = http.createServer();
  server.on('connect', (_request: http.IncomingMessage, socket: net.Socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    if (refuse !== undefined) {
      socket.end(`HTTP/1.1 ${refuse} Proxy Authentication Required\r\n\r\n`);
      return;
    }
    const upstream = net.connect(port, '127.0.0.1', () => {
      socket.write('HTTP/1.1 200 Connection established\r\n\r\n');
      upstream.pipe(socket).pipe(upstream);
    });
    sockets.push(upstream);
    upstream.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

const assigned = (registrationState: object): Answer => ({
  status: 200,
  body: { operationId: 'op-1', status: 'assigned', registrationState: { registrationId: 'r1', status: 'assigned', tpm: { authenticationKey: authenticationKey() }, ...registrationState } },
});

async function registration(tpm: TpmClient, answer: (n: number) => Answer,
  more: Partial<RegisterOptions> & { refuse?: number; unsigned?: () => Answer } = {}): Promise<RegisterOptions> {
  const { refuse, unsigned, ...options } = more;
  const proxyUrl = await connectProxy(await standInDps(answer, unsigned), refuse);
  return {
    tpm, registrationId: 'r1', idScope: '0ne1', globalEndpoint: 'dps.example', ca: (await credentials()).ca,
    proxy: parseProxyUrl(proxyUrl, 'network.proxy'), ...options,
  };
}

describe('one registration with DPS through the SDK', () => {
  it('is assigned a hub, reporting the challenge, the activation and the assignment once each, with the hub key in the slot it was given', async () => {
    const { client, persistedTo, signedWith } = scriptedTpm();
    const steps: [ProvisionStep, string | undefined][] = [];
    const options = await registration(client, () => assigned({ assignedHub: 'hub-a.example', deviceId: 'board-17' }), {
      identityKeyHandle: 0x81000101, onStep: (step, detail) => steps.push([step, detail]),
    });
    expect(await registerWithDps(options)).toEqual({ assignedHub: 'hub-a.example', deviceId: 'board-17' });
    expect(steps).toEqual([['challenge', undefined], ['activated', undefined], ['assigned', 'hub-a.example as board-17']]);
    // Two activations (DPS's challenge, then the hub key), both persisted to the staging slot; the registration signed with it.
    expect(persistedTo).toEqual([0x81000101, 0x81000101]);
    expect(signedWith).toEqual([0x81000101]);
    expect(identityKeyHandleInUse()).toBe(IDENTITY_KEY_HANDLE);
  });

  it('uses the SDK\'s own identity key handle when given none, and needs nobody to listen for steps', async () => {
    const { client, persistedTo } = scriptedTpm();
    const options = await registration(client, () => assigned({ assignedHub: 'hub-a.example', deviceId: 'board-17' }));
    expect(await registerWithDps(options)).toEqual({ assignedHub: 'hub-a.example', deviceId: 'board-17' });
    expect(persistedTo).toEqual([IDENTITY_KEY_HANDLE, IDENTITY_KEY_HANDLE]);
  });

  it('reports the challenge but no activation when the TPM cannot activate it, and blames the TPM, not DPS, whose last answer was the challenge\'s 401', async () => {
    const { client } = scriptedTpm({ failActivation: true });
    const steps: ProvisionStep[] = [];
    const options = await registration(client, () => assigned({ assignedHub: 'hub-a.example', deviceId: 'board-17' }), { onStep: (step) => steps.push(step) });
    const err = await registerWithDps(options).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DpsError);
    expect(err).toMatchObject({
      message: 'TPM failed during registration with DPS dps.example (ID scope 0ne1, registration r1)', retryable: true, operatorMustAct: false,
    });
    expect(String((err as Error).cause)).toMatch(/^SecurityDeviceError: Unable to decrypt the symmetric key/);
    expect(steps).toEqual(['challenge']);
  });

  it('refuses an answer without an assigned hub or device id, and tries again later', async () => {
    for (const state of [{ deviceId: 'board-17' }, { assignedHub: 'hub-a.example' }]) {
      const options = await registration(scriptedTpm().client, () => assigned(state));
      const err = await registerWithDps(options).catch((e: unknown) => e);
      expect(err, JSON.stringify(state)).toBeInstanceOf(DpsError);
      expect(err).toMatchObject({ message: 'DPS answered without an assigned hub and device id', retryable: true, operatorMustAct: false });
    }
  });

  it('refuses an assignment it could not use (a device id IoT Hub would not take), caching nothing, and leaves it to an operator', async () => {
    const steps: ProvisionStep[] = [];
    const options = await registration(scriptedTpm().client, () => assigned({ assignedHub: 'hub-a.example', deviceId: 'board 17/../x' }), { onStep: (step) => steps.push(step) });
    const err = await registerWithDps(options).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DpsError);
    expect(err).toMatchObject({ retryable: false, operatorMustAct: true, hint: 'check the enrollment\'s device id and the linked hubs in DPS' });
    expect((err as Error).message).toMatch(/^DPS dps\.example answered with an unusable assignment: deviceId "board 17\/\.\.\/x" is not an IoT Hub device id .*; nothing was cached$/);
    expect(steps).toEqual(['challenge', 'activated']);
  });

  it('names DPS\'s own answer when it refuses the signed registration', async () => {
    const options = await registration(scriptedTpm().client, () => ({ status: 401, body: { errorCode: 401002, message: 'unauthorized' } }));
    const err = await registerWithDps(options).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DpsError);
    expect(err).toMatchObject({
      message: 'DPS dps.example (ID scope 0ne1, registration r1) refused the device (401)', httpStatus: 401, retryable: false, operatorMustAct: true,
    });
  });

  it('leaves a device DPS does not know (a 401 without a challenge) to an operator, before any TPM activation', async () => {
    const steps: ProvisionStep[] = [];
    const options = await registration(scriptedTpm().client, () => assigned({}), {
      unsigned: () => ({ status: 401, body: { errorCode: 401002, message: 'no enrollment' } }), onStep: (step) => steps.push(step),
    });
    const err = await registerWithDps(options).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DpsError);
    expect(err).toMatchObject({
      message: 'DPS dps.example (ID scope 0ne1, registration r1) refused the device (401)', retryable: false, operatorMustAct: true,
    });
    expect(steps).toEqual([]);
  });

  it('names the proxy, not DPS, when the proxy refuses the tunnel', async () => {
    const options = await registration(scriptedTpm().client, () => assigned({ assignedHub: 'hub-a.example', deviceId: 'board-17' }), { refuse: 407 });
    const err = await registerWithDps(options).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DpsError);
    expect(err).toMatchObject({ retryable: true, operatorMustAct: false });
    expect((err as Error).message).toMatch(/^DPS dps\.example not reached: .*407/);
    expect((err as DpsError).cause).toMatchObject({ statusCode: 407 });
  });

  it('names the proxy when it cannot be reached at all', async () => {
    const options = { ...await registration(scriptedTpm().client, () => assigned({})), proxy: parseProxyUrl(`http://127.0.0.1:${await freePort()}`, 'network.proxy') };
    const err = await registerWithDps(options).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DpsError);
    expect((err as Error).message).toMatch(/^DPS dps\.example not reached: the proxy .*could not be reached \(ECONNREFUSED\)$/);
    expect(err).toMatchObject({ retryable: true, operatorMustAct: false });
  });

  it('blames the TPM when it fails before DPS was asked anything, proxy or not', async () => {
    const tpm = new TpmClient(openTransport(parseTransport(`swtpm:port=${await freePort()}`), { commandTimeoutMs: 2_000 }));
    try {
      const options = await registration(tpm, () => assigned({}));
      const err = await registerWithDps(options).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DpsError);
      expect((err as Error).message).toBe('TPM failed during registration with DPS dps.example (ID scope 0ne1, registration r1)');
    } finally {
      await tpm.close();
    }
  });
});
