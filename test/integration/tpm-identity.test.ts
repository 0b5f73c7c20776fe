import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureIdentity } from '../../agent/tpm/identity.js';
import { readTpmFacts } from '../../agent/tpm/tpm-facts.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { clientFor } from '../support/tpm.js';

describe('device identity on a real swtpm', () => {
  let swtpm: SwtpmInstance;
  beforeAll(async () => { swtpm = await SwtpmInstance.start(); });
  afterAll(async () => { await swtpm?.stop(); });

  it('creates and persists EK and SRK on a fresh TPM', async () => {
    const client = clientFor(swtpm.transport);
    try {
      const identity = await ensureIdentity(client);
      expect(identity.created).toEqual(['EK', 'SRK']);
      expect(identity.identityKeyPresent).toBe(false);
      expect(identity.registrationId).toMatch(/^[a-z2-7]{52}$/);
      const again = await ensureIdentity(client);
      expect(again.created).toEqual([]);
      expect(again.endorsementKey.equals(identity.endorsementKey)).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('reads manufacturer, firmware and spec level', async () => {
    const client = clientFor(swtpm.transport);
    try {
      const facts = await readTpmFacts(client);
      expect(facts.manufacturer).toBe('IBM');
      expect(facts.family).toBe('2.0');
      expect(facts.firmwareVersion).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    } finally {
      await client.close();
    }
  });
});
