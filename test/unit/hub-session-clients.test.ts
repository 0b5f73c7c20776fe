import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { useIdentityKeyHandle } from '../../agent/azure-sdk/identity-key-handle.js';
import { IDENTITY_KEY_SLOTS } from '../../agent/tpm/key-slots.js';
import { sessionFor, endBench, endTest } from './hub-session-bench.js';

afterEach(endTest);
afterAll(endBench);

describe('the token', () => {
  it('renews its token before the hub ends the connection at the token\'s expiry, and reports nothing lost', async () => {
    const { hub, session, lost } = await sessionFor({ tokenLifetimeSeconds: 4, tokenRenewalMarginSeconds: 2 });
    const connects = hub.counters.connects;
    await session.connect();
    await new Promise((r) => setTimeout(r, 5_000));
    expect(lost).toEqual([]);
    expect(session.connected).toBe(true);
    expect(hub.counters.connects).toBeGreaterThanOrEqual(connects + 2);
  });

  it('reports the connection lost, once, when its token cannot be renewed', async () => {
    const { hub, session, deviceId, lost, lines } = await sessionFor({ tokenLifetimeSeconds: 4, tokenRenewalMarginSeconds: 2 });
    await session.connect();
    // The SDK signs each renewal with the key it is pointed at when renewing: here an empty slot of this TPM.
    useIdentityKeyHandle(IDENTITY_KEY_SLOTS[1]);
    try {
      await expect.poll(() => lost.length, { timeout: 15_000 }).toBe(1);
    } finally {
      useIdentityKeyHandle(IDENTITY_KEY_SLOTS[0]);
    }
    expect(session.connected).toBe(false);
    expect(session.deviceClient).toBeUndefined();
    expect(lines.filter((l) => l.startsWith('level=warn event=hub.token_renewal_failed '))).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith(`level=warn event=hub.disconnected hub=${hub.hostName} `))).toHaveLength(1);
    await expect.poll(() => hub.core.broker.isOnline(deviceId), { timeout: 10_000 }).toBe(false);
  });
});
