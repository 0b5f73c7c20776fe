import { createHmac, randomBytes } from 'node:crypto';
import { TpmSecurityClient } from 'azure-iot-security-tpm';
import {
  Endorsement, NullPwSession, NullSymDef, Session, TPM2B_ENCRYPTED_SECRET, TPM_ALG_ID, TPM_HANDLE, TPM_SE, TPMS_ID_OBJECT, TpmBuffer,
  type StartAuthSessionResponse,
} from 'tss.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildActivationBlob } from '../cloud/dps/activation-blob.js';
import { SoftwareTpm } from '../cloud/dps/software-tpm.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { clientFor } from '../support/tpm.js';
import { EK_HANDLE, SRK_HANDLE } from '../../agent/tpm/identity.js';
import type { TpmClient } from '../../agent/tpm/tpm-client.js';

/** The decisive proof of the blob: a real TPM (swtpm, libtpms) imports it through the unmodified Azure SDK. */
describe('activation blob in a real TPM', () => {
  let swtpm: SwtpmInstance;
  let client: TpmClient;
  let security: TpmSecurityClient;

  beforeAll(async () => {
    swtpm = await SwtpmInstance.start();
    client = clientFor(swtpm.transport);
    security = new TpmSecurityClient(undefined, client.sdkTpm());
  });

  afterAll(async () => {
    await client?.close();
    await swtpm?.stop();
  });

  const call = <T>(fn: (cb: (err?: Error | null, value?: T) => void) => void): Promise<T> =>
    new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))));

  it('activates through TpmSecurityClient, and the TPM then signs with the key the cloud chose', async () => {
    const ek = await call<Buffer>((cb) => security.getEndorsementKey(cb));
    const srk = await call<Buffer>((cb) => security.getStorageRootKey(cb));
    const key = randomBytes(32);
    await call((cb) => security.activateIdentityKey(buildActivationBlob(ek, srk, key), cb));
    const data = Buffer.from('0ne00000001/registrations/device-1\n1893456000');
    const signature = await call<Buffer>((cb) => security.signWithIdentity(data, cb));
    expect(Buffer.from(signature)).toEqual(createHmac('sha256', key).update(data).digest());
  });

  it('replaces the identity key on a second activation, as re-provisioning does', async () => {
    const ek = await call<Buffer>((cb) => security.getEndorsementKey(cb));
    const srk = await call<Buffer>((cb) => security.getStorageRootKey(cb));
    const key = randomBytes(32);
    await call((cb) => security.activateIdentityKey(buildActivationBlob(ek, srk, key), cb));
    const data = Buffer.from('second');
    expect(Buffer.from(await call<Buffer>((cb) => security.signWithIdentity(data, cb)))).toEqual(createHmac('sha256', key).update(data).digest());
  });

  // Driven through tss.js rather than the SDK: on a failed ActivateCredential the SDK's own
  // debug line reads `innerWrapKey.length` of undefined and throws from a setImmediate, so
  // its callback never runs and the process gets an uncaught TypeError (SDK 1.9.x).
  it('refuses a blob made for a different EK: the TPM fails ActivateCredential', async () => {
    const srk = await call<Buffer>((cb) => security.getStorageRootKey(cb));
    const stranger = SoftwareTpm.create();
    const blob = buildActivationBlob(stranger.endorsementKey, srk, randomBytes(32));
    await expect(activateCredential(client, blob)).rejects.toThrow(/TPM2_ActivateCredential failed/);
  });
});

/** The first step of the SDK's activation (EK policy session, then ActivateCredential), without the SDK. */
async function activateCredential(client: TpmClient, blob: Buffer): Promise<Buffer> {
  const buf = new TpmBuffer(blob);
  const credential = buf.createSizedObj(TPMS_ID_OBJECT);
  const secret = buf.createObj(TPM2B_ENCRYPTED_SECRET);
  const nonce = await client.run<Buffer>('GetRandom', (tpm, done) => tpm.GetRandom(32, done));
  const session = await client.run<StartAuthSessionResponse>('StartAuthSession', (tpm, done) =>
    tpm.StartAuthSession(new TPM_HANDLE(), new TPM_HANDLE(), nonce, Buffer.alloc(0), TPM_SE.POLICY, NullSymDef, TPM_ALG_ID.SHA256, done));
  try {
    await client.run('PolicySecret', (tpm, done) => tpm.PolicySecret(Endorsement, session.handle, Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0), 0, done));
    return await client.run<Buffer>('ActivateCredential', (tpm, done) =>
      tpm.withSessions(NullPwSession, new Session(session.handle, session.nonceTPM)).ActivateCredential(new TPM_HANDLE(SRK_HANDLE), new TPM_HANDLE(EK_HANDLE), credential, secret.secret, done));
  } finally {
    await client.run('FlushContext', (tpm, done) => tpm.FlushContext(session.handle, done)).catch(() => undefined);
  }
}
