import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkTpm, describeEndorsementKey, describeIdentityKey, describeReport, describeTpmError } from '../../agent/check/tpm-check.js';
import { registrationIdFromEndorsementKey } from '../../agent/tpm/registration-id.js';
import type { TpmReport } from '../../agent/tpm/tpm-report.js';
import { freePort } from '../support/ports.js';
import { stringContaining, stringMatching } from '../support/matchers.js';

/** A TPM2B_PUBLIC, base64: its registration id is base32(SHA-256(bytes)). */
const ekBase64 = () => Buffer.from('0006000b00000000', 'hex').toString('base64');
const facts = { ok: true as const, value: { manufacturer: 'IBM', manufacturerName: 'IBM', vendorString: 'SW TPM', firmwareVersion: '1.2.3.4', specLevel: '2.0', family: '2.0', revision: '1.64' } };
const report = (overrides: Partial<TpmReport> = {}): TpmReport => ({
  transport: 'swtpm:host=127.0.0.1,port=2321',
  endorsementKey: { ok: true, value: ekBase64() },
  storageRootKey: { ok: true, value: ekBase64() },
  identityKey: { ok: true, value: { type: 'KEYEDHASH' } },
  facts,
  ...overrides,
});

describe('the TPM check from a TPM report', () => {
  it('passes both checks on a provisioned TPM, naming the registration id from the EK', () => {
    const [tpm, identity] = describeReport('swtpm:host=127.0.0.1,port=2321', report(), undefined);
    expect(tpm).toMatchObject({ status: 'pass', message: stringMatching(/^TPM reachable \(swtpm:host=127\.0\.0\.1,port=2321\): EK present at 0x81010001, registration id [a-z2-7]{52}$/) });
    expect(identity).toEqual({ id: 'identity', status: 'pass', message: 'identity key present at 0x81000100' });
  });

  it('warns about an empty EK handle and a missing or foreign identity key', () => {
    expect(describeReport('t', report({ endorsementKey: { ok: true, value: null } }), undefined)[0]).toMatchObject({ status: 'warn', message: 'TPM reachable (t), but no EK at 0x81010001' });
    expect(describeReport('t', report({ identityKey: { ok: true, value: null } }), 'board-1')).toMatchObject([
      { status: 'pass', message: stringContaining('registration id board-1 (configured)') },
      { status: 'warn', message: 'no identity key at 0x81000100: not provisioned yet' },
    ]);
    expect(describeReport('t', report({ identityKey: { ok: true, value: { type: 'RSA' } } }), undefined)[1])
      .toMatchObject({ status: 'warn', message: 'the key at 0x81000100 is not an HMAC key (RSA): not one DPS issued' });
  });

  it('tells a TPM that refused from one that did not answer, and does not check the identity key then', () => {
    const [refused, notChecked] = describeReport('t', report({ endorsementKey: { ok: false, error: 'TPM_RC_LOCKOUT', refused: true } }), undefined);
    expect(refused).toMatchObject({ status: 'fail', message: 'TPM at t answers but refused to read 0x81010001: TPM_RC_LOCKOUT' });
    expect(notChecked).toMatchObject({ status: 'fail', message: 'not checked: the TPM could not be read (see tpm)' });
    const [silent] = describeReport('t', report({ endorsementKey: { ok: false, error: 'no answer within 4000 ms', refused: false, hint: 'is it on?' } }), undefined, 'IOT_AGENT_TPM');
    expect(silent).toMatchObject({ status: 'fail', message: 'TPM unreachable (t): no answer within 4000 ms', hint: 'is it on?' });
  });

  it('says when the running daemon read the TPM, and fails plainly when the daemon could not', async () => {
    const via = await checkTpm({
      transport: 'swtpm:host=127.0.0.1,port=2321', origin: 'tpm.transport', commandTimeoutMs: 1000, registrationId: undefined, runtimeDir: '/nonexistent',
      read: () => Promise.resolve({ report: report(), via: { daemonPid: 4242 } }),
    });
    expect(via[0].message).toMatch(/^TPM reachable \(swtpm:host=127\.0\.0\.1,port=2321, via the running daemon, pid 4242\): EK present/);
    const broken = await checkTpm({
      transport: 'swtpm:host=127.0.0.1,port=2321', origin: 'tpm.transport', commandTimeoutMs: 1000, registrationId: undefined, runtimeDir: '/nonexistent',
      read: () => Promise.reject(new Error('the daemon refused tpm: the TPM is not open (starting)')),
    });
    expect(broken).toMatchObject([
      { status: 'fail', message: 'TPM unreachable (swtpm:host=127.0.0.1,port=2321, via the running daemon): the daemon refused tpm: the TPM is not open (starting)' },
      { status: 'fail', message: 'not checked: the TPM could not be read (see tpm)' },
    ]);
  });
});

describe('the TPM check: transports and failures', () => {
  const options = (transport: string, origin: 'tpm.transport' | 'IOT_AGENT_TPM' = 'tpm.transport') => ({
    transport, origin, commandTimeoutMs: 1_000, registrationId: undefined, runtimeDir: mkdtempSync(path.join(tmpdir(), 'iot-agent-check-tpm-')),
  });

  it('fails an invalid transport, naming where it came from, and does not check the identity key', async () => {
    const [tpm, identity] = await checkTpm(options('tpm0', 'IOT_AGENT_TPM'));
    expect(tpm).toMatchObject({ id: 'tpm', status: 'fail', message: stringMatching(/^invalid TPM transport "tpm0".* \(from IOT_AGENT_TPM\)$/), hint: stringContaining('swtpm:') });
    expect(identity).toEqual({ id: 'identity', status: 'fail', message: 'not checked: the TPM transport is invalid', hint: 'fix the tpm check first' });
  });

  it('reads the TPM itself when no daemon holds it, and fails a TPM that is not there', async () => {
    const port = await freePort();
    const [tpm, identity] = await checkTpm(options(`swtpm:port=${port}`));
    expect(tpm).toMatchObject({ id: 'tpm', status: 'fail', message: stringMatching(new RegExp(`^TPM unreachable \\(swtpm:host=127\\.0\\.0\\.1,port=${port}\\): `)) });
    expect(identity.message).toBe('not checked: the TPM could not be read (see tpm)');
  });

  it('names a transport from IOT_AGENT_TPM in the message, and not one from the config', async () => {
    const read = () => Promise.resolve({ report: report(), via: 'direct' as const });
    const fromEnv = await checkTpm({ ...options('swtpm:port=2400', 'IOT_AGENT_TPM'), read });
    expect(fromEnv[0].message).toMatch(/^TPM reachable \(swtpm:host=127\.0\.0\.1,port=2400 from IOT_AGENT_TPM\): /);
    const fromConfig = await checkTpm({ ...options('swtpm:port=2400'), read });
    expect(fromConfig[0].message).toMatch(/^TPM reachable \(swtpm:host=127\.0\.0\.1,port=2400\): /);
  });

  it('hints at the config\'s tpm.transport unless told the transport came from elsewhere', () => {
    const [silent] = describeReport('t', report({ endorsementKey: { ok: false, error: 'ECONNREFUSED', refused: false } }), undefined);
    expect(silent.hint).toBe('check tpm.transport in the config and that the TPM (or swtpm) runs');
  });

  it('sends to `iot-agent status` when the running daemon could not read its TPM', async () => {
    const [tpm] = await checkTpm({ ...options('swtpm:port=2321'), read: () => Promise.reject(new Error('busy')) });
    expect(tpm).toEqual({ id: 'tpm', status: 'fail', message: 'TPM unreachable (swtpm:host=127.0.0.1,port=2321, via the running daemon): busy',
      hint: 'the daemon could not read its TPM: `iot-agent status` shows why' });
  });

  it('hints at the place the transport came from when the TPM does not answer', () => {
    const failure = { error: 'ECONNREFUSED', refused: false };
    expect(describeTpmError('t', failure).hint).toBe('check tpm.transport in the config and that the TPM (or swtpm) runs');
    expect(describeTpmError('t', failure, 'IOT_AGENT_TPM').hint).toBe('check IOT_AGENT_TPM and that the TPM (or swtpm) runs');
    expect(describeTpmError('t', { error: 'TPM_RC_LOCKOUT', refused: true })).toEqual({
      id: 'tpm', status: 'fail', message: 'TPM at t answers but refused to read 0x81010001: TPM_RC_LOCKOUT', hint: 'the TPM may be in lockout or failure mode; `iot-agent tpm info` shows more',
    });
  });

  it('fails the identity check with the TPM\'s error when the identity key cannot be read', () => {
    const [tpm, identity] = describeReport('t', report({ identityKey: { ok: false, error: 'TPM_RC_HANDLE', refused: true, hint: 'the handle is damaged' } }), undefined);
    expect(tpm.status).toBe('pass');
    expect(identity).toEqual({ id: 'identity', status: 'fail', message: 'cannot read 0x81000100: TPM_RC_HANDLE', hint: 'the handle is damaged' });
  });

  it('gives the registration id derived from the EK, and what to do about a missing EK or identity key', () => {
    expect(describeEndorsementKey('t', Buffer.from('0006000b00000000', 'hex').toString('base64'), undefined).message)
      .toBe(`TPM reachable (t): EK present at 0x81010001, registration id ${registrationIdFromEndorsementKey(Buffer.from('0006000b00000000', 'hex'))}`);
    expect(describeEndorsementKey('t', null, undefined)).toEqual({ id: 'tpm', status: 'warn', message: 'TPM reachable (t), but no EK at 0x81010001',
      hint: 'run `iot-agent tpm info` (it creates and persists the EK and SRK) or provision the device' });
    expect(describeIdentityKey(null).hint).toBe('the agent provisions at its first start (needs provisioning.idScope and a DPS enrollment), or run `iot-agent provision`');
    expect(describeIdentityKey({ type: 'RSA' })).toEqual({ id: 'identity', status: 'warn', message: 'the key at 0x81000100 is not an HMAC key (RSA): not one DPS issued',
      hint: 'another program uses this handle; re-provisioning replaces the key' });
  });
});
