import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseHardeningEvent } from '../../agent/attestation/hardening-event.js';
import { AttestedBoard, messageOf, statuses } from '../support/attested-board.js';
import { objectAt, objectsAt, parseObject } from '../support/json.js';
import { stringMatching } from '../support/matchers.js';

const run = promisify(execFile);
const VERIFY_CLI = path.resolve('dist/verifier/cli.js');
const ALL_PASS = { reply: 'pass', signature: 'pass', nonce: 'pass', 'pcr-selection': 'pass', 'pcr-values': 'pass', 'event-log': 'pass', measured: 'pass', twin: 'pass', golden: 'skip' };

/**
 * The whole path, as an operator meets it: the board measures its hardening at boot and at
 * every change, and the verifier (the `iot-agent-verify` process and the library) binds the
 * AK through the enrolled EK and checks a fresh quote through IoT Hub, with the unmodified
 * azure-iothub and provisioning service SDKs.
 */
describe('proving a board\'s posture through the local cloud', () => {
  let board: AttestedBoard;

  beforeAll(async () => {
    board = await AttestedBoard.start('board-attest');
    const boot = await board.bootApply('baseline');
    expect(boot.code, boot.stderr).toBe(0);
    expect(JSON.parse(boot.stdout)).toMatchObject({ profile: 'baseline', measurement: { outcome: 'extended', pcr: 13, seq: 1 } });
    await board.startAgent();
  }, 90_000);
  afterAll(async () => {
    await board?.stop();
  });

  it('binds the AK and verifies a fresh quote with iot-agent-verify: every check passes, baseline measured at boot', async () => {
    const bindings = mkdtempSync(path.join(tmpdir(), 'iot-agent-verify-cli-'));
    try {
      const args = [VERIFY_CLI, '--device', board.dc.deviceId, '--hub-connection-string', board.dc.hub.serviceConnectionString,
        '--dps-connection-string', board.dc.cloud.dps.serviceConnectionString, '--bindings', bindings, '--json'];
      const env = { ...process.env, NODE_EXTRA_CA_CERTS: board.dc.cloud.caCertPath };
      const { stdout } = await run(process.execPath, args, { env, timeout: 60_000 });
      const verdict = parseObject(stdout, 'iot-agent-verify --json');
      expect(verdict, stdout).toMatchObject({ deviceId: board.dc.deviceId, ok: true, binding: { boundNow: true } });
      expect(Object.fromEntries(objectsAt(verdict, 'checks').map((c) => [c.id, c.status]))).toEqual(ALL_PASS);
      expect(verdict.posture).toMatchObject({ profile: 'baseline', measuredBy: 'boot', events: [{ seq: 1, measured: true, op: 'apply', by: 'boot', profile: 'baseline' }] });

      // Bound once: the second run only quotes, and prints for a person.
      const again = await run(process.execPath, args.filter((a) => a !== '--json'), { env, timeout: 60_000 });
      expect(again.stdout).toMatch(/^board-attest: PASS\n/);
      expect(again.stdout).toMatch(/profile baseline \([0-9a-f]{12}\), since .* \(by boot\)/);
    } finally {
      rmSync(bindings, { recursive: true, force: true });
    }
  }, 90_000);

  it('the twin reports the hardening PCR, the AK name and the last quote, never a verdict', async () => {
    const verdict = await board.verify();
    expect(verdict.ok).toBe(true);
    const attestation = await board.dc.waitFor('twin attestation', async () => {
      const a = (await board.dc.reported()).attestation as { lastQuoteAt?: string } | undefined;
      return a?.lastQuoteAt ? a : undefined;
    });
    expect(attestation).toEqual({ pcr: 13, akName: verdict.binding.akName, lastQuoteAt: stringMatching(/^\d{4}-/) });
  }, 60_000);

  it('a profile applied after boot is a further event, and the board still verifies with the new profile', async () => {
    const before = board.eventLog().events.length;
    const ack = await board.dc.invoke('applyHardening', { profile: 'strict', confirmTimeoutSec: 10 });
    expect(ack.status).toBe(202);
    await board.dc.waitFor('twin hardening strict', async () => ((await board.dc.reported()).hardening as { profile?: string }).profile === 'strict', 30_000);
    const log = board.eventLog();
    expect(log.events).toHaveLength(before + 1);
    expect(parseHardeningEvent(log.events.at(-1)!.data)).toMatchObject({ op: 'apply', by: 'agent', profile: 'strict' });

    const verdict = await board.verify();
    expect(statuses(verdict), JSON.stringify(verdict.checks)).toEqual(ALL_PASS);
    expect(verdict.posture).toMatchObject({ profile: 'strict', measuredBy: 'agent' });
    expect(verdict.posture!.events.map((e) => e.profile)).toEqual(['baseline', 'strict']);
  }, 90_000);

  it('matches golden boot PCRs written from a verified quote, and fails on others', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-golden-'));
    try {
      const first = await board.verify();
      expect(first.ok).toBe(true);
      const { writeGolden, readGolden } = await import('../../verifier/index.js');
      await writeGolden(path.join(dir, 'golden.json'), first.pcrValues!);
      expect(Object.keys(objectAt(parseObject(readFileSync(path.join(dir, 'golden.json'), 'utf8')), 'sha256'))).toEqual(['0', '1', '2', '3', '4', '5', '6', '7']);
      const golden = await readGolden(path.join(dir, 'golden.json'));
      expect(statuses(await board.verify({ golden })).golden).toBe('pass');
      golden.set(0, Buffer.alloc(32, 0xab));
      const other = await board.verify({ golden });
      expect(statuses(other).golden).toBe('fail');
      expect(messageOf(other, 'golden')).toMatch(/PCR 0 differ/);
      expect(other.ok).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('a reboot (swtpm restarted on its state: TPM2_Startup(CLEAR)) starts a fresh log that verifies', async () => {
    const before = board.eventLog();
    expect(before.events.length).toBeGreaterThanOrEqual(2);
    await board.stopAgent();
    await board.dc.swtpm.restart();
    const boot = await board.bootApply('baseline');
    expect(boot.code, boot.stderr).toBe(0);
    const after = board.eventLog();
    // The applied profile (strict) is re-applied at boot: one event, in a log for the new TPM boot.
    expect(after.events).toHaveLength(1);
    expect(after.tpmResetCount).toBe(before.tpmResetCount! + 1);
    expect(parseHardeningEvent(after.events[0]!.data)).toMatchObject({ by: 'boot', profile: 'strict' });

    await board.startAgent();
    const verdict = await board.verify();
    expect(statuses(verdict), JSON.stringify(verdict.checks)).toEqual(ALL_PASS);
    expect(verdict.binding.now).toBe(false); // the AK persisted in the TPM: still bound
    expect(verdict.posture).toMatchObject({ profile: 'strict', measuredBy: 'boot', tpmResetCount: after.tpmResetCount, events: [{ seq: 1 }] });
  }, 120_000);
});
