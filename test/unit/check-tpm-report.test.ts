import { describe, expect, it } from 'vitest';
import { checkTpm, describeReport } from '../../agent/check/tpm-check.js';
import type { TpmReport } from '../../agent/tpm/tpm-report.js';

// A TPM2B_PUBLIC: its registration id is base32(SHA-256(bytes)).
const EK = Buffer.from('0006000b00000000', 'hex').toString('base64');
const facts = { ok: true as const, value: { manufacturer: 'IBM', manufacturerName: 'IBM', vendorString: 'SW TPM', firmwareVersion: '1.2.3.4', specLevel: '2.0', family: '2.0', revision: '1.64' } };
const report = (overrides: Partial<TpmReport> = {}): TpmReport => ({
  transport: 'swtpm:host=127.0.0.1,port=2321',
  endorsementKey: { ok: true, value: EK },
  storageRootKey: { ok: true, value: EK },
  identityKey: { ok: true, value: { type: 'KEYEDHASH' } },
  facts,
  ...overrides,
});

describe('the TPM check from a TPM report', () => {
  it('passes both checks on a provisioned TPM, naming the registration id from the EK', () => {
    const [tpm, identity] = describeReport('swtpm:host=127.0.0.1,port=2321', report(), undefined);
    expect(tpm).toMatchObject({ status: 'pass', message: expect.stringMatching(/^TPM reachable \(swtpm:host=127\.0\.0\.1,port=2321\): EK present at 0x81010001, registration id [a-z2-7]{52}$/) });
    expect(identity).toEqual({ id: 'identity', status: 'pass', message: 'identity key present at 0x81000100' });
  });

  it('warns about an empty EK handle and a missing or foreign identity key', () => {
    expect(describeReport('t', report({ endorsementKey: { ok: true, value: null } }), undefined)[0]).toMatchObject({ status: 'warn', message: 'TPM reachable (t), but no EK at 0x81010001' });
    expect(describeReport('t', report({ identityKey: { ok: true, value: null } }), 'board-1')).toMatchObject([
      { status: 'pass', message: expect.stringContaining('registration id board-1 (configured)') },
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
      read: async () => ({ report: report(), via: { daemonPid: 4242 } }),
    });
    expect(via[0].message).toMatch(/^TPM reachable \(swtpm:host=127\.0\.0\.1,port=2321, via the running daemon, pid 4242\): EK present/);
    const broken = await checkTpm({
      transport: 'swtpm:host=127.0.0.1,port=2321', origin: 'tpm.transport', commandTimeoutMs: 1000, registrationId: undefined, runtimeDir: '/nonexistent',
      read: async () => { throw new Error('the daemon refused tpm: the TPM is not open (starting)'); },
    });
    expect(broken).toMatchObject([
      { status: 'fail', message: 'TPM unreachable (swtpm:host=127.0.0.1,port=2321, via the running daemon): the daemon refused tpm: the TPM is not open (starting)' },
      { status: 'fail', message: 'not checked: the TPM could not be read (see tpm)' },
    ]);
  });
});
