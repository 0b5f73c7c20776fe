import { describe, expect, it } from 'vitest';
import { DEFAULTS, type AgentConfig } from '../../agent/config.js';
import { PROVISION_STEPS, readyIdentity, startDecision, stepAfter, stepWords } from '../../agent/provisioning/flow.js';
import { type StoredAssignment } from '../../agent/state/assignment-store.js';
import { openTransport } from '../../agent/tpm/open-transport.js';
import { TpmClient } from '../../agent/tpm/tpm-client.js';
import { parseTransport } from '../../agent/tpm/transport-spec.js';
import { freePort } from '../support/ports.js';

const config = (): AgentConfig => ({ ...structuredClone(DEFAULTS), provisioning: { ...DEFAULTS.provisioning, idScope: '0ne0001' } });
const cached = (): StoredAssignment => ({
  status: 'valid',
  assignment: {
    assignedHub: 'hub-a', deviceId: 'd', registrationId: 'r', idScope: '0ne0001',
    globalEndpoint: DEFAULTS.provisioning.globalEndpoint, assignedAt: '2026-11-26T00:00:00Z', identityKeyHandle: 0x81000100,
  },
});

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

describe('what a start does with the cached assignment', () => {
  it('registers when a technician forces it, whatever is cached', () => {
    expect(startDecision('technician', true, config(), '0ne0001', 'r', cached())).toEqual({ action: 'provision', reason: 'requested' });
  });

  it('uses a valid cache for a technician without --force, and for the service even when asked to force', () => {
    expect(startDecision('technician', false, config(), '0ne0001', 'r', cached())).toMatchObject({ action: 'useCached' });
    expect(startDecision('service', true, config(), '0ne0001', 'r', cached())).toMatchObject({ action: 'useCached' });
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
