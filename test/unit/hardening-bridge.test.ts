import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { neededEndpoints } from '../../agent/commands/needed-endpoints.js';
import { hardeningAccess } from '../../agent/hardening-bridge/access.js';
import { applyThroughUnit, applyUnitName, UNIT_MARGIN_SECONDS, unitInstance } from '../../agent/hardening-bridge/apply-unit.js';
import { HardeningRequestError } from '../../agent/hardening-bridge/refusal.js';
import { appliesInProcess, PRODUCTION_SITE } from '../../agent/hardening-bridge/site.js';
import { restorePath, standInPrograms } from './stand-in-programs.js';
import { DEFAULTS } from '../../agent/config.js';
import { HardeningEngine } from '../../hardening/engine.js';
import { BUILTIN_PROFILES } from '../../hardening/builtin-profiles.js';
import { DEFAULT_STATE_DIR } from '../../hardening/engine.js';
import { bootId } from '../../agent/lib/boot-id.js';
import { parseProfileText } from '../../hardening/load-profile.js';
import { profileHash, validateProfile } from '../../hardening/profile.js';
import { Records } from '../../hardening/records.js';
import { stringMatching } from '../support/matchers.js';

const run = promisify(execFile);

/** The record of the built-in strict profile applied, and its hash. */
function appliedStrict() {
  const strict = validateProfile(parseProfileText(BUILTIN_PROFILES.strict!, 'builtin:strict', 'strict'), 'builtin:strict', 'strict');
  const h1 = profileHash(strict);
  return { h1, applied: { profile: strict, hash: h1, origin: 'built-in', appliedAt: '2026-11-26T03:00:00.000Z', confirmed: true, firewall: { 4: [], 6: null } } };
}

describe('applying a profile through iot-agent-harden-apply@.service', () => {
  it.each(['strict', 'baseline', 'board-test', 'site_2', 'a-b-c'])('names the instance as systemd-escape does: %s', async (name) => {
    const { stdout } = await run('systemd-escape', [name]);
    expect(unitInstance(name)).toBe(stdout.trim());
    expect(applyUnitName(name)).toBe(`iot-agent-harden-apply@${stdout.trim()}.service`);
  });

  it('produces only instances the polkit rule admits', () => {
    const rule = new RegExp(/\/\^iot-agent-harden-apply@.*\$\//.exec(readFileSync('packaging/polkit/50-iot-agent.rules', 'utf8'))![0].slice(1, -1));
    for (const name of ['strict', 'board-test', 'x_-_y', `a${'-'.repeat(63)}`]) expect(applyUnitName(name)).toMatch(rule);
    for (const refused of ['iot-agent-harden-apply@\\x2dlead.service', 'iot-agent-harden-apply@a-b.service', 'iot-agent-harden-apply@a.b.service',
      `iot-agent-harden-apply@${'a'.repeat(65)}.service`, 'iot-agent-harden-apply@.service', 'iot-agent-harden-apply@a\\x2fb.service']) {
      expect(refused).not.toMatch(rule);
    }
  });

  it.each(['evil.yaml', '../etc', 'a/b', '', 'x'.repeat(65), 'sp ace', '-lead', '_x', 'strict\n'])('refuses a name that polkit would refuse or %%I could make a path: %j', (name) => {
    expect(() => unitInstance(name)).toThrow(/letters, digits, _ and -/);
  });

  it('quotes at most 80 characters of a name it refuses', () => {
    const name = `${'x'.repeat(100)}/`;
    expect(() => unitInstance(name)).toThrow(`profile "${'x'.repeat(80)}" cannot be applied: expected`);
  });

  it('refuses with an error that names its kind', () => {
    let caught: unknown;
    try {
      unitInstance('a/b');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(HardeningRequestError);
    expect(caught).toMatchObject({ name: 'HardeningRequestError', status: 400 });
    expect(String(caught)).toMatch(/^HardeningRequestError: profile "a\/b" cannot be applied/);
  });

  it('asks the root unit to confirm against every endpoint the agent needs, in a request only the agent and its group read', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-request-'));
    try {
      const systemctl = path.join(dir, 'systemctl');
      await writeFile(systemctl, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
      const requestFile = path.join(dir, 'harden-request.json');
      const config = { ...DEFAULTS, provisioning: { ...DEFAULTS.provisioning, globalEndpoint: 'dps.example.net' } };
      const targets = neededEndpoints(config, { assignedHub: 'hub-1.azure-devices.net' });
      const attempt = applyThroughUnit({ engine: new HardeningEngine({ root: dir }), profile: 'board-2', timeoutSeconds: 30, targets, requestFile, systemctl });
      await expect(attempt).rejects.toThrow(/iot-agent-harden-apply@board\\x2d2\.service finished without recording an outcome for this request/);
      expect(JSON.parse(readFileSync(requestFile, 'utf8'))).toMatchObject({
        version: 1, profile: 'board-2', confirmTimeoutSeconds: 30, confirmTargets: ['hub-1.azure-devices.net:8883', 'dps.example.net:443'],
      });
      expect(statSync(requestFile).mode & 0o777).toBe(0o640);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is the path for the unprivileged production agent; root and test namespaces apply in process', () => {
    expect(appliesInProcess(PRODUCTION_SITE, 998)).toBe(false);
    expect(appliesInProcess(PRODUCTION_SITE, 0)).toBe(true);
    expect(appliesInProcess({ ...PRODUCTION_SITE, root: '/tmp/r', netns: 'iotagent-1-d' }, 998)).toBe(true);
  });
});

describe('the outcome of a profile applied through the unit', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  /** A stand-in systemctl: `start` runs `onStart` (with $REQUEST and $OUTCOME set), `show` prints `show`. */
  async function attempt(onStart: string, options: { show?: string; timeoutSeconds?: number; targets?: { host: string; port: number }[] } = {}) {
    dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-unit-'));
    const engine = new HardeningEngine({ root: dir });
    await mkdir(engine.records.dir, { recursive: true });
    const requestFile = path.join(dir, 'harden-request.json');
    const systemctl = path.join(dir, 'systemctl');
    await writeFile(systemctl, `#!/bin/sh
REQUEST='${requestFile}'
OUTCOME='${engine.records.lastApply.file}'
requestId=$(sed -n 's/.*"requestId":"\\([^"]*\\)".*/\\1/p' "$REQUEST")
case "$1 $2" in
  "--no-ask-password start") ${onStart} ;;
  "show -p") ${options.show ?? 'exit 1'} ;;
esac
`, { mode: 0o755 });
    return applyThroughUnit({
      engine, profile: 'strict', timeoutSeconds: options.timeoutSeconds ?? 30, requestFile, systemctl,
      targets: options.targets ?? [{ host: 'hub.example', port: 8883 }],
    });
  }

  const record = (fields: string) => `echo "{\\"requestId\\":\\"$requestId\\",\\"invocationId\\":null,\\"profile\\":\\"strict\\",\\"finishedAt\\":\\"2026-11-26T03:00:00.000Z\\"${fields}}" > "$OUTCOME"`;

  it('answers the report the unit recorded for this request', async () => {
    await expect(attempt(record(',\\"report\\":{\\"profile\\":\\"strict\\",\\"confirmed\\":true,\\"rolledBack\\":false}'))).resolves.toEqual({ profile: 'strict', confirmed: true, rolledBack: false });
  });

  it('names the error the unit recorded for this request, or says it recorded none', async () => {
    await expect(attempt(record(',\\"error\\":\\"hub unreachable after apply\\"'))).rejects.toMatchObject({ status: 500, message: 'profile strict not applied: hub unreachable after apply' });
    await expect(attempt(record(''))).rejects.toMatchObject({ status: 500, message: 'profile strict not applied: no reason recorded' });
  });

  it('does not take the outcome of another request for this one', async () => {
    await expect(attempt(`requestId=someone-else; ${record(',\\"report\\":{}')}`)).rejects.toMatchObject({
      status: 500, message: 'profile strict: iot-agent-harden-apply@strict.service finished without recording an outcome for this request',
    });
  });

  it('says how the unit failed, in systemctl\'s words and the unit\'s result', async () => {
    await expect(attempt('echo "Job for iot-agent-harden-apply@strict.service failed." >&2; exit 1', { show: 'printf "Result=exit-code\\nExecMainStatus=2\\n"' })).rejects.toMatchObject({
      status: 500,
      message: 'profile strict: iot-agent-harden-apply@strict.service failed (Job for iot-agent-harden-apply@strict.service failed.; Result=exit-code, ExecMainStatus=2) without recording an outcome for this request',
    });
  });

  it('says how the unit failed when systemctl gave no words and its result cannot be read', async () => {
    await expect(attempt('exit 5')).rejects.toMatchObject({
      status: 500, message: stringMatching(/^profile strict: iot-agent-harden-apply@strict\.service failed \(Command failed: \S+systemctl --no-ask-password start iot-agent-harden-apply@strict\.service\n?\) without recording an outcome for this request$/),
    });
  });

  /** systemctl from PATH, writing each call's arguments to a file: what the agent asked of systemd. */
  async function throughPath(onStart: string) {
    dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-unit-'));
    const calls = path.join(dir, 'calls');
    standInPrograms({ systemctl: `echo "$*" >> '${calls}'\ncase "$1 $2" in\n  "--no-ask-password start") ${onStart} ;;\n  "show -p") printf "Result=exit-code\\nExecMainStatus=3\\n" ;;\nesac` });
    try {
      const engine = new HardeningEngine({ root: dir });
      await mkdir(engine.records.dir, { recursive: true });
      const outcome = await applyThroughUnit({ engine, profile: 'strict', timeoutSeconds: 30, requestFile: path.join(dir, 'harden-request.json'), targets: [{ host: 'hub.example', port: 8883 }] })
        .then(() => 'applied', (err: unknown) => (err as Error).message);
      return { outcome, calls: readFileSync(calls, 'utf8').trimEnd().split('\n') };
    } finally {
      restorePath();
    }
  }

  it('runs the systemctl on PATH, and asks it for the unit\'s result when the start failed', async () => {
    expect(await throughPath('exit 3')).toEqual({
      outcome: 'profile strict: iot-agent-harden-apply@strict.service failed (Command failed: systemctl --no-ask-password start iot-agent-harden-apply@strict.service; Result=exit-code, ExecMainStatus=3) without recording an outcome for this request',
      calls: ['--no-ask-password start iot-agent-harden-apply@strict.service', 'show -p Result,ExecMainStatus iot-agent-harden-apply@strict.service'],
    });
  });

  it('asks nothing more of systemd when the unit finished', async () => {
    expect(await throughPath('exit 0')).toEqual({
      outcome: 'profile strict: iot-agent-harden-apply@strict.service finished without recording an outcome for this request',
      calls: ['--no-ask-password start iot-agent-harden-apply@strict.service'],
    });
  });

  it('asks for nothing without an endpoint to confirm against, or with a request the unit would refuse', async () => {
    await expect(attempt('exit 0', { targets: [] })).rejects.toMatchObject({ status: 500, message: 'no hub or DPS endpoint known to confirm against' });
    await expect(attempt('exit 0', { timeoutSeconds: 3601 })).rejects.toMatchObject({
      status: 500, message: 'cannot ask for profile strict: apply request refused: confirmTimeoutSeconds must be whole seconds from 1 to 3600',
    });
    expect(UNIT_MARGIN_SECONDS).toBe(90);
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
    const store = new Records(path.join(root, DEFAULT_STATE_DIR));
    await mkdir(store.dir, { recursive: true });
    for (const [name, value] of Object.entries(records)) await (store[name as 'applied'] as { write(v: unknown): Promise<void> }).write(value);
    return { access: hardeningAccess({ root, backend: 'auto' }, () => [], { inProcess: false }), store };
  }

  it('reports the drift the last root run recorded, with when and by whom it was checked', async () => {
    const { h1, applied } = appliedStrict();
    const { access, store } = await siteWith({
      applied,
      verified: { profile: 'strict', hash: h1, appliedHash: h1, drift: 1, checkedAt: '2026-11-26T03:01:00.000Z', by: 'apply',
        items: [{ kind: 'sysctl', target: 'net.ipv4.tcp_syncookies', ok: false, expected: '1', actual: '0' }, { kind: 'profile', target: 'x', ok: true, expected: h1, actual: h1 }] },
    });
    expect(await access.status()).toEqual({
      profile: 'strict', appliedHash: h1, confirmed: true, appliedAt: applied.appliedAt, origin: 'built-in',
      drift: 1, driftCheckedAt: '2026-11-26T03:01:00.000Z', driftCheckedBy: 'apply',
      drifted: [{ kind: 'sysctl', target: 'net.ipv4.tcp_syncookies', expected: '1', actual: '0' }],
    });
    // Readable by anyone, written by root only.
    expect(statSync(store.verified.file).mode & 0o777).toBe(0o644);
  });

  it('says the drift is unknown when no root run verified the applied profile since it was applied', async () => {
    const { applied } = appliedStrict();
    const { access } = await siteWith({
      applied,
      verified: { profile: 'baseline', hash: 'h0', appliedHash: 'h0', drift: 0, checkedAt: '2026-11-26T02:00:00.000Z', by: 'boot', items: [] },
    });
    expect(await access.summary()).toMatchObject({ profile: 'strict', drift: null, driftError: 'not verified since profile strict was applied' });
  });

  it('reports a fail-closed boot of this boot, so the cloud hears of it once the agent is connected', async () => {
    const { applied } = appliedStrict();
    const boot = { bootId: await bootId(), at: '2026-11-26T03:00:05.000Z', outcome: 'fail-closed', profile: 'strict', error: 'ip6tables rules were not loaded' };
    const { access } = await siteWith({ applied, boot });
    expect(await access.summary()).toMatchObject({
      profile: 'strict', failClosed: true, bootFailure: { at: boot.at, profile: 'strict', error: 'ip6tables rules were not loaded' },
    });
    // A failure of an earlier boot is history.
    const earlier = await siteWith({ boot: { ...boot, bootId: 'an earlier boot' } });
    expect(await earlier.access.summary()).toEqual({ profile: null, appliedHash: null, confirmed: false, drift: null });
  });

  it('reports a corrupt record instead of failing the summary', async () => {
    const { access, store } = await siteWith({});
    await writeFile(store.applied.file, '{"profile": {"na');
    expect(await access.summary()).toMatchObject({ profile: null, recordError: stringMatching(/applied\.json is corrupt: not valid JSON/) });
  });

  it('refuses anything but a profile name, in process too: a .yaml or path from the cloud is never read', async () => {
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-names-'));
    await writeFile(path.join(root, 'evil.yaml'), 'firewall: { inbound: [{ port: 1 }] }\n');
    const access = hardeningAccess({ root, backend: 'auto', netns: 'iotagent-none', confirmTargets: [{ host: '10.0.0.1', port: 8883 }] }, () => []);
    for (const name of ['evil.yaml', path.join(root, 'evil.yaml'), './evil', '../evil', 'evil.yml']) {
      await expect(access.apply(name, 5), name).rejects.toMatchObject({ status: 400, message: stringMatching(/never a path/) });
    }
  });

  it('says the drift is unknown when the last verify was of the profile before this apply', async () => {
    const { h1, applied } = appliedStrict();
    const { access } = await siteWith({
      applied,
      verified: { profile: 'strict', hash: h1, appliedHash: 'an earlier apply', drift: 0, checkedAt: '2026-11-26T02:00:00.000Z', by: 'boot', items: [] },
    });
    expect(await access.status()).toMatchObject({ drift: null, driftError: 'not verified since profile strict was applied', drifted: [] });
  });

  it('does not take a root run\'s verify of another profile, against the applied one, for the applied profile\'s drift', async () => {
    const { h1, applied } = appliedStrict();
    const { access } = await siteWith({
      applied,
      verified: { profile: 'baseline', hash: 'h0', appliedHash: h1, drift: 3, checkedAt: '2026-11-26T03:05:00.000Z', by: 'apply', items: [] },
    });
    expect(await access.summary()).toMatchObject({ profile: 'strict', drift: null, driftError: 'not verified since profile strict was applied' });
  });

  it('names a verify record it cannot read instead of failing the status', async () => {
    const { applied } = appliedStrict();
    const { access, store } = await siteWith({ applied });
    await writeFile(store.verified.file, '[]');
    expect(await access.status()).toMatchObject({ profile: 'strict', drift: null, driftError: stringMatching(/verified\.json is corrupt: not a JSON object/) });
  });

  it('says the drift is unknown when no root run has verified anything yet', async () => {
    const { applied } = appliedStrict();
    const { access } = await siteWith({ applied });
    expect(await access.status()).toMatchObject({ profile: 'strict', drift: null, driftError: 'not verified since profile strict was applied', drifted: [] });
  });

  it('reports a corrupt applied record as nothing applied, unconfirmed, with the reason', async () => {
    const { access, store } = await siteWith({});
    await writeFile(store.applied.file, '[]');
    expect(await access.status()).toEqual({
      profile: null, appliedHash: null, confirmed: false, drift: null, recordError: stringMatching(/applied\.json is corrupt: not a JSON object/),
    });
  });

  it('says a fail-closed boot recorded no reason when it did not', async () => {
    const { bootId: current, at } = { bootId: await bootId(), at: '2026-11-26T03:00:05.000Z' };
    const { access } = await siteWith({ boot: { bootId: current, at, outcome: 'fail-closed', profile: null } });
    expect(await access.summary()).toEqual({
      profile: null, appliedHash: null, confirmed: false, drift: null, failClosed: true, bootFailure: { at, profile: null, error: 'no reason recorded' },
    });
  });

  it('asks the root unit only with an endpoint to confirm against: the hub and DPS of the moment', async () => {
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-unit-path-'));
    let asked = 0;
    const access = hardeningAccess({ root, backend: 'auto' }, () => { asked++; return []; }, { inProcess: false });
    await expect(access.apply('no-such-profile', 30)).rejects.toMatchObject({ status: 500, message: 'no hub or DPS endpoint known to confirm against' });
    expect(asked).toBe(1);
  });

  it('keeps the drifted items out of the summary the twin reports', async () => {
    const { h1, applied } = appliedStrict();
    const { access } = await siteWith({
      applied, verified: { profile: 'strict', hash: h1, appliedHash: h1, drift: 0, checkedAt: '2026-11-26T03:01:00.000Z', by: 'guard', items: [] },
    });
    expect(await access.summary()).toEqual({
      profile: 'strict', appliedHash: h1, confirmed: true, appliedAt: applied.appliedAt, origin: 'built-in', drift: 0, driftCheckedAt: '2026-11-26T03:01:00.000Z', driftCheckedBy: 'guard',
    });
  });
});

describe('hardening status of an agent that applies in process', () => {
  let root: string | undefined;
  afterEach(() => {
    restorePath();
    if (root) rmSync(root, { recursive: true, force: true });
    root = undefined;
  });

  /** A namespace whose firewall has none of the agent's rules and whose sysctls are all 0 (a stand-in `ip netns exec`). */
  async function liveSite(ip = 'shift 3; case "$1" in *save) printf "*filter\\n:INPUT ACCEPT [0:0]\\nCOMMIT\\n" ;; sysctl) shift 2; for k in "$@"; do echo "$k = 0"; done ;; esac') {
    standInPrograms({ ip });
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-live-'));
    const store = new Records(path.join(root, DEFAULT_STATE_DIR));
    await mkdir(store.dir, { recursive: true });
    const { applied } = appliedStrict();
    await store.applied.write(applied as never);
    return hardeningAccess({ root, netns: 'iotagent-test-ns', backend: 'nft' }, () => []);
  }

  it('verifies the live state now and names what drifted', async () => {
    const access = await liveSite();
    const before = Date.now();
    const status = await access.status() as { drift: number; driftCheckedAt: string; driftCheckedBy: string; drifted: { kind: string; target: string; expected: string; actual: string }[] };
    expect(status.driftCheckedBy).toBe('agent');
    expect(Date.parse(status.driftCheckedAt)).toBeGreaterThanOrEqual(before - 1);
    expect(status.drift).toBe(status.drifted.length);
    expect(status.drifted).toContainEqual({ kind: 'sysctl', target: 'net.ipv4.tcp_syncookies', expected: '1', actual: '0' });
    expect(status.drifted).toContainEqual({ kind: 'firewall', target: 'iptables INPUT jump', expected: '-A INPUT -j IOT-AGENT-IN', actual: '(missing)' });
  });

  it('verifies against the records in the site\'s own state directory', async () => {
    standInPrograms({ ip: 'shift 3; case "$1" in *save) printf "*filter\\n:INPUT ACCEPT [0:0]\\nCOMMIT\\n" ;; sysctl) shift 2; for k in "$@"; do echo "$k = 0"; done ;; esac' });
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-live-'));
    const stateDir = path.join(root, 'state-elsewhere');
    const store = new Records(stateDir);
    await mkdir(store.dir, { recursive: true });
    await store.applied.write(appliedStrict().applied as never);
    const access = hardeningAccess({ root, stateDir, netns: 'iotagent-test-ns', backend: 'nft' }, () => []);
    const status = await access.status();
    expect(status).toMatchObject({ profile: 'strict', driftCheckedBy: 'agent' });
    expect(status.drift).toBeGreaterThan(0);
  });

  it('loads the profile it applies in process by name from the site, never through the unit', async () => {
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-inprocess-'));
    // No confirm targets: were this apply sent to the unit, it would be refused for that before anything ran.
    const access = hardeningAccess({ root, backend: 'auto', netns: 'iotagent-none', confirmTargets: [] }, () => []);
    await expect(access.apply('no-such-profile', 5)).rejects.toThrow('no profile "no-such-profile"');
  });

  it('names why the live state could not be verified', async () => {
    const access = await liveSite('echo "Cannot open network namespace \\"iotagent-test-ns\\": No such file or directory" >&2; exit 1');
    expect(await access.summary()).toMatchObject({ profile: 'strict', drift: null, driftError: stringMatching(/Cannot open network namespace/) });
  });
});

