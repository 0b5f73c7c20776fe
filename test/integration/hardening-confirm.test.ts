import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HardeningEngine } from '../../hardening/engine.js';
import { runGuard } from '../../hardening/guard.js';
import { loadProfile, type LoadedProfile } from '../../hardening/load-profile.js';
import { probeTargets, type HostPort } from '../../hardening/probe.js';
import { hardeningRunner } from '../../hardening/runner.js';
import { stringMatching } from '../support/matchers.js';
import { filterTable, NetnsPair, requireHardeningTools } from '../support/netns.js';

// Remote changes as transactions: the "hub" is a TLS server listening on 8883 in the peer
// namespace (the local cloud is built elsewhere); the device is the other namespace.
describe('confirmed apply and last known good, against a TLS server in a namespace', () => {
  let pair: NetnsPair;
  let root: string;
  let engine: HardeningEngine;
  let hub: HostPort;
  let dps: HostPort;
  let strict: LoadedProfile;
  let blocking: LoadedProfile;
  let noDps: LoadedProfile;
  const reachable = async () => (await probeTargets(hardeningRunner(pair.prefix(pair.device)), [hub], 2_000))[0]!;
  const probe = (targets: readonly HostPort[], ms: number) => probeTargets(hardeningRunner(pair.prefix(pair.device)), targets, ms);

  beforeAll(async () => {
    requireHardeningTools(['iptables-nft-save', 'iptables-nft-restore', 'openssl', 'sysctl']);
    pair = await NetnsPair.create();
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-harden-confirm-'));
    hub = { host: pair.peerAddress, port: 8883 };
    dps = { host: pair.peerAddress, port: 443 };
    await pair.serveTls(path.join(root, 'tls'), hub.port);
    await pair.serveTls(path.join(root, 'tls'), dps.port);
    engine = new HardeningEngine({ root, backend: 'nft', commandPrefix: pair.prefix(pair.device) });
    strict = await loadProfile('strict', root);
    // A site profile that forgot the hub: only DNS outbound.
    const file = path.join(root, 'etc/iot-agent/profiles/no-hub.yaml');
    rmSync(path.dirname(file), { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(path.dirname(file), { recursive: true }));
    writeFileSync(file, 'extends: strict\nfirewall:\n  outbound:\n    defaults: false\n    allow:\n      - { protocol: udp, port: 53 }\n');
    blocking = await loadProfile('no-hub', root);
    // A site profile that allows MQTT (8883) and DNS, but not HTTPS: the hub answers, DPS does not.
    writeFileSync(path.join(path.dirname(file), 'no-dps.yaml'),
      'extends: strict\nfirewall:\n  outbound:\n    defaults: false\n    allow:\n      - { protocol: udp, port: 53 }\n      - { protocol: tcp, port: 8883 }\n');
    noDps = await loadProfile('no-dps', root);
  });

  afterAll(async () => {
    await pair?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('confirms a profile that keeps the hub and DPS reachable and records it as last known good', async () => {
    expect(await reachable()).toMatchObject({ ok: true });
    const report = await engine.apply(strict, { targets: [hub, dps], timeoutSeconds: 5 });
    expect(report).toMatchObject({ changed: true, confirmed: true, rolledBack: false });
    expect(report.probes?.map((p) => p.detail)).toEqual([expect.stringMatching(/TLS handshake completed/), expect.stringMatching(/TLS handshake completed/)]);
    expect((await engine.knownGood())?.hash).toBe(report.hash);
    expect(await engine.records.pending.read()).toBeNull();
  });

  it('rolls back a profile under which the hub answers but DPS does not, and it never becomes known good', async () => {
    const before = await filterTable(pair, 'iptables-nft-save');
    const report = await engine.apply(noDps, { targets: [hub, dps], timeoutSeconds: 2 });
    expect(report).toMatchObject({ rolledBack: true, reconnected: true });
    expect(report.reason).toMatch(new RegExp(`not reachable within 2 s after applying no-dps \\(${dps.host}:443: `));
    expect(report.reason).not.toContain(':8883');
    expect(await filterTable(pair, 'iptables-nft-save')).toBe(before);
    expect((await engine.knownGood())?.profile.name).toBe('strict');
    expect((await engine.applied())?.profile.name).toBe('strict');
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
    await engine.records.pending.write({ hash: (await engine.applied())!.hash, startedAt: new Date().toISOString(), timeoutSeconds: 60 });
    expect((await reachable()).ok).toBe(false);
    const report = await engine.applyAtBoot(() => loadProfile('baseline', root), () => Promise.resolve([]));
    expect(report).toMatchObject({ chosen: stringMatching(/last known good/), profile: 'strict' });
    expect((await reachable()).ok).toBe(true);
    expect(await engine.records.pending.read()).toBeNull();
  });

  it('the guard reverts an unconfirmed profile once the endpoints have stayed unreachable for the grace time', async () => {
    await engine.apply(blocking);
    expect((await engine.applied())?.confirmed).toBe(false);
    const outcome = await runGuard({ engine, targets: [hub, dps], graceSeconds: 1, probe, intervalMs: 300 });
    expect(outcome).toMatchObject({ status: 'reverted', report: { profile: 'strict' }, reconnected: true });
    expect((await reachable()).ok).toBe(true);
  });

  it('the guard keeps a profile under which every endpoint answers, as known good', async () => {
    const baseline = await loadProfile('baseline', root);
    await engine.apply(baseline);
    expect(await runGuard({ engine, targets: [hub, dps], graceSeconds: 5, probe })).toMatchObject({ status: 'confirmed', rounds: 1 });
    expect((await engine.knownGood())?.profile.name).toBe('baseline');
    expect(await runGuard({ engine, targets: [hub, dps], graceSeconds: 5, probe })).toMatchObject({ status: 'nothing-to-guard' });
  });
});
