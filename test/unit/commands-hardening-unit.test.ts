import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { appliesInProcess, hardeningAccess, PRODUCTION_SITE } from '../../agent/commands/hardening-access.js';
import { applyUnitName, confirmEnvironment, unitInstance } from '../../agent/commands/hardening-unit.js';
import { DEFAULT_STATE_DIR } from '../../hardening/engine.js';
import { StateStore } from '../../hardening/state-store.js';

const run = promisify(execFile);

describe('applying a profile through iot-agent-harden-apply@.service', () => {
  it.each(['strict', 'baseline', 'board-test', 'site_2', 'a-b-c'])('names the instance as systemd-escape does: %s', async (name) => {
    const { stdout } = await run('systemd-escape', [name]);
    expect(unitInstance(name)).toBe(stdout.trim());
    expect(applyUnitName(name)).toBe(`iot-agent-harden-apply@${stdout.trim()}.service`);
  });

  it('produces only instances the polkit rule admits', () => {
    const rule = /^iot-agent-harden-apply@([A-Za-z0-9_]|\\x2d){1,64}\.service$/;
    for (const name of ['strict', 'board-test', '-lead', 'x_-_y']) expect(applyUnitName(name)).toMatch(rule);
  });

  it.each(['evil.yaml', '../etc', 'a/b', '', 'x'.repeat(65), 'sp ace'])('refuses a name that polkit would refuse or %%I could make a path: %j', (name) => {
    expect(() => unitInstance(name)).toThrow(/letters, digits, _ and -/);
  });

  it('writes the hub, the timeout and the request id to the environment file, one variable a line', () => {
    expect(confirmEnvironment({ host: 'hub-1.azure-devices.net', port: 8883 }, 30, 'ab12-cd')).toBe(
      'IOT_AGENT_CONFIRM_HOST=hub-1.azure-devices.net:8883\nIOT_AGENT_CONFIRM_TIMEOUT=30\nIOT_AGENT_REQUEST_ID=ab12-cd\n');
  });

  it('never writes a value that could add a variable to the environment file', () => {
    expect(() => confirmEnvironment({ host: 'hub\nIOT_AGENT_X=1', port: 8883 }, 30, 'id')).toThrow(/not a host:port/);
    expect(() => confirmEnvironment({ host: 'hub', port: 8883 }, 30, 'id\nX=1')).toThrow(/request id/);
    expect(() => confirmEnvironment({ host: 'hub', port: 8883 }, 0, 'id')).toThrow(/timeout/);
  });

  it('is the path for the unprivileged production agent; root and test namespaces apply in process', () => {
    expect(appliesInProcess(PRODUCTION_SITE, 998)).toBe(false);
    expect(appliesInProcess(PRODUCTION_SITE, 0)).toBe(true);
    expect(appliesInProcess({ ...PRODUCTION_SITE, root: '/tmp/r', netns: 'iotagent-1-d' }, 998)).toBe(true);
  });
});

describe('hardening status of the unprivileged agent', () => {
  let root: string | undefined;
  afterEach(() => {
    if (root) rmSync(root, { recursive: true, force: true });
    root = undefined;
  });

  it('keeps its records in their own directory, apart from the agent state', () => {
    expect(DEFAULT_STATE_DIR).toBe('var/lib/iot-agent-hardening');
  });

  async function siteWith(records: Record<string, unknown>) {
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-status-'));
    const store = new StateStore(path.join(root, DEFAULT_STATE_DIR));
    for (const [name, value] of Object.entries(records)) await store.write(name, value);
    return { access: hardeningAccess({ root, backend: 'auto' }, () => [], { inProcess: false }), store };
  }

  const applied = { profile: { name: 'strict' }, hash: 'h1', origin: 'built-in', appliedAt: '2026-11-26T03:00:00.000Z', confirmed: true };

  it('reports the drift the last root run recorded, with when and by whom it was checked', async () => {
    const { access, store } = await siteWith({
      applied,
      verified: { profile: 'strict', hash: 'h1', appliedHash: 'h1', drift: 1, checkedAt: '2026-11-26T03:01:00.000Z', by: 'apply',
        items: [{ kind: 'sysctl', target: 'net.ipv4.tcp_syncookies', ok: false, expected: '1', actual: '0' }, { kind: 'profile', target: 'x', ok: true, expected: 'h1', actual: 'h1' }] },
    });
    expect(await access.status()).toEqual({
      profile: 'strict', appliedHash: 'h1', confirmed: true, appliedAt: applied.appliedAt, origin: 'built-in',
      drift: 1, driftCheckedAt: '2026-11-26T03:01:00.000Z', driftCheckedBy: 'apply',
      drifted: [{ kind: 'sysctl', target: 'net.ipv4.tcp_syncookies', expected: '1', actual: '0' }],
    });
    // Readable by anyone, written by root only.
    expect(statSync(path.join(store.dir, 'verified.json')).mode & 0o777).toBe(0o644);
  });

  it('says the drift is unknown when no root run verified the applied profile since it was applied', async () => {
    const { access } = await siteWith({
      applied,
      verified: { profile: 'baseline', hash: 'h0', appliedHash: 'h0', drift: 0, checkedAt: '2026-11-26T02:00:00.000Z', by: 'boot', items: [] },
    });
    expect(await access.summary()).toMatchObject({ profile: 'strict', drift: null, driftError: 'not verified since profile strict was applied' });
  });
});
