import { describe, expect, it } from 'vitest';
import { ChildMessageError } from '../../agent/child/child-message.js';
import type { RegisterRequest } from '../../agent/provisioning/child-protocol.js';
import { DpsError } from '../../agent/provisioning/dps-error.js';
import { serveRegistration } from '../../agent/provisioning/serve-registration.js';
import { ensureIdentity } from '../../agent/tpm/identity.js';
import { IDENTITY_KEY_SLOTS } from '../../agent/tpm/key-slots.js';
import { TPM_ALG_ID, TPM_HANDLE } from '../../agent/tpm/tss-lib.js';
import { ofType } from '../support/matchers.js';
import { clientFor } from '../support/tpm.js';
import { dpsBench, throughProxy, type DpsBench } from './dps-bench.js';

/**
 * The provisioning helper's work, run in this process against the local DPS and a real
 * swtpm: what it reports as progress, and what of its request it acts on.
 */

const TWO_HOURS_MS = 2 * 3_600_000;

async function register(bench: DpsBench, more: Partial<RegisterRequest> = {}) {
  const events: unknown[] = [];
  const request: RegisterRequest = { transport: bench.swtpm.transport, ...bench.target, ...more };
  const outcome = await serveRegistration(request, (event) => events.push(event)).catch((err: unknown) => err);
  return { outcome, events };
}

/** The TPM through a connection of the test's own, which works only once the helper has let go of its own. */
async function withTpm<T>(bench: DpsBench, use: (tpm: ReturnType<typeof clientFor>) => Promise<T>): Promise<T> {
  const tpm = clientFor(bench.swtpm.transport, { commandTimeoutMs: 10_000 });
  return use(tpm).finally(() => tpm.close());
}

describe('the provisioning helper\'s registration', () => {
  it('is assigned a hub, reporting each step and each of DPS\'s Date headers, and lets go of the TPM', async () => {
    const bench = await dpsBench();
    const { outcome, events } = await register(bench);
    const hub = bench.cloud.hubs[0]!.hostName;
    expect(outcome).toEqual({ assignedHub: hub, deviceId: bench.deviceId });
    const steps = events.filter((event) => Object.hasOwn(event as object, 'step'));
    expect(steps).toStrictEqual([{ step: 'challenge' }, { step: 'activated' }, { step: 'assigned', detail: `${hub} as ${bench.deviceId}` }]);
    const dates = events.filter((event) => Object.hasOwn(event as object, 'sentAt'));
    expect(dates.length).toBeGreaterThanOrEqual(3);
    for (const reading of dates) expect(reading).toStrictEqual({ date: ofType(String), sentAt: ofType(Number), receivedAt: ofType(Number) });
    expect(await withTpm(bench, async (tpm) => (await ensureIdentity(tpm)).identityKeyPresent)).toBe(true);
  }, 60_000);

  it('puts the hub key in the identity key slot it is given', async () => {
    const bench = await dpsBench();
    const { outcome } = await register(bench, { identityKeyHandle: IDENTITY_KEY_SLOTS[1] });
    expect(outcome).toMatchObject({ deviceId: bench.deviceId });
    const key = await withTpm(bench, (tpm) => tpm.readPublic(new TPM_HANDLE(IDENTITY_KEY_SLOTS[1])));
    expect(key.outPublic.type).toBe(TPM_ALG_ID.KEYEDHASH);
  }, 60_000);

  it('goes through the proxy it is given', async () => {
    const bench = await dpsBench();
    const { result, connects } = await throughProxy((url) => register(bench, { proxy: { url, source: 'the test' } }));
    expect(result.outcome).toMatchObject({ deviceId: bench.deviceId });
    expect(connects).toContain(`${bench.target.globalEndpoint}:443`);
  }, 60_000);

  it('refuses a request that breaks the protocol before it opens the TPM', async () => {
    const bench = await dpsBench();
    const { outcome, events } = await register(bench, { transport: 'swtpm:port=1', shell: 'reboot' } as Partial<RegisterRequest>);
    expect(outcome).toBeInstanceOf(ChildMessageError);
    expect(events).toEqual([]);
  });
});

describe('the clock the provisioning helper signs its tokens with', () => {
  it('is this board\'s clock moved by the offset its parent measured, while DPS sends no Date', async () => {
    const bench = await dpsBench();
    bench.cloud.dps.faults.omitDate = true;
    // Two hours behind DPS by the parent's measure: the tokens expire an hour before DPS's now.
    const behind = await register(bench, { clockOffsetMs: -TWO_HOURS_MS });
    expect(behind.outcome).toBeInstanceOf(DpsError);
    expect((behind.outcome as DpsError).message).toMatch(/401/);
    const { outcome, events } = await register(bench);
    expect(outcome).toMatchObject({ deviceId: bench.deviceId });
    const dates = events.filter((event) => Object.hasOwn(event as object, 'sentAt'));
    expect(dates.length).toBeGreaterThanOrEqual(3);
    for (const reading of dates) expect(reading).toStrictEqual({ sentAt: ofType(Number), receivedAt: ofType(Number) });
  }, 60_000);

  it('is DPS\'s as soon as an answer carries a Date, whatever the parent measured', async () => {
    const bench = await dpsBench();
    const { outcome } = await register(bench, { clockOffsetMs: -TWO_HOURS_MS });
    expect(outcome).toMatchObject({ deviceId: bench.deviceId });
  }, 60_000);
});
