import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HubReachabilityGuard } from '../../hardening/boot-guard.js';
import { HardeningEngine } from '../../hardening/engine.js';
import { loadProfile, type LoadedProfile } from '../../hardening/load-profile.js';
import { probeTargets, type HostPort } from '../../hardening/probe.js';
import { ExecRunner } from '../../hardening/runner.js';
import { filterTable, NetnsPair, requireHardeningTools } from '../support/netns.js';

// Remote changes as transactions: the "hub" is a TLS server listening on 8883 in the peer
// namespace (the local cloud is built elsewhere); the device is the other namespace.
describe('confirmed apply and last known good, against a TLS server in a namespace', () => {
  let pair: NetnsPair;
  let root: string;
  let engine: HardeningEngine;
  let hub: HostPort;
  let strict: LoadedProfile;
  let blocking: LoadedProfile;
  const reachable = async () => (await probeTargets(new ExecRunner(pair.prefix(pair.device)), [hub], 2_000))[0]!;

  beforeAll(async () => {
    requireHardeningTools(['iptables-nft-save', 'iptables-nft-restore', 'openssl', 'sysctl']);
    pair = await NetnsPair.create();
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-harden-confirm-'));
    hub = { host: pair.peerAddress, port: 8883 };
    await pair.serveTls(path.join(root, 'tls'), hub.port);
    engine = new HardeningEngine({ root, backend: 'nft', commandPrefix: pair.prefix(pair.device) });
    strict = await loadProfile('strict', root);
    // A site profile that forgot the hub: only DNS outbound.
    const file = path.join(root, 'etc/iot-agent/profiles/no-hub.yaml');
    rmSync(path.dirname(file), { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(path.dirname(file), { recursive: true }));
    writeFileSync(file, 'extends: strict\nfirewall:\n  outbound:\n    defaults: false\n    allow:\n      - { protocol: udp, port: 53 }\n');
    blocking = await loadProfile('no-hub', root);
  });

  afterAll(async () => {
    await pair?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('confirms a profile that keeps the hub reachable and records it as last known good', async () => {
    expect(await reachable()).toMatchObject({ ok: true });
    const report = await engine.apply(strict, { targets: [hub], timeoutSeconds: 5 });
    expect(report).toMatchObject({ changed: true, confirmed: true, rolledBack: false });
    expect(report.probes?.[0]?.detail).toMatch(/TLS handshake completed/);
    expect((await engine.knownGood())?.hash).toBe(report.hash);
    expect(await engine.store.read('pending')).toBeNull();
  });

  it('rolls a profile that blocks the hub port back by itself, and the device reconnects', async () => {
    const before = await filterTable(pair, 'iptables-nft-save');
    const started = Date.now();
    const report = await engine.apply(blocking, { targets: [hub], timeoutSeconds: 2 });
    expect(report.rolledBack).toBe(true);
    expect(report.reason).toMatch(new RegExp(`not reachable within 2 s after applying no-hub \\(${hub.host}:8883: `));
    expect(report.reconnected).toBe(true);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await filterTable(pair, 'iptables-nft-save')).toBe(before);
    expect((await reachable()).ok).toBe(true);
    expect((await engine.applied())?.hash).toBe((await engine.knownGood())?.hash);
    expect((await engine.verify()).drift).toBe(0);
  });

  it('refuses a confirmed apply when a target is unreachable already, and applies nothing', async () => {
    const before = await filterTable(pair, 'iptables-nft-save');
    const silent = { host: pair.peerAddress, port: 8884 };
    await expect(engine.apply(await loadProfile('baseline', root), { targets: [hub, silent], timeoutSeconds: 2 }))
      .rejects.toThrow(/cannot confirm: 10\.200\.\d+\.2:8884 \(ECONNREFUSED\) unreachable before applying; nothing applied/);
    expect(await filterTable(pair, 'iptables-nft-save')).toBe(before);
  });

  it('at boot, applies the last known good profile when a remote change was interrupted', async () => {
    // The process died inside the confirm window: the bad profile is live and a marker says so.
    await engine.apply(blocking);
    await engine.store.write('pending', { hash: (await engine.applied())!.hash });
    expect((await reachable()).ok).toBe(false);
    const report = await engine.applyAtBoot(() => loadProfile('baseline', root));
    expect(report.chosen).toMatch(/last known good/);
    expect(report.profile).toBe('strict');
    expect((await reachable()).ok).toBe(true);
    expect(await engine.store.read('pending')).toBeNull();
  });

  it('reverts an unconfirmed profile once the hub has stayed unreachable for the grace time', async () => {
    let now = Date.now();
    const guard = new HubReachabilityGuard(engine, 60, () => now);
    await engine.apply(blocking);
    expect((await engine.applied())?.confirmed).toBe(false);
    now += 30_000;
    expect((await guard.check()).reverted).toBe(false);
    now += 31_000;
    const outcome = await guard.check();
    expect(outcome.reverted).toBe(true);
    expect(outcome.report?.profile).toBe('strict');
    expect((await reachable()).ok).toBe(true);
  });

  it('keeps a profile once the daemon reports the hub reachable', async () => {
    let now = Date.now();
    const guard = new HubReachabilityGuard(engine, 60, () => now);
    const baseline = await loadProfile('baseline', root);
    await engine.apply(baseline);
    await guard.hubReachable();
    now += 120_000;
    expect((await guard.check()).reverted).toBe(false);
    expect((await engine.knownGood())?.profile.name).toBe('baseline');
  });
});
