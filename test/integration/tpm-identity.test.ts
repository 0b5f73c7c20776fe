import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { TpmSecurityClient } from 'azure-iot-security-tpm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EK_HANDLE, ensureIdentity, SRK_HANDLE } from '../../agent/tpm/identity.js';
import { readTpmFacts } from '../../agent/tpm/tpm-facts.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { clientFor } from '../support/tpm.js';

const run = promisify(execFile);

async function identityOf(transport: string) {
  const client = clientFor(transport);
  try {
    return await ensureIdentity(client);
  } finally {
    await client.close();
  }
}

describe('device identity on a real swtpm', () => {
  let swtpm: SwtpmInstance;
  beforeAll(async () => { swtpm = await SwtpmInstance.start(); });
  afterAll(async () => { await swtpm?.stop(); });

  it('creates and persists EK and SRK on a fresh TPM, and only then', async () => {
    const first = await identityOf(swtpm.transport);
    expect(first.created).toEqual(['EK', 'SRK']);
    expect(first.identityKeyPresent).toBe(false);
    expect(first.registrationId).toMatch(/^[a-z2-7]{52}$/);
    const again = await identityOf(swtpm.transport);
    expect(again.created).toEqual([]);
    expect(again.endorsementKey.equals(first.endorsementKey)).toBe(true);
    expect(again.storageRootKey.equals(first.storageRootKey)).toBe(true);
  });

  it('keeps the same EK and registration id after swtpm restarts on the same state', async () => {
    const before = await identityOf(swtpm.transport);
    await swtpm.restart();
    const after = await identityOf(swtpm.transport);
    expect(after.created).toEqual([]);
    expect(after.endorsementKey.equals(before.endorsementKey)).toBe(true);
    expect(after.registrationId).toBe(before.registrationId);
  });

  it('gives a different EK for a new state directory (a new TPM)', async () => {
    const other = await SwtpmInstance.start();
    try {
      const mine = await identityOf(swtpm.transport);
      const theirs = await identityOf(other.transport);
      expect(theirs.endorsementKey.equals(mine.endorsementKey)).toBe(false);
      expect(theirs.registrationId).not.toBe(mine.registrationId);
    } finally {
      await other.stop();
    }
  });

  it("derives the same registration id as the Azure SDK's TpmSecurityClient", async () => {
    const mine = await identityOf(swtpm.transport);
    const client = clientFor(swtpm.transport);
    try {
      const sdk = new TpmSecurityClient(undefined, client.sdkTpm());
      const sdkId = await new Promise<string>((resolve, reject) =>
        sdk.getRegistrationId((err?: Error, id?: string) => (err ? reject(err) : resolve(id!))));
      const sdkEk = await new Promise<Buffer>((resolve, reject) =>
        sdk.getEndorsementKey((err?: Error, ek?: Buffer) => (err ? reject(err) : resolve(ek!))));
      expect(sdkId).toBe(mine.registrationId);
      expect(sdkEk.equals(mine.endorsementKey)).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('serves the SDK and the agent at the same time without mixing up their responses', async () => {
    const client = clientFor(swtpm.transport);
    try {
      const sdk = new TpmSecurityClient(undefined, client.sdkTpm());
      const sdkEks = Array.from({ length: 5 }, () => new Promise<Buffer>((resolve, reject) =>
        sdk.getEndorsementKey((err?: Error, ek?: Buffer) => (err ? reject(err) : resolve(ek!)))));
      const facts = Array.from({ length: 5 }, () => readTpmFacts(client));
      const identities = Array.from({ length: 5 }, () => ensureIdentity(client));
      const [eks, allFacts, ids] = await Promise.all([Promise.all(sdkEks), Promise.all(facts), Promise.all(identities)]);
      for (const ek of eks) expect(ek.equals(ids[0]!.endorsementKey)).toBe(true);
      for (const f of allFacts) expect(f.manufacturer).toBe('IBM');
      for (const id of ids) expect(id.registrationId).toBe(ids[0]!.registrationId);
    } finally {
      await client.close();
    }
  });

  it('reads byte-identical EK and SRK publics with tpm2-tools, an independent implementation', async () => {
    const mine = await identityOf(swtpm.transport); // closes its connection: swtpm serves one at a time
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-readpublic-'));
    try {
      const tcti = `swtpm:host=${swtpm.host},port=${swtpm.port}`;
      for (const [handle, expected] of [[EK_HANDLE, mine.endorsementKey], [SRK_HANDLE, mine.storageRootKey]] as const) {
        const out = path.join(dir, `${handle.toString(16)}.pub`);
        await run('tpm2_readpublic', ['-T', tcti, '-c', `0x${handle.toString(16)}`, '-o', out]).catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT') throw new Error('tpm2_readpublic is not installed: run scripts/setup.sh (Debian package tpm2-tools)');
          throw err;
        });
        expect(readFileSync(out).equals(expected)).toBe(true);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads manufacturer, firmware and spec level', async () => {
    const client = clientFor(swtpm.transport);
    try {
      const facts = await readTpmFacts(client);
      expect(facts.manufacturer).toBe('IBM');
      expect(facts.manufacturerName).toBe('IBM');
      expect(facts.family).toBe('2.0');
      expect(facts.specLevel).toMatch(/^2\.0, level \d+, revision \d\.\d\d \(\d{4}\)$/);
      expect(facts.firmwareVersion).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    } finally {
      await client.close();
    }
  });
});
