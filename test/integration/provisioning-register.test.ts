import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DpsError } from '../../agent/provisioning/dps-error.js';
import { registerWithDps, type ProvisionStep } from '../../agent/provisioning/register.js';
import { ensureIdentity } from '../../agent/tpm/identity.js';
import type { TpmClient } from '../../agent/tpm/tpm-client.js';
import { startDps, type Dps } from '../cloud/dps/dps.js';
import { RecordingHub } from '../cloud/dps/recording-hub.js';
import { enrollBoard, readBoardIdentity } from '../support/enroll-board.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { tlsContextsBuilt } from '../support/tls-contexts.js';
import { clientFor } from '../support/tpm.js';

describe('registration with DPS by TPM attestation', () => {
  let hub: RecordingHub;
  let stateDir: string;
  let dps: Dps;
  let swtpm: SwtpmInstance;
  let tpm: TpmClient;
  let registrationId: string;

  beforeAll(async () => {
    hub = new RecordingHub('hub-a.cloud.test');
    stateDir = mkdtempSync(path.join(tmpdir(), 'iot-agent-register-'));
    [dps, swtpm] = await Promise.all([
      startDps({ address: randomLoopbackAddress(), stateDir, linkedHubs: [hub], retryAfterSeconds: 1 }),
      SwtpmInstance.start(),
    ]);
    tpm = clientFor(swtpm.transport);
    registrationId = (await enrollBoard(dps, { deviceId: 'board-17', transport: swtpm.transport, identity: await readBoardIdentity(tpm) })).registrationId;
  });
  afterAll(async () => {
    await tpm?.close();
    await Promise.all([dps?.stop(), swtpm?.stop()]);
    rmSync(stateDir, { recursive: true, force: true });
  });
  beforeEach(() => dps.faults.clear());

  const options = () => ({ tpm, registrationId, idScope: dps.idScope, globalEndpoint: dps.host, ca: dps.ca });

  it('is assigned a hub, reporting each step, and the TPM then holds the hub key', async () => {
    const steps: ProvisionStep[] = [];
    const assignment = await registerWithDps({ ...options(), onStep: (step) => steps.push(step) });
    expect(assignment).toEqual({ assignedHub: 'hub-a.cloud.test', deviceId: 'board-17' });
    expect(steps).toEqual(['challenge', 'activated', 'assigned']);
    expect(hub.last()?.deviceId).toBe('board-17');
    expect((await ensureIdentity(tpm)).identityKeyPresent).toBe(true);
  });

  it('makes every request through one TLS context, not one per request', async () => {
    // Node builds a context from `ca` for each connection handed it: 25-75 ms of a board's CPU each.
    const made = await tlsContextsBuilt(async () => {
      expect(await registerWithDps(options())).toEqual({ assignedHub: 'hub-a.cloud.test', deviceId: 'board-17' });
    });
    expect(made).toBe(0);
  });

  it('reports throttling as retryable with the Retry-After DPS sent', async () => {
    dps.faults.throttleNext(1, 7);
    const err = await registerWithDps(options()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DpsError);
    expect(err).toMatchObject({ retryable: true, retryAfterMs: 7_000 });
    expect((err as DpsError).message).toContain('is throttling registrations (429)');
  });

  it('reports 503 as retryable', async () => {
    dps.faults.failNext(1);
    const err = await registerWithDps(options()).catch((e: unknown) => e);
    expect(err).toMatchObject({ retryable: true });
    expect((err as DpsError).message).toContain('is unavailable (503)');
  });

  it('reports an unknown registration id as a refusal with a hint', async () => {
    const err = await registerWithDps({ ...options(), registrationId: 'never-enrolled' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DpsError);
    expect((err as DpsError).retryable).toBe(false);
    expect((err as DpsError).hint).toMatch(/enrollment/);
  });

  it('refuses to trust the cloud without its CA, and says so', async () => {
    const err = await registerWithDps({ ...options(), ca: undefined }).catch((e: unknown) => e);
    expect(err).toMatchObject({ retryable: true });
    expect(String((err as DpsError).message)).toContain('could not be reached');
    expect(String(((err as DpsError).cause as Error)?.message ?? (err as DpsError).cause)).toMatch(/certificate/i);
  });
});
