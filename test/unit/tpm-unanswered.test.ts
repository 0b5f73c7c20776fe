import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../agent/lib/errors.js';
import { ensureIdentity } from '../../agent/tpm/identity.js';
import { base32Lower } from '../../agent/tpm/registration-id.js';
import { TpmClient, TpmCommandError } from '../../agent/tpm/tpm-client.js';
import { readTpmFacts } from '../../agent/tpm/tpm-facts.js';
import { readTpmReport, reportRegistrationId, type TpmReport } from '../../agent/tpm/tpm-report.js';
import { openTransport } from '../../agent/tpm/open-transport.js';
import { TpmUnavailableError } from '../../agent/tpm/transport.js';
import { TPM_HANDLE } from '../../agent/tpm/tss-lib.js';
import { freePort } from '../support/ports.js';
import { stringMatching } from '../support/matchers.js';

/**
 * The TPM layer when the TPM does not answer: a swtpm transport to a loopback port nothing
 * listens on, as on a board whose simulator is not started. (Everything a TPM answers is
 * proved against swtpm in the integration tests.)
 */
async function unanswered(): Promise<{ client: TpmClient; port: number }> {
  const port = await freePort();
  return { client: new TpmClient(openTransport({ kind: 'swtpm', host: '127.0.0.1', port }, { commandTimeoutMs: 2_000 })), port };
}

const HINT = 'nothing listens there: start the TPM simulator (scripts/swtpm.sh start) or fix the port';

describe('a TPM client whose TPM does not answer', () => {
  it('fails each command with the transport\'s error: the command, where, why and what to do', async () => {
    const { client, port } = await unanswered();
    const err = await client.run<void>('GetRandom', (tpm, done) => tpm.GetRandom(8, done as never)).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(TpmUnavailableError);
    expect(err).toMatchObject({ message: `swtpm 127.0.0.1:${port}: TPM2_GetRandom failed`, hint: HINT, exitCode: ExitCode.tpmUnavailable });
    await client.close();
  });

  it('refuses commands once closed', async () => {
    const { client, port } = await unanswered();
    await client.close();
    await expect(client.readPublic(new TPM_HANDLE(0x81010001))).rejects.toThrow(`swtpm 127.0.0.1:${port}: transport is closed`);
  });

  it('cannot establish the identity, and says the TPM is unavailable', async () => {
    const { client } = await unanswered();
    await expect(ensureIdentity(client)).rejects.toBeInstanceOf(TpmUnavailableError);
    await expect(readTpmFacts(client)).rejects.toBeInstanceOf(TpmUnavailableError);
    await client.close();
  });

  it('reports the first read\'s failure with its hint, and does not wait out the others', async () => {
    const { client, port } = await unanswered();
    const started = Date.now();
    const report = await readTpmReport(client, `swtpm:host=127.0.0.1,port=${port}`);
    const skipped = { ok: false, error: 'not read: the TPM did not answer (see the endorsement key)', refused: false };
    expect(report).toEqual({
      transport: `swtpm:host=127.0.0.1,port=${port}`,
      endorsementKey: { ok: false, error: stringMatching(new RegExp(`^swtpm 127\\.0\\.0\\.1:${port}: TPM2_ReadPublic failed: .*ECONNREFUSED`)), refused: false, hint: HINT },
      storageRootKey: skipped, identityKey: skipped, facts: skipped,
    });
    expect(Date.now() - started).toBeLessThan(2_000);
    await client.close();
  });
});

describe('TPM command errors', () => {
  it('name the command, the transport and the response code in words', () => {
    const err = new TpmCommandError('ReadPublic', 0x18b, 'TPM device /dev/tpmrm0');
    expect(err.message).toBe('TPM2_ReadPublic failed on TPM device /dev/tpmrm0: TPM_RC_HANDLE (0x18b): the handle is not correct for the use (for a persistent handle: nothing is stored there) (handle 1)');
    expect(err).toMatchObject({ command: 'ReadPublic', responseCode: 0x18b, exitCode: ExitCode.failure, name: 'TpmCommandError' });
  });
});

describe('the registration id of a TPM report', () => {
  function report(endorsementKey: TpmReport['endorsementKey']): TpmReport {
    const skipped = { ok: false as const, error: 'not read', refused: false };
    return { transport: 't', endorsementKey, storageRootKey: skipped, identityKey: skipped, facts: skipped };
  }

  it('is the configured one when there is one', () => {
    expect(reportRegistrationId(report({ ok: true, value: 'AAAA' }), 'board-7')).toBe('board-7');
  });

  it('is derived from the EK read, as the Azure SDK derives it', () => {
    const ek = Buffer.from('0006000b00000000', 'hex');
    expect(reportRegistrationId(report({ ok: true, value: ek.toString('base64') }), undefined))
      .toBe(base32Lower(createHash('sha256').update(ek).digest()));
  });

  it('is unknown without an EK', () => {
    expect(reportRegistrationId(report({ ok: true, value: null }), undefined)).toBeUndefined();
    expect(reportRegistrationId(report({ ok: false, error: 'no answer', refused: false }), undefined)).toBeUndefined();
  });
});
