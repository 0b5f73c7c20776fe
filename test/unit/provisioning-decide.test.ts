import { describe, expect, it } from 'vitest';
import { DEFAULTS, type AgentConfig } from '../../agent/config.js';
import { decideAtStartup, reprovisionOnRejection } from '../../agent/provisioning/decide.js';
import type { Assignment } from '../../agent/state/assignment-store.js';

const config = (reprovision: AgentConfig['provisioning']['reprovision'] = 'onErrorOnly', globalEndpoint = DEFAULTS.provisioning.globalEndpoint): AgentConfig =>
  ({ ...DEFAULTS, provisioning: { ...DEFAULTS.provisioning, idScope: '0ne0001', reprovision, globalEndpoint } });
const cachedAssignment = (): Assignment => ({
  assignedHub: 'hub-a', deviceId: 'd', registrationId: 'r', idScope: '0ne0001',
  globalEndpoint: DEFAULTS.provisioning.globalEndpoint, assignedAt: '2026-11-26T00:00:00Z', identityKeyHandle: 0x81000100,
});
const validCache = () => ({ status: 'valid' as const, assignment: cachedAssignment() });

describe('start-up decision', () => {
  it('uses a matching cached assignment (warm boot, no DPS)', () => {
    expect(decideAtStartup(config(), '0ne0001', 'r', validCache())).toEqual({ action: 'useCached', assignment: cachedAssignment() });
    expect(decideAtStartup(config('never'), '0ne0001', 'r', validCache()).action).toBe('useCached');
  });

  it('provisions when nothing or something unusable is cached', () => {
    expect(decideAtStartup(config(), '0ne0001', 'r', { status: 'absent' })).toEqual({ action: 'provision', reason: 'not provisioned yet' });
    expect(decideAtStartup(config(), '0ne0001', 'r', { status: 'invalid', reason: 'the file is empty' }))
      .toEqual({ action: 'provision', reason: 'the state file is unusable: the file is empty' });
  });

  it('provisions whenever the ID scope, endpoint or registration id differ, whatever the policy', () => {
    for (const policy of ['onErrorOnly', 'never', 'alwaysOnStartup'] as const) {
      expect(decideAtStartup(config(policy), '0ne0002', 'r', validCache())).toEqual({ action: 'provision', reason: 'ID scope changed from 0ne0001 to 0ne0002' });
      expect(decideAtStartup(config(policy, 'dps.example.net'), '0ne0001', 'r', validCache())).toEqual({
        action: 'provision', reason: `provisioning endpoint changed from ${DEFAULTS.provisioning.globalEndpoint} to dps.example.net`,
      });
      expect(decideAtStartup(config(policy), '0ne0001', 'other', validCache())).toEqual({ action: 'provision', reason: 'registration id changed from r to other' });
    }
  });

  it('provisions on every start with alwaysOnStartup', () => {
    expect(decideAtStartup(config('alwaysOnStartup'), '0ne0001', 'r', validCache())).toEqual({ action: 'provision', reason: 'reprovision is alwaysOnStartup' });
  });

  it('re-provisions after a hub refusal unless the policy is never', () => {
    expect(reprovisionOnRejection(config('onErrorOnly'))).toBe(true);
    expect(reprovisionOnRejection(config('alwaysOnStartup'))).toBe(true);
    expect(reprovisionOnRejection(config('never'))).toBe(false);
  });
});
