import { describe, expect, it } from 'vitest';
import { describeAssignment, describeStateDir } from '../../agent/check/state-check.js';
import { DEFAULTS, type AgentConfig } from '../../agent/config.js';
import type { Assignment } from '../../agent/state/assignment-store.js';

const config: AgentConfig = {
  ...structuredClone(DEFAULTS),
  provisioning: { ...DEFAULTS.provisioning, idScope: '0ne0012ABCD' },
  stateDir: '/var/lib/iot-agent',
};
const assignment: Assignment = {
  assignedHub: 'hub-a.azure-devices.net',
  deviceId: 'board-17',
  registrationId: 'board-17',
  idScope: '0ne0012ABCD',
  globalEndpoint: DEFAULTS.provisioning.globalEndpoint,
  assignedAt: '2026-11-26T02:30:00.000Z',
  identityKeyHandle: 0x81000100,
};

describe('check: cached assignment', () => {
  it('passes a valid assignment, naming hub and device', () => {
    const result = describeAssignment({ status: 'valid', assignment }, config);
    expect(result).toMatchObject({ id: 'state', status: 'pass' });
    expect(result.message).toBe('provisioned: hub hub-a.azure-devices.net, device board-17 (assigned 2026-11-26T02:30:00.000Z)');
  });

  it('warns when the device is not provisioned', () => {
    const result = describeAssignment({ status: 'absent' }, config);
    expect(result.status).toBe('warn');
    expect(result.message).toBe('no cached assignment at /var/lib/iot-agent/assignment.json: not provisioned');
  });

  it('fails a corrupt file with the reason and says the agent will re-provision', () => {
    const result = describeAssignment({ status: 'invalid', reason: 'the file is not valid JSON (truncated or corrupt)' }, config);
    expect(result.status).toBe('fail');
    expect(result.message).toBe('/var/lib/iot-agent/assignment.json is not usable: the file is not valid JSON (truncated or corrupt)');
    expect(result.hint).toContain('re-provisions');
  });

  it('tells how to recover when the agent is set never to re-provision', () => {
    const never: AgentConfig = { ...config, provisioning: { ...config.provisioning, reprovision: 'never' } };
    expect(describeAssignment({ status: 'invalid', reason: 'x' }, never).hint).toContain('remove the file');
  });

  it('warns when the assignment came from another DPS than the configured one', () => {
    const other = describeAssignment({ status: 'valid', assignment: { ...assignment, idScope: '0ne00FFFFFF' } }, config);
    expect(other.status).toBe('warn');
    expect(other.message).toContain('came from ID scope 0ne00FFFFFF');
  });
});

describe('check: state directory permissions', () => {
  const dir = '/var/lib/iot-agent';
  it('passes an owner-only directory', () => {
    expect(describeStateDir(dir, { exists: true, isDirectory: true, mode: 0o700, uid: 0 }))
      .toEqual({ id: 'state-dir', status: 'pass', message: '/var/lib/iot-agent is owner-only (mode 0700, owner uid 0)' });
  });

  it('warns about a world-writable directory first', () => {
    const result = describeStateDir(dir, { exists: true, isDirectory: true, mode: 0o1777, uid: 0 });
    expect(result.status).toBe('warn');
    expect(result.message).toContain('world-writable (mode 1777)');
    expect(result.hint).toBe('chmod 0700 /var/lib/iot-agent');
  });

  it('warns about a directory others can read', () => {
    const result = describeStateDir(dir, { exists: true, isDirectory: true, mode: 0o755, uid: 0 });
    expect(result.status).toBe('warn');
    expect(result.message).toContain('open to other users (mode 0755)');
  });

  it('passes a directory the agent will still create, and fails a file in its place', () => {
    expect(describeStateDir(dir, { exists: false }).status).toBe('pass');
    expect(describeStateDir(dir, { exists: true, isDirectory: false, mode: 0o600, uid: 0 }).status).toBe('fail');
  });

  it('warns when it cannot look', () => {
    expect(describeStateDir(dir, { exists: 'unknown', code: 'EACCES' })).toMatchObject({ status: 'warn', message: 'cannot inspect /var/lib/iot-agent (EACCES)' });
  });
});
