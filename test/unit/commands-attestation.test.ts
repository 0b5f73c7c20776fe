import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { AttestationAccess, CommandContext } from '../../agent/commands/command.js';
import { CommandRegistry } from '../../agent/commands/registry.js';
import { Logger } from '../../agent/log/logger.js';
import { TpmCommandError } from '../../agent/tpm/tpm-client.js';
import { stringMatching } from '../support/matchers.js';

/** The attestation commands' argument checks and answers, with the TPM side recorded (the real one: test/integration/attestation-*). */
function registry(attestation: Partial<AttestationAccess> = {}) {
  const calls: unknown[][] = [];
  const context = {
    log: new Logger({ write: () => undefined }),
    attestation: {
      key: () => Promise.resolve({ akPublic: 'AAAA', akName: '000b', handle: '0x81010100', created: true }),
      activate: (...args: unknown[]) => { calls.push(['activate', ...args]); return Promise.resolve(Buffer.from('secret')); },
      quote: (...args: unknown[]) => { calls.push(['quote', ...args]); return Promise.resolve({ quote: 'q', signature: 's', pcrs: {}, eventLog: null, akName: '000b' }); },
      ...attestation,
    },
  } as unknown as CommandContext;
  return { registry: new CommandRegistry(context), calls };
}

const nonce = randomBytes(32).toString('base64');

describe('the attestation commands', () => {
  it('attest passes the nonce bytes and the parsed PCR list to the TPM side', async () => {
    const { registry: r, calls } = registry();
    expect((await r.dispatch('attest', { nonce, pcrs: '13,0-7' }, { via: 'method' })).status).toBe(200);
    expect((await r.dispatch('attest', { nonce }, { via: 'method' })).status).toBe(200);
    expect(calls).toEqual([['quote', Buffer.from(nonce, 'base64'), [0, 1, 2, 3, 4, 5, 6, 7, 13]], ['quote', Buffer.from(nonce, 'base64'), undefined]]);
  });

  it.each([
    ['no nonce', {}, 'nonce'],
    ['a nonce of 8 bytes', { nonce: randomBytes(8).toString('base64') }, 'nonce'],
    ['a nonce of 80 bytes', { nonce: randomBytes(80).toString('base64') }, 'nonce'],
    ['a nonce that is not base64', { nonce: '!'.repeat(44) }, 'nonce'],
    ['a nonce as a number', { nonce: 12345 }, 'nonce'],
    ['PCRs as a list', { nonce, pcrs: [0, 13] }, 'pcrs'],
    ['PCRs with letters', { nonce, pcrs: 'all' }, 'pcrs'],
    ['an unknown argument', { nonce, verdict: 'pass' }, 'verdict'],
  ])('attest refuses %s with 400 naming the field', async (_what, args, field) => {
    const reply = await registry().registry.dispatch('attest', args, { via: 'method' });
    expect(reply).toMatchObject({ status: 400, payload: { field } });
  });

  it('attest refuses a PCR out of range with 400 and the reason', async () => {
    const reply = await registry().registry.dispatch('attest', { nonce, pcrs: '0-24' }, { via: 'method' });
    expect(reply).toEqual({ status: 400, payload: { message: 'invalid arguments for attest: pcrs: PCR range 0-24 is not within 0-23' } });
  });

  it('activateAttestationKey passes the decoded credential and answers the secret in base64', async () => {
    const { registry: r, calls } = registry();
    const reply = await r.dispatch('activateAttestationKey', { credentialBlob: 'AAEC', encryptedSecret: 'AwQF' }, { via: 'method' });
    expect(reply).toEqual({ status: 200, payload: { secret: Buffer.from('secret').toString('base64') } });
    expect(calls).toEqual([['activate', Buffer.from([0, 1, 2]), Buffer.from([3, 4, 5])]]);
  });

  it.each([
    ['nothing', {}],
    ['a blob that is not base64', { credentialBlob: 'a b', encryptedSecret: 'AwQF' }],
    ['an oversized secret', { credentialBlob: 'AAEC', encryptedSecret: 'A'.repeat(2052) }],
    ['numbers', { credentialBlob: 1, encryptedSecret: 2 }],
  ])('activateAttestationKey refuses %s with 400', async (_what, args) => {
    expect((await registry().registry.dispatch('activateAttestationKey', args, { via: 'method' })).status).toBe(400);
  });

  it('activateAttestationKey answers a credential the TPM refuses with 400, and any other failure with 500', async () => {
    const refused = registry({ activate: () => Promise.reject(new TpmCommandError('ActivateCredential', 0x1df, 'swtpm')) });
    expect(await refused.registry.dispatch('activateAttestationKey', { credentialBlob: 'AAEC', encryptedSecret: 'AwQF' }, { via: 'method' }))
      .toMatchObject({ status: 400, payload: { message: stringMatching(/^the TPM refused the credential: TPM2_ActivateCredential failed on swtpm: TPM_RC_INTEGRITY/) } });
    const broken = registry({ activate: () => Promise.reject(new Error('transport closed')) });
    expect((await broken.registry.dispatch('activateAttestationKey', { credentialBlob: 'AAEC', encryptedSecret: 'AwQF' }, { via: 'method' })).status).toBe(500);
  });

  it.each([
    ['whole groups of four', 'AAECAwQF', [0, 1, 2, 3, 4, 5]],
    ['one padding character', 'AAECAwQ=', [0, 1, 2, 3, 4]],
    ['two padding characters', 'AAECAw==', [0, 1, 2, 3]],
    ['padding alone at the end of a short one', 'AA==', [0]],
  ])('activateAttestationKey takes base64 with %s', async (_what, credentialBlob, bytes) => {
    const { registry: r, calls } = registry();
    expect((await r.dispatch('activateAttestationKey', { credentialBlob, encryptedSecret: credentialBlob }, { via: 'method' })).status).toBe(200);
    expect(calls).toEqual([['activate', Buffer.from(bytes), Buffer.from(bytes)]]);
  });

  it.each([
    ['a length that is not a whole group', 'AAE'],
    ['one character and two padding characters', 'AAECA=='],
    ['padding that is not at the end', 'AA==AAEC'],
    ['a character outside base64 before the padding', 'AAEC*w=='],
    ['characters outside base64 before one padding character', 'AAEC*-.='],
  ])('activateAttestationKey refuses %s, naming what it expected of each field', async (_what, bad) => {
    const { registry: r, calls } = registry();
    expect(await r.dispatch('activateAttestationKey', { credentialBlob: bad, encryptedSecret: 'AwQF' }, { via: 'method' })).toEqual({
      status: 400, payload: { message: 'invalid arguments for activateAttestationKey: credentialBlob: expected base64 of a TPM2B_ID_OBJECT', field: 'credentialBlob', reason: 'expected base64 of a TPM2B_ID_OBJECT' },
    });
    expect(await r.dispatch('activateAttestationKey', { credentialBlob: 'AwQF', encryptedSecret: bad }, { via: 'method' })).toMatchObject({
      status: 400, payload: { field: 'encryptedSecret', reason: 'expected base64 of a TPM2B_ENCRYPTED_SECRET' },
    });
    expect(calls).toEqual([]);
  });

  it('attest names what it expected of the nonce and the PCR list', async () => {
    const { registry: r, calls } = registry();
    expect(await r.dispatch('attest', { nonce: 'not base64 at all, but long enough' }, { via: 'method' })).toEqual({
      status: 400, payload: { message: 'invalid arguments for attest: nonce: expected base64 of 16 to 66 random bytes', field: 'nonce', reason: 'expected base64 of 16 to 66 random bytes' },
    });
    expect(await r.dispatch('attest', { nonce, pcrs: 'x0-7' }, { via: 'method' })).toEqual({
      status: 400, payload: { message: 'invalid arguments for attest: pcrs: expected a PCR list such as 0-7,13', field: 'pcrs', reason: 'expected a PCR list such as 0-7,13' },
    });
    expect(await r.dispatch('attest', { nonce, pcrs: '0-7;' }, { via: 'method' })).toMatchObject({ status: 400, payload: { field: 'pcrs', reason: 'expected a PCR list such as 0-7,13' } });
    expect(calls).toEqual([]);
  });

  it.each([
    ['a character outside base64 before a valid nonce', `!${randomBytes(18).toString('base64')}`],
    ['a length that is not a whole group of four', 'A'.repeat(25)],
  ])('attest refuses a nonce with %s', async (_what, bad) => {
    const { registry: r, calls } = registry();
    expect(await r.dispatch('attest', { nonce: bad }, { via: 'method' })).toMatchObject({ status: 400, payload: { field: 'nonce' } });
    expect(calls).toEqual([]);
  });

  it('attestationKey takes no arguments', async () => {
    const { registry: r } = registry();
    expect(await r.dispatch('attestationKey', null, { via: 'method' })).toMatchObject({ status: 200, payload: { handle: '0x81010100' } });
    expect(await r.dispatch('attestationKey', { create: true }, { via: 'method' })).toMatchObject({ status: 400, payload: { field: 'create' } });
  });
});
