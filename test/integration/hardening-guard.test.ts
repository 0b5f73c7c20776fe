import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeAssignment } from '../../agent/state/assignment-store.js';
import { HardeningEngine } from '../../hardening/engine.js';
import { loadProfile, type LoadedProfile } from '../../hardening/load-profile.js';
import { probeTargets, type HostPort } from '../../hardening/probe.js';
import { hardeningRunner } from '../../hardening/runner.js';
import { runCli } from '../support/cli.js';
import { stringMatching } from '../support/matchers.js';
import { NetnsPair, requireHardeningTools } from '../support/netns.js';

// `iot-agent harden guard`, the boot-time revert run as its own root step: the device is
// one namespace, the "hub" an openssl s_server on 8883 in the peer namespace, and the
// hub's address comes from the agent config and its cached assignment, as on a device.
describe('harden guard after boot, against a TLS hub in a namespace', () => {
  let pair: NetnsPair;
  let root: string;
  let config: string;
  let engine: HardeningEngine;
  let hub: HostPort;
  let strict: LoadedProfile;
  let blocking: LoadedProfile;
  const reachable = async () => (await probeTargets(hardeningRunner(pair.prefix(pair.device)), [hub], 2_000))[0]!;
  const guard = (...args: string[]) => runCli(['--config', config, 'harden', 'guard', '--root', root, '--backend', 'nft',
    '--netns', pair.device, '--json', ...args], {}, 60_000);
  const outcome = (stdout: string) => JSON.parse(stdout) as { status: string; reason: string; reconnected?: boolean; rounds?: number; report?: { profile: string }; targets: string[] };

  beforeAll(async () => {
    requireHardeningTools(['iptables-nft-save', 'iptables-nft-restore', 'openssl', 'sysctl']);
    pair = await NetnsPair.create();
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-harden-guard-'));
    hub = { host: pair.peerAddress, port: 8883 };
    await pair.serveTls(path.join(root, 'tls'), hub.port);
    // DPS (provisioning.globalEndpoint), which the agent needs as well to re-provision.
    await pair.serveTls(path.join(root, 'tls'), 443, pair.peerAddress2);
    // The agent's config and the assignment DPS gave it: the hub the guard must reach.
    const stateDir = path.join(root, 'var/lib/iot-agent');
    config = path.join(root, 'config.yaml');
    writeFileSync(config, `stateDir: ${stateDir}\nprovisioning:\n  globalEndpoint: ${pair.peerAddress2}\nhardening:\n  bootGraceSeconds: 30\n`);
    await writeAssignment(stateDir, {
      assignedHub: hub.host, deviceId: 'board-17', registrationId: 'board-17', idScope: '0ne0012ABCD',
      globalEndpoint: pair.peerAddress2, assignedAt: new Date().toISOString(), identityKeyHandle: 0x81000100,
    });
    engine = new HardeningEngine({ root, backend: 'nft', commandPrefix: pair.prefix(pair.device) });
    strict = await loadProfile('strict', root);
    // A site profile that forgot the hub: only DNS outbound.
    const file = path.join(root, 'etc/iot-agent/profiles/no-hub.yaml');
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, 'extends: strict\nfirewall:\n  outbound:\n    defaults: false\n    allow:\n      - { protocol: udp, port: 53 }\n');
    blocking = await loadProfile('no-hub', root);
  });

  afterAll(async () => {
    await pair?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('reverts an unconfirmed profile that blocks the hub port once the grace time has passed, and the hub answers again', async () => {
    expect((await engine.apply(strict, { targets: [hub], timeoutSeconds: 5 })).confirmed).toBe(true);
    await engine.apply(blocking);
    expect((await engine.applied())?.confirmed).toBe(false);
    expect((await reachable()).ok).toBe(false);

    const result = await guard('--grace', '2');
    expect(result.code, result.stderr).toBe(0);
    const o = outcome(result.stdout);
    expect(o.targets).toEqual([`${hub.host}:8883`, `${pair.peerAddress2}:443`]);
    expect(o.status).toBe('reverted');
    expect(o.reason).toMatch(/endpoints unreachable for [23] s with an unconfirmed profile applied/);
    expect(o.report?.profile).toBe('strict');
    expect(o.reconnected).toBe(true);
    expect(result.ms).toBeLessThan(20_000);
    expect((await reachable()).ok).toBe(true);
    expect((await engine.applied())?.hash).toBe((await engine.knownGood())?.hash);
    expect((await engine.verify()).drift).toBe(0);
  });

  it('marks an unconfirmed profile under which the hub answers as known good, at once', async () => {
    const baseline = await loadProfile('baseline', root);
    await engine.apply(baseline);
    expect((await engine.applied())?.confirmed).toBe(false);

    const result = await guard();
    expect(result.code, result.stderr).toBe(0);
    const o = outcome(result.stdout);
    expect(o).toMatchObject({ status: 'confirmed', rounds: 1 });
    expect(result.ms).toBeLessThan(10_000);
    expect((await engine.applied())?.confirmed).toBe(true);
    expect((await engine.knownGood())?.profile.name).toBe('baseline');
  });

  it('exits at once when there is nothing to guard', async () => {
    const result = await guard('--grace', '30');
    expect(result.code, result.stderr).toBe(0);
    expect(outcome(result.stdout)).toMatchObject({ status: 'nothing-to-guard', reason: stringMatching(/already known good/) });
    expect(result.ms).toBeLessThan(5_000);
  });

  it('probes explicit --confirm-host endpoints instead of the configured hub', async () => {
    await engine.apply(strict);
    const silent = `${pair.peerAddress}:8884`;
    const result = await guard('--grace', '1', '--confirm-host', silent);
    expect(result.code, result.stderr).toBe(0);
    const o = outcome(result.stdout);
    expect(o.targets).toEqual([silent]);
    // strict is the profile before baseline became known good: reverted to baseline.
    expect(o).toMatchObject({ status: 'reverted', report: { profile: 'baseline' }, reconnected: false });
  });
});
