import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hardenApply, hardenGuard, hardenRollback, hardenVerify } from '../../agent/cli/harden.js';
import { writeAssignment } from '../../agent/state/assignment-store.js';
import { encodeApplyRequest } from '../../hardening/apply-request.js';
import { Records } from '../../hardening/records.js';
import { captureOutput } from '../support/output.js';
import { freePort } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { ofType, stringMatching } from '../support/matchers.js';
import { hardenBoard, hash12 } from './harden-cli-board.js';
import { restorePath } from './stand-in-programs.js';

/** The root commands of `iot-agent harden` for real, on scratch boards (harden-cli-board.ts). */
const cleanups: (() => void)[] = [];
afterEach(() => {
  restorePath();
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});
const board = () => hardenBoard(cleanups);

describe('iot-agent harden apply', () => {
  it('applies the baseline profile, says so on one line, and records the outcome and the verify result', async () => {
    const b = await board();
    const apply = await captureOutput(() => hardenApply(b.options));
    expect(apply).toMatchObject({ result: 0, stderr: '', stdout: stringMatching(/^Applied profile baseline \([0-9a-f]{12}\) in \d+ ms\n$/) });
    expect(apply.stdout).toContain(`(${await hash12(b)})`);
    expect(await b.records.lastApply.read()).toEqual({
      requestId: null, invocationId: process.env.INVOCATION_ID ?? null, profile: 'baseline', finishedAt: ofType(String),
      report: { profile: 'baseline', hash: ofType(String), changed: true, confirmed: false, rolledBack: false, notes: [], durationMs: ofType(Number) },
    });
    expect(await b.records.verified.read()).toMatchObject({ profile: 'baseline', drift: 0, by: 'apply' });
    const again = await captureOutput(() => hardenApply({ ...b.options, json: true }));
    expect(again.result).toBe(0);
    expect(again.stdout.endsWith('}\n')).toBe(true);
    expect(JSON.parse(again.stdout)).toEqual({
      profile: 'baseline', hash: (await b.records.applied.read())!.hash, changed: false, confirmed: false, rolledBack: false, notes: [], durationMs: ofType(Number),
    });
    const text = await captureOutput(() => hardenApply({ ...b.options, profile: 'baseline' }));
    expect(text.stdout).toBe(`Profile baseline (${await hash12(b)}) is already applied: nothing changed\n`);
  });

  it('rolls back when the confirm targets stop answering: exit 1, the reason once on stderr, the probes on stdout', async () => {
    const b = await board();
    b.endpoints('cut off by the rules');
    const options = { ...b.options, profile: 'strict', confirmHost: ['hub.example:8883'], confirmTimeout: '1' };
    const text = await captureOutput(() => hardenApply(options));
    expect(text.result).toBe(1);
    const reason = 'not reachable within 1 s after applying strict (hub.example:8883: ECONNREFUSED); previous state restored';
    expect(text.stdout).toMatch(/^Profile strict \([0-9a-f]{12}\) was applied and rolled back; the targets answer again\n {2}unreachable hub\.example:8883: ECONNREFUSED\n$/);
    expect(text.stderr).toBe(`iot-agent: ${reason}\n`);
    expect((await b.records.lastApply.read())!.report).toMatchObject({ profile: 'strict', changed: true, rolledBack: true, reason });
    const json = await captureOutput(() => hardenApply({ ...options, json: true }));
    expect(json).toMatchObject({ result: 1, stderr: '' });
    expect(JSON.parse(json.stdout)).toMatchObject({ profile: 'strict', rolledBack: true, reconnected: true, reason, probes: [{ target: 'hub.example:8883', ok: false, detail: 'ECONNREFUSED' }] });
  });

  it('says the change is confirmed when the targets answer under it, with each probe', async () => {
    const b = await board();
    b.endpoints('answering');
    const { result, stdout } = await captureOutput(() => hardenApply({ ...b.options, confirmHost: ['hub.example:8883'], confirmTimeout: '5' }));
    expect(result).toBe(0);
    expect(stdout).toMatch(/^Applied profile baseline \([0-9a-f]{12}\) in \d+ ms, confirmed\n {2}reachable {3}hub\.example:8883: TLS handshake completed \(TLSv1\.3\)\n$/);
  });

  it('records the error of an apply that failed, with the unit\'s invocation id and at most 64 characters of the name', async () => {
    const b = await board();
    const name = `no-such-profile-${'x'.repeat(60)}`;
    process.env.INVOCATION_ID = '6c1e0d2a9f2b4c8e9d3f6a1b2c3d4e5f';
    cleanups.push(() => delete process.env.INVOCATION_ID);
    const { error } = await captureOutput(() => hardenApply({ ...b.options, profile: name }));
    expect(error).toMatchObject({ message: stringMatching(/^invalid profile name "no-such-profile-x+"/), exitCode: 2 });
    expect(await b.records.lastApply.read()).toEqual({
      requestId: null, invocationId: '6c1e0d2a9f2b4c8e9d3f6a1b2c3d4e5f', profile: name.slice(0, 64), finishedAt: ofType(String), error: (error as Error).message,
    });
  });

  it('applies what the agent\'s request file asks, confirming against its targets, and records its id', async () => {
    const b = await board();
    b.endpoints('answering');
    const request = path.join(b.options.root!, 'request.json');
    writeFileSync(request, encodeApplyRequest({ requestId: 'req-42', profile: 'strict', confirmTimeoutSeconds: 5, confirmTargets: [{ host: 'hub.example', port: 8883 }] }));
    const { result, stdout, stderr } = await captureOutput(() => hardenApply({ ...b.options, profile: 'strict', request }));
    expect({ result, stderr }).toEqual({ result: 0, stderr: '' });
    expect(stdout).toMatch(/^Applied profile strict \([0-9a-f]{12}\) in \d+ ms, confirmed\n {2}reachable {3}hub\.example:8883: TLS handshake completed \(TLSv1\.3\)\n$/);
    expect(await b.records.lastApply.read()).toMatchObject({ requestId: 'req-42', profile: 'strict', report: { confirmed: true } });
    // A request names a profile, never a file.
    const file = path.join(b.options.root!, 'site.yaml');
    writeFileSync(file, 'extends: baseline\n');
    const byPath = await captureOutput(() => hardenApply({ ...b.options, profile: file, request }));
    expect(byPath.error).toMatchObject({ exitCode: 2 });
    expect((await b.records.lastApply.read())!.requestId).toBeNull();
  });

  it('warns, once, when it cannot record the outcome, and still reports the apply', async () => {
    const b = await board();
    mkdirSync(path.join(b.records.dir, 'last-apply.json', 'in-the-way'), { recursive: true });
    const { result, stdout, stderr } = await captureOutput(() => hardenApply(b.options));
    expect(result).toBe(0);
    expect(stdout).toMatch(/^Applied profile baseline/);
    expect(stderr).toMatch(/^iot-agent: warning: could not record the apply outcome: [^\n]+\n$/);
  });

  it('keeps its records in the --state-dir given', async () => {
    const b = await board();
    const stateDir = path.join(b.options.root!, 'elsewhere');
    expect((await captureOutput(() => hardenApply({ ...b.options, stateDir }))).result).toBe(0);
    expect(await new Records(stateDir).applied.read()).toMatchObject({ profile: { name: 'baseline' } });
    expect(await b.records.applied.read()).toBeNull();
  });
});

describe('iot-agent harden verify and rollback', () => {
  it('verifies item by item, exit 0 without drift and 1 with it, as text or JSON', async () => {
    const b = await board();
    await captureOutput(() => hardenApply(b.options));
    const clean = await captureOutput(() => hardenVerify(b.options));
    expect(clean.result).toBe(0);
    const lines = clean.stdout.split('\n');
    expect(lines[0]).toBe(`Profile baseline (${await hash12(b)}), applied ${await hash12(b)}`);
    expect(lines).toContain('ok    sysctl   net.ipv4.tcp_syncookies');
    expect(lines.at(-2)).toBe('No drift');
    await b.run(['sysctl', '-w', 'net.ipv4.tcp_syncookies=0']);
    const drifted = await captureOutput(() => hardenVerify(b.options));
    expect(drifted.result).toBe(1);
    expect(drifted.stdout).toContain('\nDRIFT sysctl   net.ipv4.tcp_syncookies: expected 1, found 0\n');
    expect(drifted.stdout.endsWith('\n1 item(s) drifted\n')).toBe(true);
    const json = await captureOutput(() => hardenVerify({ ...b.options, json: true }));
    expect(json.result).toBe(1);
    const report = JSON.parse(json.stdout) as { drift: number; items: unknown[] };
    expect(report).toMatchObject({ profile: 'baseline', appliedHash: (await b.records.applied.read())!.hash, drift: 1 });
    expect(report.items).toContainEqual({ kind: 'sysctl', target: 'net.ipv4.tcp_syncookies', ok: false, expected: '1', actual: '0' });
  });

  it('verifies against the profile named with --profile, and says when none was applied', async () => {
    const b = await board();
    const { result, stdout } = await captureOutput(() => hardenVerify({ ...b.options, profile: 'strict' }));
    expect(result).toBe(1);
    expect(stdout).toMatch(/^Profile strict \([0-9a-f]{12}\), applied none recorded\n/);
  });

  it('restores the snapshot of the last apply, and says when other software changed the firewall since', async () => {
    const b = await board();
    await captureOutput(() => hardenApply(b.options));
    const json = await captureOutput(() => hardenRollback({ ...b.options, json: true }));
    expect(json.result).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ restoredTo: ofType(String), exact: true, notes: [] });
    await captureOutput(() => hardenApply(b.options));
    await b.run(['iptables', '-A', 'INPUT', '-s', '192.0.2.7', '-j', 'ACCEPT']);
    const text = await captureOutput(() => hardenRollback(b.options));
    expect(text).toMatchObject({ result: 0, stderr: '' });
    expect(text.stdout).toMatch(/^Restored the state of \S+ \(the filter table differs from the snapshot: other software changed it since\)\n/);
  });
});

describe('what the root commands measure', () => {
  it('says when the TPM given with --tpm could not take the measurement, as a gap, with a warning', async () => {
    const b = await board();
    const port = await freePort();
    const config = path.join(mkdtempSync(path.join(tmpdir(), 'iot-agent-harden-config-')), 'config.yaml');
    writeFileSync(config, 'attestation:\n  pcr: 14\n');
    const text = await captureOutput(() => hardenApply({ ...b.options, config, tpm: `swtpm:port=${port}` }));
    expect(text.result).toBe(0);
    const [applied, measured] = text.stdout.split('\n');
    expect(applied).toMatch(/^Applied profile baseline/);
    expect(measured).toMatch(/^ {2}not measured into PCR 14: TPM unavailable: .+ \(recorded as a gap, event 1\)$/);
    expect(text.stderr).toMatch(/^iot-agent: warning: hardening not measured into PCR 14: TPM unavailable: /);
    const rollback = await captureOutput(() => hardenRollback({ ...b.options, config, tpm: `swtpm:port=${port}` }));
    expect(rollback.stdout).toMatch(/^Restored the state of \S+\n {2}not measured into PCR 14: TPM unavailable: .+ \(recorded as a gap, event 2\)\n$/);
    await captureOutput(() => hardenApply({ ...b.options, config, tpm: `swtpm:port=${port}` }));
    const json = await captureOutput(() => hardenRollback({ ...b.options, config, tpm: `swtpm:port=${port}`, json: true }));
    expect(JSON.parse(json.stdout)).toEqual({ restoredTo: ofType(String), exact: true, notes: [], measurement: {
      outcome: 'gap', pcr: 14, seq: 4, reason: stringMatching(/^TPM unavailable: /),
    } });
  });
});

describe('what the root commands measure into a TPM that answers', () => {
  it('says it measured the change, and that the PCR already holds a state applied again', async () => {
    const b = await board();
    const tpm = await SwtpmInstance.start();
    cleanups.push(() => void tpm.stop());
    const first = await captureOutput(() => hardenApply({ ...b.options, tpm: tpm.transport }));
    expect(first).toMatchObject({ result: 0, stderr: '' });
    expect(first.stdout).toMatch(/^Applied profile baseline \([0-9a-f]{12}\) in \d+ ms\n {2}measured into PCR 13 \(event 1\)\n$/);
    const again = await captureOutput(() => hardenApply({ ...b.options, tpm: tpm.transport }));
    expect(again.stdout).toBe(`Profile baseline (${await hash12(b)}) is already applied: nothing changed\n  PCR 13 already holds this state\n`);
    const json = await captureOutput(() => hardenApply({ ...b.options, tpm: tpm.transport, json: true }));
    expect(JSON.parse(json.stdout)).toMatchObject({ changed: false, measurement: { outcome: 'unchanged', pcr: 13 } });
  }, 60_000);
});

describe('iot-agent harden apply --boot', () => {
  it('applies the configured profile on the first boot, and names the choice', async () => {
    const b = await board();
    const text = await captureOutput(() => hardenApply({ ...b.options, boot: true }));
    expect(text).toMatchObject({ result: 0, stderr: '' });
    expect(text.stdout).toMatch(/^Boot: no profile recorded yet: the configured one\nApplied profile baseline \([0-9a-f]{12}\) in \d+ ms\n$/);
    expect(await b.records.verified.read()).toMatchObject({ profile: 'baseline', drift: 0, by: 'boot' });
    expect(await b.records.lastApply.read()).toBeNull();
    const json = await captureOutput(() => hardenApply({ ...b.options, boot: true, json: true, profile: 'strict' }));
    expect(json.result).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({
      profile: 'baseline', hash: (await b.records.applied.read())!.hash, changed: false, confirmed: false, rolledBack: false, notes: [], durationMs: ofType(Number),
      chosen: 'applied profile (not yet confirmed)',
    });
  });

  it('loads the fail-closed rules when the profile cannot be applied: exit 1, the error once on stderr', async () => {
    const b = await board();
    const text = await captureOutput(() => hardenApply({ ...b.options, boot: true, profile: 'no-such-profile' }));
    expect(text.result).toBe(1);
    expect(text.stdout).toBe('Boot: no profile recorded yet: the configured one\n');
    expect(text.stderr).toMatch(/^iot-agent: the boot profile could not be applied \(.*no profile "no-such-profile".*\); the fail-closed rule set is loaded instead\n$/);
    expect(await b.run(['iptables-save'])).toMatch(/-A IOT-AGENT-OUT -p tcp -m tcp --dport 443 -j ACCEPT\n(.*\n)*-A IOT-AGENT-OUT -j REJECT/);
    const json = await captureOutput(() => hardenApply({ ...b.options, boot: true, profile: 'no-such-profile', json: true }));
    expect(json.result).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual({ chosen: 'no profile recorded yet: the configured one', failClosed: true, error: stringMatching(/no profile "no-such-profile"/), notes: [] });
    expect(await b.records.verified.read()).toBeNull();
  });
});

describe('iot-agent harden guard', () => {
  it('confirms an applied profile when the endpoints answer, and makes it known good', async () => {
    const b = await board();
    b.endpoints('answering');
    await captureOutput(() => hardenApply(b.options));
    const text = await captureOutput(() => hardenGuard({ ...b.options, confirmHost: ['hub.example:8883'], grace: '5' }));
    expect(text).toMatchObject({ result: 0, stderr: '' });
    expect(text.stdout).toBe('Guarding for up to 5 s: hub.example:8883 (--confirm-host)\n'
      + 'Confirmed after 1 probe round(s): hub.example:8883 answered: the applied profile is now known good\n'
      + '  reachable   hub.example:8883: TLS handshake completed (TLSv1.3)\n');
    expect((await b.records.knownGood.read())!.hash).toBe((await b.records.applied.read())!.hash);
    expect(await b.records.verified.read()).toMatchObject({ by: 'guard' });
    const json = await captureOutput(() => hardenGuard({ ...b.options, json: true }));
    expect(JSON.parse(json.stdout)).toEqual({ status: 'nothing-to-guard', reason: stringMatching(/^profile baseline \([0-9a-f]{12}\) is already known good$/) });
  });

  it('guards the endpoints the agent config names, for the grace time the config gives', async () => {
    const b = await board();
    b.endpoints('answering');
    await captureOutput(() => hardenApply(b.options));
    const config = (grace: number) => writeFileSync(b.options.config!,
      `stateDir: ${path.join(b.options.root!, 'agent-state')}\nprovisioning:\n  globalEndpoint: dps.example\nhardening:\n  bootGraceSeconds: ${grace}\n`);
    config(7);
    expect((await captureOutput(() => hardenGuard(b.options))).error).toMatchObject({
      message: `config ${b.options.config}: hardening.bootGraceSeconds: 7 is not valid: expected a whole number from 30 to 3600`, exitCode: 2,
    });
    config(45);
    const json = await captureOutput(() => hardenGuard({ ...b.options, json: true }));
    expect(json.result).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({
      status: 'confirmed', reason: 'dps.example:443 answered: the applied profile is now known good', rounds: 1,
      probes: [{ target: 'dps.example:443', ok: true, detail: 'TLS handshake completed (TLSv1.3)' }],
      targets: ['dps.example:443'], targetSource: 'DPS (not provisioned yet)', graceSeconds: 45,
    });
  });

  it('guards the cached assignment\'s hub on the port the agent learnt, or DPS alone when the assignment is unusable', async () => {
    const b = await board();
    b.endpoints('answering');
    const stateDir = path.join(b.options.root!, 'agent-state');
    await writeAssignment(stateDir, {
      assignedHub: 'hub-a.example', deviceId: 'board-17', registrationId: 'board-17', idScope: '0ne00DPS', globalEndpoint: 'dps.example',
      assignedAt: '2026-11-26T02:30:00.000Z', identityKeyHandle: 0x81000100,
    });
    // Each guard confirms the profile applied before it: the next one applies the other, not known good.
    const guarded = async (profile: string) => {
      await captureOutput(() => hardenApply({ ...b.options, profile }));
      const { stdout } = await captureOutput(() => hardenGuard({ ...b.options, json: true }));
      return JSON.parse(stdout) as { targets: string[]; targetSource: string };
    };
    expect(await guarded('baseline')).toMatchObject({ targets: ['hub-a.example:8883', 'dps.example:443'], targetSource: 'assigned hub (cached assignment) and DPS' });
    writeFileSync(path.join(stateDir, 'hub-protocol.json'), JSON.stringify({ kind: 'iot-agent/hub-protocol', version: 1, protocol: 'mqtt-ws', since: '2026-11-26T02:30:00.000Z', retryMqttAfter: '2099-01-01T00:00:00.000Z' }));
    expect((await guarded('strict')).targets).toEqual(['hub-a.example:443', 'dps.example:443']);
    writeFileSync(path.join(stateDir, 'assignment.json'), '{"truncated');
    expect(await guarded('baseline')).toMatchObject({ targets: ['dps.example:443'], targetSource: stringMatching(/^DPS \(cached assignment unusable: .+\)$/) });
  });

  it('reverts to the known good profile when the endpoints stay away for the grace time', async () => {
    const b = await board();
    b.endpoints('answering');
    await captureOutput(() => hardenApply({ ...b.options, confirmHost: ['hub.example:8883'], confirmTimeout: '5' }));
    await captureOutput(() => hardenApply({ ...b.options, profile: 'strict' }));
    b.endpoints('cut off by the rules');
    const text = await captureOutput(() => hardenGuard({ ...b.options, confirmHost: ['hub.example:8883'], grace: '1' }));
    expect(text).toMatchObject({ result: 0, stderr: '' });
    expect(text.stdout).toMatch(new RegExp('^Guarding for up to 1 s: hub\\.example:8883 \\(--confirm-host\\)\n'
      + 'Reverted: endpoints unreachable for \\d+ s with an unconfirmed profile applied \\(hub\\.example:8883: ECONNREFUSED\\): reverted to the last known good profile baseline\n'
      + ' {2}the targets still do not answer\n {2}unreachable hub\\.example:8883: ECONNREFUSED\n$'));
    expect((await b.records.applied.read())!.profile.name).toBe('baseline');
  });

  it('keeps a profile it has nothing to go back from, and says why', async () => {
    const b = await board();
    await captureOutput(() => hardenApply({ ...b.options, profile: 'strict' }));
    b.endpoints('cut off by the rules');
    const json = await captureOutput(() => hardenGuard({ ...b.options, confirmHost: ['hub.example:8883'], grace: '1', json: true }));
    expect(json.result).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({
      status: 'kept', reason: 'no known good profile to go back to; last probe: hub.example:8883: ECONNREFUSED', targets: ['hub.example:8883'], targetSource: '--confirm-host', graceSeconds: 1,
    });
    const text = await captureOutput(() => hardenGuard({ ...b.options, confirmHost: ['hub.example:8883'], grace: '1' }));
    expect(text.stdout).toBe('Guarding for up to 1 s: hub.example:8883 (--confirm-host)\n'
      + 'Kept the applied profile: no known good profile to go back to; last probe: hub.example:8883: ECONNREFUSED\n'
      + '  unreachable hub.example:8883: ECONNREFUSED\n');
  });
});
