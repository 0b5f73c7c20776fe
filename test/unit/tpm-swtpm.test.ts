import { createRequire } from 'node:module';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EK_HANDLE, ensureIdentity, IDENTITY_KEY_HANDLE, readPersistent, SRK_HANDLE } from '../../agent/tpm/identity.js';
import { endorsementKeyTemplate, storageRootKeyTemplate } from '../../agent/tpm/key-templates.js';
import { registrationIdFromEndorsementKey } from '../../agent/tpm/registration-id.js';
import { SwtpmTransport } from '../../agent/tpm/swtpm-transport.js';
import { TpmClient, TpmCommandError } from '../../agent/tpm/tpm-client.js';
import { readTpmFacts } from '../../agent/tpm/tpm-facts.js';
import { readTpmReport } from '../../agent/tpm/tpm-report.js';
import { TpmUnavailableError } from '../../agent/tpm/transport.js';
import {
  GetCapabilityResponse, GetRandomResponse, NullPwSession, Owner, TPM_ALG_ID, TPM_CAP, TPM_CC, TPM_HANDLE, TPM2_GetCapability_REQUEST,
  TPM2_GetRandom_REQUEST, TPM_RH, TPMA_OBJECT, TPMT_PUBLIC, type CreatePrimaryResponse,
} from '../../agent/tpm/tss-lib.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { clientFor } from '../support/tpm.js';

/**
 * The TPM layer against a real TPM: a private swtpm per file (fresh, so the first test finds
 * no keys), spoken to through the agent's own transports.
 */

// Structures the agent has no re-export for: taken from tss.js directly, for the test's own commands.
const tss = createRequire(import.meta.url)('tss.js') as typeof import('tss.js');

const GET_RANDOM_8 = Buffer.from('80010000000c0000017b0008', 'hex');
/** swtpm's control channel: CMD_INIT with no flags. */
const CMD_INIT = Buffer.from('0000000200000000', 'hex');

let swtpm: SwtpmInstance;
beforeAll(async () => { swtpm = await SwtpmInstance.start(); });
afterAll(async () => { await swtpm?.stop(); });

async function withClient<T>(use: (client: TpmClient) => Promise<T>, transport = swtpm.transport): Promise<T> {
  const client = clientFor(transport, { commandTimeoutMs: 10_000 });
  try {
    return await use(client);
  } finally {
    await client.close();
  }
}

/** The handles of the transient objects loaded in the TPM. */
async function transientHandles(client: TpmClient): Promise<number[]> {
  const response = await client.execute(TPM_CC.GetCapability, new TPM2_GetCapability_REQUEST(TPM_CAP.HANDLES, 0x80000000, 16), GetCapabilityResponse);
  return (response.capabilityData as InstanceType<typeof tss.TPML_HANDLE>).handle.map((h) => h.handle);
}

/** An HMAC key made and persisted at `handle`, as DPS's identity key would be. */
async function persistHmacKey(client: TpmClient, handle: number): Promise<void> {
  const template = new TPMT_PUBLIC(TPM_ALG_ID.SHA256,
    TPMA_OBJECT.sign | TPMA_OBJECT.userWithAuth | TPMA_OBJECT.fixedTPM | TPMA_OBJECT.fixedParent | TPMA_OBJECT.sensitiveDataOrigin,
    Buffer.alloc(0), new tss.TPMS_KEYEDHASH_PARMS(new tss.TPMS_SCHEME_HMAC(TPM_ALG_ID.SHA256)), new tss.TPM2B_DIGEST_KEYEDHASH());
  const key = await client.run<CreatePrimaryResponse>('CreatePrimary', (tpm, done) =>
    tpm.withSession(NullPwSession).CreatePrimary(Owner, new tss.TPMS_SENSITIVE_CREATE(), template, Buffer.alloc(0), [], done));
  await client.run<void>('EvictControl', (tpm, done) => tpm.withSession(NullPwSession).EvictControl(Owner, key.handle, new TPM_HANDLE(handle), done));
  await client.run<void>('FlushContext', (tpm, done) => tpm.FlushContext(key.handle, done));
}

async function evict(client: TpmClient, handle: number): Promise<void> {
  await client.run<void>('EvictControl', (tpm, done) =>
    tpm.withSession(NullPwSession).EvictControl(Owner, new TPM_HANDLE(handle), new TPM_HANDLE(handle), done));
}

describe('the device identity on a real TPM', () => {
  it('is reported empty on a fresh TPM, and reading the report creates nothing', async () => {
    await withClient(async (client) => {
      const report = await readTpmReport(client, swtpm.transport);
      expect(report).toMatchObject({
        endorsementKey: { ok: true, value: null }, storageRootKey: { ok: true, value: null }, identityKey: { ok: true, value: null }, facts: { ok: true },
      });
    });
  });

  it('creates and persists the EK and SRK of the Azure SDK\'s templates on a fresh TPM, and only then', async () => {
    await withClient(async (client) => {
      const first = await ensureIdentity(client);
      expect(first.created).toEqual(['EK', 'SRK']);
      expect(first.identityKeyPresent).toBe(false);
      expect(first.registrationId).toBe(registrationIdFromEndorsementKey(first.endorsementKey));
      const ek = (await client.readPublic(new TPM_HANDLE(EK_HANDLE))).outPublic;
      const srk = (await client.readPublic(new TPM_HANDLE(SRK_HANDLE))).outPublic;
      expect(first.endorsementKey).toEqual(ek.asTpm2B());
      expect(first.storageRootKey).toEqual(srk.asTpm2B());
      expect([ek.objectAttributes, ek.authPolicy]).toEqual([endorsementKeyTemplate().objectAttributes, endorsementKeyTemplate().authPolicy]);
      expect([srk.objectAttributes, srk.authPolicy]).toEqual([storageRootKeyTemplate().objectAttributes, Buffer.alloc(0)]);
      expect(await transientHandles(client)).toEqual([]);

      const again = await ensureIdentity(client);
      expect(again).toEqual({ ...first, created: [] });
    });
  });

  it('names the command a TPM refused while persisting a new key, and leaves no transient key behind', async () => {
    const fresh = await SwtpmInstance.start();
    try {
      await withClient(async (client) => {
        // The owner hierarchy disabled: the EK is created (endorsement hierarchy), but cannot be persisted.
        await client.run<void>('HierarchyControl', (tpm, done) =>
          tpm.withSession(NullPwSession).HierarchyControl(new TPM_HANDLE(TPM_RH.PLATFORM), new TPM_HANDLE(TPM_RH.OWNER), 0, done));
        await expect(ensureIdentity(client)).rejects.toThrow(`TPM2_EvictControl failed on swtpm 127.0.0.1:${fresh.port}: TPM_RC_HIERARCHY (0x185)`);
        expect(await transientHandles(client)).toEqual([]);
      }, fresh.transport);
    } finally {
      await fresh.stop();
    }
  });

  it('takes the registration id it is given, once checked', async () => {
    await withClient(async (client) => {
      expect((await ensureIdentity(client, { registrationId: 'board-7' })).registrationId).toBe('board-7');
      await expect(ensureIdentity(client, { registrationId: 'Board 7' })).rejects.toThrow('invalid registration id "Board 7"');
    });
  });

  it('reads an empty persistent handle as nothing, and sees the identity key once there is one', async () => {
    await withClient(async (client) => {
      expect(await readPersistent(client, IDENTITY_KEY_HANDLE)).toBeUndefined();
      await persistHmacKey(client, IDENTITY_KEY_HANDLE);
      try {
        expect((await readPersistent(client, IDENTITY_KEY_HANDLE))?.type).toBe(TPM_ALG_ID.KEYEDHASH);
        expect((await ensureIdentity(client)).identityKeyPresent).toBe(true);
        const report = await readTpmReport(client, swtpm.transport);
        expect(report.identityKey).toEqual({ ok: true, value: { type: 'KEYEDHASH' } });
      } finally {
        await evict(client, IDENTITY_KEY_HANDLE);
      }
    });
  });

  it('passes on a refusal other than an empty handle', async () => {
    await withClient(async (client) => {
      // A permanent handle (TPM_RH_OWNER) has no public area: TPM_RC_VALUE, not TPM_RC_HANDLE.
      await expect(readPersistent(client, 0x40000001)).rejects.toMatchObject({ responseCode: 0x184 });
      // A transient handle that is not loaded: a warning, named.
      await expect(readPersistent(client, 0x80000000)).rejects.toThrow(
        `TPM2_ReadPublic failed on swtpm 127.0.0.1:${swtpm.port}: TPM_RC_REFERENCE_H0 (0x910): the 1st handle in the handle area references a transient object or session that is not loaded`);
    });
  });
});

describe('the TPM client on a real TPM', () => {
  it('refuses with the command, the transport and the TPM\'s code in words', async () => {
    await withClient(async (client) => {
      const err = await client.readPublic(new TPM_HANDLE(0x81000fff)).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(TpmCommandError);
      expect(err).toMatchObject({
        command: 'ReadPublic', responseCode: 0x18b,
        message: `TPM2_ReadPublic failed on swtpm 127.0.0.1:${swtpm.port}: TPM_RC_HANDLE (0x18b): the handle is not correct for the use (for a persistent handle: nothing is stored there) (handle 1)`,
      });
    });
  });

  it('names a command code tss.js does not know by its number', async () => {
    await withClient(async (client) => {
      await expect(client.execute(0x7fff as TPM_CC, new TPM2_GetRandom_REQUEST(8), GetRandomResponse))
        .rejects.toThrow(`TPM2_0x7fff failed on swtpm 127.0.0.1:${swtpm.port}: TPM_RC_COMMAND_CODE (0x143): the command code is not supported`);
    });
  });

  it('executes a command that answers nothing', async () => {
    await withClient(async (client) => {
      expect(await client.execute(TPM_CC.SelfTest, new tss.TPM2_SelfTest_REQUEST(0))).toBeUndefined();
      expect((await client.execute(TPM_CC.GetRandom, new TPM2_GetRandom_REQUEST(8), GetRandomResponse)).randomBytes).toHaveLength(8);
    });
  });

  it('runs tss.js commands one after the other, and gives a refusal its full response code', async () => {
    await withClient(async (client) => {
      const order: string[] = [];
      const first = client.run<Buffer>('GetRandom', (tpm, done) => { order.push('first'); tpm.GetRandom(8, done); });
      const refused = client.run<void>('ReadPublic', (tpm, done) => { order.push('second'); tpm.ReadPublic(new TPM_HANDLE(0x81000fff), done as never); });
      const third = client.run<Buffer>('GetRandom', (tpm, done) => { order.push('third'); tpm.GetRandom(4, done); });
      expect(await first).toHaveLength(8);
      await expect(refused).rejects.toMatchObject({
        responseCode: 0x18b, message: `TPM2_ReadPublic failed on swtpm 127.0.0.1:${swtpm.port}: TPM_RC_HANDLE (0x18b): the handle is not correct for the use (for a persistent handle: nothing is stored there) (handle 1)`,
      });
      expect(await third).toHaveLength(4);
      expect(order).toEqual(['first', 'second', 'third']);
    });
  });

  it('serves the Azure SDK\'s tss.js Tpm on the same transport: connect, commands, close', async () => {
    const client = clientFor(swtpm.transport);
    const sdk = client.sdkTpm();
    const connected = await new Promise<unknown[]>((resolve) => sdk.connect((...args: unknown[]) => resolve(args)));
    expect(connected).toEqual([null]);
    const random = await new Promise<Buffer>((resolve, reject) => sdk.GetRandom(6, (err, bytes) => (err ? reject(err) : resolve(bytes!))));
    expect(random).toHaveLength(6);
    sdk.close();
    await expect(client.readPublic(new TPM_HANDLE(EK_HANDLE))).rejects.toThrow(`swtpm 127.0.0.1:${swtpm.port}: transport is closed`);
    await client.close();
  });

  it('gives each SDK user a tss.js Tpm of its own: their commands at the same time each get their own answer', async () => {
    const client = clientFor(swtpm.transport);
    const [old, next] = [client.sdkTpm(), client.sdkTpm()];
    // A stopped session's command still on its way while the next session sends its own.
    const random = (tpm: typeof old, bytes: number) => new Promise<Buffer>((resolve, reject) => tpm.GetRandom(bytes, (err, got) => (err ? reject(err) : resolve(got!))));
    const answers = await Promise.all([random(old, 5), random(next, 9)]);
    expect(answers.map((a) => a.length)).toEqual([5, 9]);
    await client.close();
  });

  it('lends the TPM: its connection is dropped meanwhile, and taken up again after', async () => {
    await withClient(async (client) => {
      await client.execute(TPM_CC.GetRandom, new TPM2_GetRandom_REQUEST(8), GetRandomResponse);
      // swtpm serves one connection at a time: a borrower's commands get through only once the lender let go.
      const borrowed = await client.lend(async (signal) => {
        expect(signal.aborted).toBe(false);
        return withClient((other) => other.execute(TPM_CC.GetRandom, new TPM2_GetRandom_REQUEST(4), GetRandomResponse));
      });
      expect(borrowed.randomBytes).toHaveLength(4);
      expect((await client.execute(TPM_CC.GetRandom, new TPM2_GetRandom_REQUEST(8), GetRandomResponse)).randomBytes).toHaveLength(8);
    });
  });

  it('asks the borrower to give the TPM back when it closes', async () => {
    const client = clientFor(swtpm.transport);
    let lent: AbortSignal | undefined;
    const lending = client.lend((signal) => {
      lent = signal;
      return new Promise<string>((resolve) => signal.addEventListener('abort', () => resolve('given back')));
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(lent?.aborted).toBe(false);
    await client.close();
    expect(await lending).toBe('given back');
    // A lease that ended by itself is not aborted by a later close.
    const other = clientFor(swtpm.transport);
    let ended: AbortSignal | undefined;
    await other.lend((signal) => { ended = signal; return Promise.resolve(); });
    await other.close();
    expect(ended?.aborted).toBe(false);
  });
});

describe('the TPM\'s facts and report on a real TPM', () => {
  it('reads swtpm\'s manufacturer, vendor string, firmware and spec level', async () => {
    const facts = await withClient(readTpmFacts);
    expect(facts).toEqual({
      manufacturer: 'IBM', manufacturerName: 'IBM', vendorString: 'SW   TPM', firmwareVersion: expect.stringMatching(/^\d+\.\d+\.\d+\.\d+$/) as unknown,
      specLevel: '2.0, level 0, revision 1.64 (2021)', family: '2.0', revision: '1.64',
    });
  });

  it('reports the keys and facts of a provisioned TPM', async () => {
    await withClient(async (client) => {
      const identity = await ensureIdentity(client);
      const report = await readTpmReport(client, swtpm.transport);
      expect(report).toEqual({
        transport: swtpm.transport,
        endorsementKey: { ok: true, value: identity.endorsementKey.toString('base64') },
        storageRootKey: { ok: true, value: identity.storageRootKey.toString('base64') },
        identityKey: { ok: true, value: null },
        facts: { ok: true, value: await readTpmFacts(client) },
      });
    });
  });
});

describe('the swtpm transport bringing up a TPM that was just powered on', () => {
  /** A raw command to swtpm's control channel (port + 1); resolves with its answer. */
  function control(port: number, request: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: '127.0.0.1', port: port + 1 }, () => socket.write(request));
      socket.once('data', (answer) => { socket.destroy(); resolve(answer); });
      socket.once('error', reject);
    });
  }

  it.each([
    ['initialises it (CMD_INIT, TPM2_Startup) when it answers everything with TPM_RC_FAILURE', false],
    ['starts it (TPM2_Startup) when it answers TPM_RC_INITIALIZE, after a CMD_INIT', true],
  ])('%s, then sends the command', async (_what, initialised) => {
    const cold = await SwtpmInstance.start({ uninitialised: true });
    const transport = new SwtpmTransport(cold.host, cold.port, { commandTimeoutMs: 10_000 });
    try {
      if (initialised) expect((await control(cold.port, CMD_INIT)).toString('hex')).toBe('00000000');
      const response = await transport.transmit(GET_RANDOM_8);
      expect(response.subarray(0, 12).toString('hex')).toBe('80010000001400000000' + '0008');
    } finally {
      await transport.close();
      await cold.stop();
    }
  });

  it('fails plainly when swtpm is gone', async () => {
    const gone = await SwtpmInstance.start();
    const transport = new SwtpmTransport(gone.host, gone.port, { commandTimeoutMs: 10_000 });
    await gone.stop();
    await expect(transport.transmit(GET_RANDOM_8)).rejects.toBeInstanceOf(TpmUnavailableError);
    await transport.close();
  });
});
