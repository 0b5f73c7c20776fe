import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULTS, type AgentConfig } from '../../agent/config.js';
import { DpsError } from '../../agent/provisioning/dps-error.js';
import { PROVISION_STEPS, readyIdentity, registerAssignment, stepAfter, stepWords, technicianDecision } from '../../agent/provisioning/flow.js';
import { readAssignment, writeAssignment, type Assignment, type StoredAssignment } from '../../agent/state/assignment-store.js';
import { SoftwareTpm } from '../cloud/dps/software-tpm.js';
import { openTransport } from '../../agent/tpm/open-transport.js';
import { TpmClient, TpmCommandError } from '../../agent/tpm/tpm-client.js';
import { parseTransport } from '../../agent/config/transport-spec.js';
import { freePort } from '../support/ports.js';

const config = (): AgentConfig => ({ ...structuredClone(DEFAULTS), provisioning: { ...DEFAULTS.provisioning, idScope: '0ne0001' } });
const inForce = (): Assignment => ({
  assignedHub: 'hub-a', deviceId: 'd', registrationId: 'r', idScope: '0ne0001',
  globalEndpoint: DEFAULTS.provisioning.globalEndpoint, assignedAt: '2026-11-26T00:00:00Z', identityKeyHandle: 0x81000100,
});
const cached = (): StoredAssignment => ({ status: 'valid', assignment: inForce() });

describe('the provisioning steps a technician sees', () => {
  it('come in this order', () => {
    expect(PROVISION_STEPS).toEqual(['tpm', 'challenge', 'activated', 'assigned', 'connected']);
  });

  it.each([
    ['tpm', 'r-17', 'TPM ready, registration id r-17'],
    ['tpm', undefined, 'TPM ready, registration id ?'],
    ['challenge', undefined, 'DPS challenge received'],
    ['activated', undefined, 'key activated in the TPM'],
    ['assigned', 'hub-a as d', 'assigned to hub-a as d'],
    ['assigned', undefined, 'assigned to a hub'],
    ['connected', 'hub-a', 'connected to hub-a'],
    ['connected', undefined, 'connected to the hub'],
  ] as const)('says %s (%j) as %j', (step, detail, words) => {
    expect(stepWords(step, detail)).toBe(words);
  });

  it('names the step a failure happened in: the one after the last done, the TPM before any, connecting after the last', () => {
    expect(stepAfter(undefined)).toBe('tpm');
    expect(stepAfter('tpm')).toBe('challenge');
    expect(stepAfter('challenge')).toBe('activated');
    expect(stepAfter('activated')).toBe('assigned');
    expect(stepAfter('assigned')).toBe('connected');
    expect(stepAfter('connected')).toBe('connected');
  });
});

describe('what a technician\'s provision does with the cached assignment', () => {
  it('registers when forced, whatever is cached', () => {
    expect(technicianDecision(true, config(), '0ne0001', 'r', cached())).toEqual({ action: 'provision', reason: 'requested' });
  });

  it('uses a valid cache without --force, and registers without one as a start-up would', () => {
    expect(technicianDecision(false, config(), '0ne0001', 'r', cached())).toMatchObject({ action: 'useCached' });
    expect(technicianDecision(false, config(), '0ne0001', 'r', { status: 'absent' })).toEqual({ action: 'provision', reason: 'not provisioned yet' });
  });
});

describe('the provisioning flow without a TPM', () => {
  const absentTpm = async () => new TpmClient(openTransport(parseTransport(`swtpm:port=${await freePort()}`), { commandTimeoutMs: 2_000 }));

  it('reports no TPM step when the TPM cannot be read', async () => {
    const tpm = await absentTpm();
    const steps: string[] = [];
    try {
      await expect(readyIdentity(tpm, config(), (step) => steps.push(step))).rejects.toThrow();
      expect(steps).toEqual([]);
    } finally {
      await tpm.close();
    }
  });
});

/**
 * A TPM client whose EK and SRK exist (a software TPM's public areas) and whose identity key
 * slot is empty: all readyIdentity asks of it is TPM2_ReadPublic.
 */
function provisionedKeysTpm(): TpmClient {
  const { endorsementKey, storageRootKey } = SoftwareTpm.create();
  const publicArea = (bytes: Buffer) => ({ outPublic: { asTpm2B: () => bytes } });
  return {
    readPublic: (handle: { handle: number }) => {
      if (handle.handle === 0x81010001) return Promise.resolve(publicArea(endorsementKey));
      if (handle.handle === 0x81000001) return Promise.resolve(publicArea(storageRootKey));
      return Promise.reject(new TpmCommandError('ReadPublic', 0x18b, 'a test TPM'));
    },
  } as unknown as TpmClient;
}

describe('the provisioning flow with a TPM', () => {
  it('reports the TPM step with the registration id the config names', async () => {
    const steps: [string, string][] = [];
    const named = { ...config(), provisioning: { ...config().provisioning, registrationId: 'board-17' } };
    const identity = await readyIdentity(provisionedKeysTpm(), named, (step, words) => steps.push([step, words]));
    expect(identity).toMatchObject({ registrationId: 'board-17', identityKeyPresent: false, created: [] });
    expect(steps).toEqual([['tpm', 'TPM ready, registration id board-17']]);
  });

  it('needs nobody to listen for the step', async () => {
    const named = { ...config(), provisioning: { ...config().provisioning, registrationId: 'board-17' } };
    expect((await readyIdentity(provisionedKeysTpm(), named)).registrationId).toBe('board-17');
  });
});

describe('a registration that fails', () => {
  it('is a retryable DpsError and leaves no assignment on disk', async () => {
    const tpm = new TpmClient(openTransport(parseTransport(`swtpm:port=${await freePort()}`), { commandTimeoutMs: 2_000 }));
    const stateDir = mkdtempSync(path.join(tmpdir(), 'iot-agent-flow-'));
    try {
      const err = await registerAssignment({
        tpm, config: { ...config(), stateDir }, idScope: '0ne0001', registrationId: 'r', ca: undefined, current: undefined,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DpsError);
      expect(err).toMatchObject({ retryable: true });
      expect(readdirSync(stateDir)).toEqual([]);
    } finally {
      await tpm.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  it('leaves the assignment in force on disk, as it was, when the new one does not come', async () => {
    const tpm = new TpmClient(openTransport(parseTransport(`swtpm:port=${await freePort()}`), { commandTimeoutMs: 2_000 }));
    const stateDir = mkdtempSync(path.join(tmpdir(), 'iot-agent-flow-'));
    try {
      const current = inForce();
      await writeAssignment(stateDir, current);
      const before = await readAssignment(stateDir);
      expect(before).toEqual({ status: 'valid', assignment: current });
      await expect(registerAssignment({
        tpm, config: { ...config(), stateDir }, idScope: '0ne0001', registrationId: 'r', ca: undefined, current,
      })).rejects.toBeInstanceOf(DpsError);
      expect(await readAssignment(stateDir)).toEqual(before);
    } finally {
      await tpm.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
