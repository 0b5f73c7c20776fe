import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeAssignment, describeStateDir, inspectStateDir } from '../../agent/check/state-check.js';
import { DEFAULTS, type AgentConfig } from '../../agent/config.js';
import type { Assignment } from '../../agent/state/assignment-store.js';

/** A config for ID scope 0ne0012ABCD at the default DPS, with the default state directory. */
function configured(reprovision: AgentConfig['provisioning']['reprovision'] = 'onErrorOnly'): AgentConfig {
  return {
    ...structuredClone(DEFAULTS),
    provisioning: { ...DEFAULTS.provisioning, idScope: '0ne0012ABCD', reprovision },
    stateDir: '/var/lib/iot-agent',
  };
}

/** What DPS assigned for that config. */
function assigned(): Assignment {
  return {
    assignedHub: 'hub-a.azure-devices.net',
    deviceId: 'board-17',
    registrationId: 'board-17',
    idScope: '0ne0012ABCD',
    globalEndpoint: DEFAULTS.provisioning.globalEndpoint,
    assignedAt: '2026-11-26T02:30:00.000Z',
    identityKeyHandle: 0x81000100,
  };
}

describe('check: cached assignment', () => {
  it('passes a valid assignment, naming hub and device', () => {
    const result = describeAssignment({ status: 'valid', assignment: assigned() }, configured());
    expect(result).toMatchObject({ id: 'state', status: 'pass' });
    expect(result.message).toBe('provisioned: hub hub-a.azure-devices.net, device board-17 (assigned 2026-11-26T02:30:00.000Z)');
  });

  it('warns when the device is not provisioned', () => {
    const result = describeAssignment({ status: 'absent' }, configured());
    expect(result.status).toBe('warn');
    expect(result.message).toBe('no cached assignment at /var/lib/iot-agent/assignment.json: not provisioned');
  });

  it('fails a corrupt file with the reason and says the agent will re-provision', () => {
    const result = describeAssignment({ status: 'invalid', reason: 'the file is not valid JSON (truncated or corrupt)' }, configured());
    expect(result.status).toBe('fail');
    expect(result.message).toBe('/var/lib/iot-agent/assignment.json is not usable: the file is not valid JSON (truncated or corrupt)');
    expect(result.hint).toContain('re-provisions');
  });

  it('tells how to recover when the agent is set never to re-provision', () => {
    expect(describeAssignment({ status: 'invalid', reason: 'x' }, configured('never')).hint).toContain('remove the file');
  });

  it('warns when the assignment came from another DPS than the configured one', () => {
    const other = describeAssignment({ status: 'valid', assignment: { ...assigned(), idScope: '0ne00FFFFFF' } }, configured());
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

describe('check: whose assignment it is', () => {
  it('does not call an assignment foreign for a config that names no ID scope', () => {
    const config = configured();
    config.provisioning.idScope = undefined;
    expect(describeAssignment({ status: 'valid', assignment: assigned() }, config).status).toBe('pass');
  });

  it('warns when the assignment came from another DPS endpoint, naming both sides', () => {
    const config = configured();
    config.provisioning.idScope = undefined;
    expect(describeAssignment({ status: 'valid', assignment: { ...assigned(), globalEndpoint: 'dps.other.example' } }, config)).toEqual({
      id: 'state', status: 'warn',
      message: 'the cached assignment (hub hub-a.azure-devices.net, device board-17) came from ID scope 0ne0012ABCD at dps.other.example, '
        + 'but the config names (no ID scope) at global.azure-devices-provisioning.net',
      hint: 'if the DPS changed on purpose, re-provision with `iot-agent provision`; otherwise fix the config',
    });
  });

  it('says how the device gets provisioned when nothing is cached', () => {
    expect(describeAssignment({ status: 'absent' }, configured()).hint)
      .toBe('the agent provisions with DPS at its first start (needs provisioning.idScope), or run `iot-agent provision`');
    expect(describeAssignment({ status: 'invalid', reason: 'r' }, configured()).hint)
      .toBe('the agent discards it and re-provisions with DPS at its next start; DPS must be reachable');
  });

  it('names every state directory problem with what to do', () => {
    const dir = '/var/lib/iot-agent';
    expect(describeStateDir(dir, { exists: false })).toEqual({ id: 'state-dir', status: 'pass', message: '/var/lib/iot-agent does not exist yet: the agent creates it owner-only (0700)' });
    expect(describeStateDir(dir, { exists: 'unknown', code: 'EACCES' })).toEqual({
      id: 'state-dir', status: 'warn', message: 'cannot inspect /var/lib/iot-agent (EACCES)', hint: 'run check as root or as the user the agent runs as',
    });
    expect(describeStateDir(dir, { exists: true, isDirectory: false, mode: 0o600, uid: 0 })).toEqual({
      id: 'state-dir', status: 'fail', message: '/var/lib/iot-agent is not a directory: the agent cannot save its assignment', hint: 'remove it or point stateDir elsewhere',
    });
    expect(describeStateDir(dir, { exists: true, isDirectory: true, mode: 0o777, uid: 0 })).toEqual({
      id: 'state-dir', status: 'warn', message: '/var/lib/iot-agent is world-writable (mode 0777): anyone on the device can replace the cached assignment', hint: 'chmod 0700 /var/lib/iot-agent',
    });
    expect(describeStateDir(dir, { exists: true, isDirectory: true, mode: 0o710, uid: 0 })).toEqual({
      id: 'state-dir', status: 'warn', message: '/var/lib/iot-agent is open to other users (mode 0710); expected owner-only (0700)', hint: 'chmod 0700 /var/lib/iot-agent',
    });
    expect(describeStateDir(dir, { exists: true, isDirectory: true, mode: 0o701, uid: 0 }).status).toBe('warn');
    expect(describeStateDir(dir, { exists: true, isDirectory: true, mode: 0o2700, uid: 1000 })).toMatchObject({ status: 'pass', message: '/var/lib/iot-agent is owner-only (mode 2700, owner uid 1000)' });
  });

  it('looks at a directory for real: its mode, owner and kind', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-state-dir-'));
    chmodSync(dir, 0o750);
    expect(await inspectStateDir(dir)).toEqual({ exists: true, isDirectory: true, mode: 0o750, uid: process.getuid!() });
    const file = path.join(dir, 'file');
    writeFileSync(file, '');
    expect(await inspectStateDir(file)).toMatchObject({ exists: true, isDirectory: false });
    expect(await inspectStateDir(path.join(dir, 'absent'))).toEqual({ exists: false });
    expect(await inspectStateDir(path.join(file, 'below'))).toEqual({ exists: 'unknown', code: 'ENOTDIR' });
  });
});
