import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEventLogText, replayLog, type EventLog } from '../../agent/attestation/event-log.js';
import { parseHardeningEvent } from '../../agent/attestation/hardening-event.js';
import { pcrRead } from '../../agent/attestation/tpm-commands.js';
import { DEFAULT_STATE_DIR, HardeningEngine } from '../../hardening/engine.js';
import { EVENT_LOG_FILE } from '../../agent/attestation/hardening-measure.js';
import { runCli } from '../support/cli.js';
import { parseObject } from '../support/json.js';
import { stringMatching } from '../support/matchers.js';
import { filterTable, NetnsPair, requireHardeningTools } from '../support/netns.js';
import { freePortPair } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { clientFor } from '../support/tpm.js';

/**
 * The root CLI's measurements (the boot unit, harden-apply@, the guard and a technician all
 * run it): the real `iot-agent harden`, the firewall inside a namespace of the test's own,
 * a root directory of its own, and a swtpm named with --tpm (a test root never measures
 * into anything else).
 */
describe('harden apply, rollback and the boot path measure what they leave in force', () => {
  let pair: NetnsPair;
  let swtpm: SwtpmInstance;
  let dir: string;
  let config: string;
  let root: string;

  const harden = (args: string[], tpm: string | null = swtpm.transport, configPath = config) =>
    runCli(['--config', configPath, 'harden', ...args, '--root', root, '--netns', pair.device, '--backend', 'nft', '--json',
      ...(tpm === null ? [] : ['--tpm', tpm])], {}, 60_000);
  const log = (): EventLog => parseEventLogText(readFileSync(path.join(root, DEFAULT_STATE_DIR, EVENT_LOG_FILE), 'utf8'));
  const pcr13 = async () => {
    const client = clientFor(swtpm.transport);
    try {
      return (await pcrRead(client.transport, [13])).get(13)!;
    } finally {
      await client.close();
    }
  };

  beforeAll(async () => {
    requireHardeningTools(['ip', 'iptables-nft-save', 'iptables-nft-restore', 'sysctl', 'swtpm']);
    [pair, swtpm] = await Promise.all([NetnsPair.create(), SwtpmInstance.start()]);
    dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-measure-'));
    config = path.join(dir, 'config.yaml');
    writeFileSync(config, 'attestation:\n  pcr: 13\n');
    root = path.join(dir, 'root');
  });
  afterAll(async () => {
    await pair?.destroy();
    await swtpm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the boot path measures the profile it applies into the PCR, and logs it', async () => {
    const result = await harden(['apply', '--boot', '--profile', 'baseline']);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ profile: 'baseline', changed: true, measurement: { outcome: 'extended', pcr: 13, seq: 1 } });
    const events = log().events;
    expect(events).toHaveLength(1);
    expect(parseHardeningEvent(events[0]!.data)).toMatchObject({ op: 'apply', by: 'boot', profile: 'baseline', profileHash: parseObject(result.stdout).hash });
    expect(replayLog(log()).pcr).toEqual(await pcr13());
  });

  it('an apply that changes nothing adds no event; another profile, and a rollback, add one each', async () => {
    const same = await harden(['apply', '--profile', 'baseline']);
    expect(JSON.parse(same.stdout)).toMatchObject({ changed: false, measurement: { outcome: 'unchanged' } });
    expect(log().events).toHaveLength(1);

    const strict = await harden(['apply', '--profile', 'strict']);
    expect(JSON.parse(strict.stdout)).toMatchObject({ profile: 'strict', measurement: { outcome: 'extended', seq: 2 } });
    const rollback = await harden(['rollback']);
    expect(rollback.code, rollback.stderr).toBe(0);
    const events = log().events.map((e) => parseHardeningEvent(e.data));
    expect(events.map((e) => [e.op, e.by, e.profile])).toEqual([['apply', 'boot', 'baseline'], ['apply', 'cli', 'strict'], ['rollback', 'cli', 'baseline']]);
    expect(replayLog(log()).pcr).toEqual(await pcr13());
  });

  it('without a TPM the profile is applied all the same, and the gap is recorded and said', async () => {
    const closed = await freePortPair();
    const result = await harden(['apply', '--profile', 'strict'], `swtpm:host=127.0.0.1,port=${closed}`);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ profile: 'strict', changed: true, measurement: { outcome: 'gap', seq: 4 } });
    expect(result.stderr).toMatch(/warning: hardening not measured into PCR 13: TPM unavailable/);
    expect(await filterTable(pair, 'iptables-nft-save')).toMatch(/IOT-AGENT/);
    const last = log().events.at(-1)!;
    expect(last).toMatchObject({ extended: false, reason: stringMatching(/^TPM unavailable/) });
    expect(parseHardeningEvent(last.data).profile).toBe('strict');
  }, 60_000);

  it('a swtpm held by another connection (the daemon) is a gap after a short wait, not a hang', async () => {
    const holder = clientFor(swtpm.transport);
    try {
      await pcrRead(holder.transport, [0]);
      const started = Date.now();
      const result = await harden(['apply', '--profile', 'baseline']);
      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ profile: 'baseline', measurement: { outcome: 'gap' } });
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      await holder.close();
    }
  }, 60_000);

  it('an unusable agent config is a gap, never a failed apply', async () => {
    const broken = path.join(dir, 'broken.yaml');
    writeFileSync(broken, 'attestation:\n  pcr: 3\n');
    const result = await harden(['apply', '--profile', 'strict'], swtpm.transport, broken);
    expect(result.code, result.stderr).toBe(0);
    expect(log().events.at(-1)).toMatchObject({ extended: false, reason: stringMatching(/the agent config cannot be used: .*attestation.pcr: 3 is not valid/) });
  }, 60_000);

  it('the boot guard\'s revert to the last known good profile is measured, by the guard', async () => {
    expect((await harden(['apply', '--profile', 'strict'])).code).toBe(0);
    await new HardeningEngine({ root }).markKnownGood();
    expect((await harden(['apply', '--profile', 'baseline'])).code).toBe(0);
    const guard = await harden(['guard', '--grace', '1', '--confirm-host', `${pair.peerAddress}:8884`]);
    expect(guard.code, guard.stderr).toBe(0);
    expect(JSON.parse(guard.stdout)).toMatchObject({ status: 'reverted', report: { profile: 'strict' } });
    expect(parseHardeningEvent(log().events.at(-1)!.data)).toMatchObject({ op: 'apply', by: 'guard', profile: 'strict' });
  }, 60_000);

  it.each(['iot-agent-hardening.service', 'iot-agent-harden-apply@.service', 'iot-agent-hardening-guard.service'])(
    '%s gives the measurement the TPM in its private /dev, and nothing else of it', (unit) => {
      const text = readFileSync(path.join('systemd', unit), 'utf8');
      expect(text).toMatch(/^PrivateDevices=yes$/m);
      expect(text.match(/^(BindPaths|DeviceAllow)=.*$/gm)).toEqual(['BindPaths=-/dev/tpmrm0', 'DeviceAllow=/dev/tpmrm0 rw']);
    });

  it('a test root without --tpm measures into nothing (never this machine\'s TPM)', async () => {
    const other = path.join(dir, 'other-root');
    const result = await runCli(['--config', config, 'harden', 'apply', '--profile', 'baseline', '--root', other, '--netns', pair.device, '--backend', 'nft', '--json'], {}, 60_000);
    expect(result.code, result.stderr).toBe(0);
    expect(parseObject(result.stdout).measurement).toBeUndefined();
    expect(existsSync(path.join(other, DEFAULT_STATE_DIR, EVENT_LOG_FILE))).toBe(false);
  }, 60_000);
});
