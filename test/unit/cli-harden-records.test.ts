import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { hardenApply, hardenGuard, hardenRollback, hardenVerify } from '../../agent/cli/harden.js';
import { writeAssignment } from '../../agent/state/assignment-store.js';
import { encodeApplyRequest } from '../../hardening/apply-request.js';
import { SITE_PROFILE_DIR } from '../../hardening/load-profile.js';
import { captureOutput } from '../support/output.js';
import { freePort } from '../support/ports.js';
import { stringMatching } from '../support/matchers.js';
import { hardenBoard, type Board } from './harden-cli-board.js';
import { restorePath } from './stand-in-programs.js';

/** What the root commands of `iot-agent harden` leave behind for later readers, on scratch boards (harden-cli-board.ts). */
const cleanups: (() => void)[] = [];
afterEach(() => {
  restorePath();
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});
const board = () => hardenBoard(cleanups);

/** A record file made unwritable: a directory stands where it goes. */
const blockRecord = (b: Board, name: string) => mkdirSync(path.join(b.records.dir, name, 'in-the-way'), { recursive: true });

describe('the measurements of the root commands', () => {
  it('name the command that made each change: apply and rollback the CLI, the boot unit, the guard', async () => {
    const b = await board();
    b.endpoints('answering');
    // No TPM answers there: each measurement is recorded as a gap, with what was measured.
    const options = { ...b.options, tpm: `swtpm:port=${await freePort()}` };
    await captureOutput(() => hardenApply({ ...options, confirmHost: ['hub.example:8883'], confirmTimeout: '5' }));
    await captureOutput(() => hardenApply({ ...options, profile: 'strict' }));
    await captureOutput(() => hardenApply({ ...options, boot: true }));
    b.endpoints('cut off by the rules');
    const guard = await captureOutput(() => hardenGuard({ ...options, confirmHost: ['hub.example:8883'], grace: '1' }));
    expect(guard.stdout).toContain('\nReverted: ');
    await captureOutput(() => hardenRollback(options));
    const log = JSON.parse(readFileSync(path.join(b.records.dir, 'pcr-events.json'), 'utf8')) as { events: { data: string }[] };
    expect(log.events.map((e) => JSON.parse(e.data) as { op: string; by: string; profile: string }).map(({ op, by, profile }) => [op, by, profile])).toEqual([
      ['apply', 'cli', 'baseline'], ['apply', 'cli', 'strict'], ['apply', 'boot', 'strict'], ['apply', 'guard', 'baseline'], ['rollback', 'cli', 'strict'],
    ]);
  });
});

describe('records the root commands cannot write', () => {
  it('are warned of, once each, while the command itself reports as usual', async () => {
    const b = await board();
    b.endpoints('answering');
    blockRecord(b, 'verified.json');
    const warning = (what: string) => stringMatching(new RegExp(`^iot-agent: warning: could not record ${what}: [^\\n]+\\n$`));
    expect(await captureOutput(() => hardenApply(b.options))).toMatchObject({ result: 0, stdout: stringMatching(/^Applied profile baseline/), stderr: warning('the verify result') });
    expect(await captureOutput(() => hardenApply({ ...b.options, boot: true }))).toMatchObject({ result: 0, stderr: warning('the verify result') });
    expect(await captureOutput(() => hardenGuard({ ...b.options, confirmHost: ['hub.example:8883'], grace: '5' }))).toMatchObject({
      result: 0, stdout: stringMatching(/\nConfirmed after 1 probe round/), stderr: warning('the verify result'),
    });
    rmSync(path.join(b.records.dir, 'last-apply.json'));
    blockRecord(b, 'last-apply.json');
    const failed = await captureOutput(() => hardenApply({ ...b.options, profile: 'no-such-profile' }));
    expect(failed).toMatchObject({ error: { message: stringMatching(/no profile "no-such-profile"/) }, stderr: warning('the apply outcome') });
  });

  it('leave the last verify result alone when the boot falls back to the fail-closed rules, noting why', async () => {
    const b = await board();
    await captureOutput(() => hardenApply(b.options));
    expect(await b.records.verified.read()).toMatchObject({ by: 'apply' });
    // The boot cannot record its outcome: it loads the fail-closed rules, and says so in its notes.
    blockRecord(b, 'boot.json');
    const text = await captureOutput(() => hardenApply({ ...b.options, boot: true }));
    expect(text.result).toBe(1);
    expect(text.stdout).toMatch(/^Boot: applied profile \(not yet confirmed\)\n( {2}note: [^\n]+\n)*? {2}note: could not record the boot outcome: [^\n]+\n$/);
    expect(await b.records.verified.read()).toMatchObject({ by: 'apply' });
  });
});

describe('profiles of the site, under --root', () => {
  it('are applied by name, on request, at boot and verified against', async () => {
    const b = await board();
    b.endpoints('answering');
    const root = b.options.root!;
    mkdirSync(path.join(root, SITE_PROFILE_DIR), { recursive: true });
    writeFileSync(path.join(root, SITE_PROFILE_DIR, 'site.yaml'), 'extends: baseline\n');
    expect((await captureOutput(() => hardenApply({ ...b.options, boot: true, profile: 'site' }))).stdout).toMatch(/\nApplied profile site /);
    expect((await captureOutput(() => hardenVerify({ ...b.options, profile: 'site' }))).stdout).toMatch(/^Profile site \([0-9a-f]{12}\), applied [0-9a-f]{12}\n(.*\n)*No drift\n$/);
    await captureOutput(() => hardenApply({ ...b.options, profile: 'strict' }));
    expect((await captureOutput(() => hardenApply({ ...b.options, profile: 'site' }))).stdout).toMatch(/^Applied profile site /);
    await captureOutput(() => hardenApply({ ...b.options, profile: 'strict' }));
    const request = path.join(root, 'request.json');
    writeFileSync(request, encodeApplyRequest({ requestId: 'req-7', profile: 'site', confirmTimeoutSeconds: 5, confirmTargets: [{ host: 'hub.example', port: 8883 }] }));
    expect((await captureOutput(() => hardenApply({ ...b.options, profile: 'site', request }))).stdout).toMatch(/^Applied profile site .*, confirmed\n/);
  });
});

describe('the guard\'s endpoints', () => {
  it('are DPS alone when the cached assignment cannot be read, and the hub\'s MQTT port when what was learnt is unusable', async () => {
    const b = await board();
    b.endpoints('answering');
    const stateDir = path.join(b.options.root!, 'agent-state');
    const guarded = async (profile: string) => {
      await captureOutput(() => hardenApply({ ...b.options, profile }));
      const { stdout } = await captureOutput(() => hardenGuard({ ...b.options, json: true }));
      return JSON.parse(stdout) as { targets: string[]; targetSource: string };
    };
    mkdirSync(path.join(stateDir, 'assignment.json'), { recursive: true });
    expect(await guarded('baseline')).toEqual(expect.objectContaining({
      targets: ['dps.example:443'], targetSource: stringMatching(/^DPS \(cached assignment unusable: .+\)$/),
    }));
    await writeAssignment(path.join(b.options.root!, 'other-state'), {
      assignedHub: 'hub-a.example', deviceId: 'board-17', registrationId: 'board-17', idScope: '0ne00DPS', globalEndpoint: 'dps.example',
      assignedAt: '2026-11-26T02:30:00.000Z', identityKeyHandle: 0x81000100,
    });
    writeFileSync(path.join(b.options.root!, 'config.yaml'), `stateDir: ${path.join(b.options.root!, 'other-state')}\nprovisioning:\n  globalEndpoint: dps.example\n`);
    writeFileSync(path.join(b.options.root!, 'other-state', 'hub-protocol.json'), '{"kind":"something else"}');
    expect((await guarded('strict')).targets).toEqual(['hub-a.example:8883', 'dps.example:443']);
  });

  it('are listed in the guard\'s first line, and --confirm-timeout takes up to an hour', async () => {
    const b = await board();
    b.endpoints('answering');
    const confirmHost = ['hub.example:8883', 'dps.example:443'];
    expect((await captureOutput(() => hardenApply({ ...b.options, confirmHost, confirmTimeout: '3600' }))).stdout).toMatch(/, confirmed\n/);
    await captureOutput(() => hardenApply({ ...b.options, profile: 'strict' }));
    const text = await captureOutput(() => hardenGuard({ ...b.options, confirmHost, grace: '5' }));
    expect(text.stdout).toMatch(/^Guarding for up to 5 s: hub\.example:8883, dps\.example:443 \(--confirm-host\)\n/);
  });
});
