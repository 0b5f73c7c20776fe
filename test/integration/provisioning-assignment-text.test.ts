import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DpsError } from '../../agent/provisioning/dps-error.js';
import { registerWithDps } from '../../agent/provisioning/register.js';
import { assignmentPath, parseAssignment } from '../../agent/state/assignment-store.js';
import type { TpmClient } from '../../agent/tpm/tpm-client.js';
import { startDps, type Dps } from '../cloud/dps/dps.js';
import { RecordingHub } from '../cloud/dps/recording-hub.js';
import { runCli } from '../support/cli.js';
import { enrollBoard, readBoardIdentity, type EnrolledBoard } from '../support/enroll-board.js';
import { stringMatching } from '../support/matchers.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { clientFor } from '../support/tpm.js';

// The assigned hub and device id come from DPS and end up in MQTT credentials, the systemd
// status and the hardening confirm targets: a DPS answer with a control character in either
// is refused where it arrives, and nothing is cached.
describe('DPS text the agent refuses', () => {
  let hub: RecordingHub;
  let dir: string;
  let dps: Dps;
  let swtpm: SwtpmInstance;
  let tpm: TpmClient;
  let board: EnrolledBoard;
  let registrationId: string;

  beforeAll(async () => {
    hub = new RecordingHub('hub-a.cloud.test');
    dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-dps-text-'));
    [dps, swtpm] = await Promise.all([
      startDps({ address: randomLoopbackAddress(), stateDir: dir, linkedHubs: [hub], retryAfterSeconds: 1 }),
      SwtpmInstance.start(),
    ]);
    tpm = clientFor(swtpm.transport);
    board = await enrollBoard(dps, { deviceId: 'board-17', transport: swtpm.transport, identity: await readBoardIdentity(tpm) });
    registrationId = board.registrationId;
  });
  afterAll(async () => {
    await tpm?.close();
    await Promise.all([dps?.stop(), swtpm?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => dps.faults.clear());

  const options = () => ({ tpm, registrationId, idScope: dps.idScope, globalEndpoint: dps.host, ca: dps.ca });

  it.each([
    ['a newline and a systemd notify line in assignedHub', { assignedHub: 'hub-a.cloud.test\nWATCHDOG=trigger' }, /assignedHub "hub-a\.cloud\.test\\nWATCHDOG=trigger" is not a DNS host name or IP address/],
    ['a newline and MAINPID= in deviceId', { deviceId: 'board-17\nMAINPID=1' }, /deviceId "board-17\\nMAINPID=1" is not an IoT Hub device id/],
    ['a control character in deviceId', { deviceId: 'board\u0007-17' }, /deviceId "board\\u0007-17" is not an IoT Hub device id/],
    ['a slash and a port in assignedHub', { assignedHub: 'evil.example/x:443' }, /assignedHub "evil\.example\/x:443" is not a DNS host name/],
  ])('refuses an answer with %s, with a clear error', async (_name, override, message) => {
    dps.faults.assignedOverride = override;
    const err = await registerWithDps(options()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DpsError);
    expect((err as DpsError).message).toMatch(message);
    expect((err as DpsError).message).toMatch(/answered with an unusable assignment: .*; nothing was cached$/);
    expect((err as DpsError).message).not.toMatch(/\n/);
  });

  it('iot-agent provision says so on one line, exits non-zero and caches nothing', async () => {
    dps.faults.assignedOverride = { deviceId: 'board-17\nWATCHDOG=trigger' };
    await tpm.close();
    const files = board.writeConfig(path.join(dir, 'agent'));
    const result = await runCli(['--config', files.configPath, 'provision', '--force'], {}, 60_000);
    tpm = clientFor(swtpm.transport);
    expect(result.code, result.stdout + result.stderr).not.toBe(0);
    const errors = result.stderr.trim().split('\n').filter((l) => l.startsWith('iot-agent:'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/deviceId "board-17\\nWATCHDOG=trigger" is not an IoT Hub device id.*nothing was cached/);
    expect(existsSync(assignmentPath(files.stateDir))).toBe(false);
  });

  it('accepts an ordinary answer, every device id character IoT Hub allows included', async () => {
    dps.faults.assignedOverride = { deviceId: "a-b.c+d%e_f#g*h?i!j(k)l,m:n=o@p$q'r" };
    expect(await registerWithDps(options())).toEqual({ assignedHub: 'hub-a.cloud.test', deviceId: "a-b.c+d%e_f#g*h?i!j(k)l,m:n=o@p$q'r" });
  });

  it('treats a cached assignment with such text as unusable (not provisioned)', () => {
    const cached = (fields: Record<string, string>) => JSON.stringify({
      kind: 'iot-agent/assignment', schema: 1, assignedHub: 'hub-a.cloud.test', deviceId: 'board-17', registrationId: 'r', idScope: '0ne00000001',
      globalEndpoint: 'global.azure-devices-provisioning.net', assignedAt: '2026-11-26T03:00:00.000Z', ...fields,
    });
    expect(parseAssignment(cached({})).status).toBe('valid');
    expect(parseAssignment(cached({ assignedHub: 'hub\nWATCHDOG=trigger' }))).toEqual({ status: 'invalid', reason: stringMatching(/assignedHub .* is not a DNS host name/) });
    expect(parseAssignment(cached({ deviceId: 'x y' }))).toEqual({ status: 'invalid', reason: stringMatching(/deviceId "x y" is not an IoT Hub device id/) });
  });
});
