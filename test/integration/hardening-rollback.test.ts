import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HardeningEngine } from '../../hardening/engine.js';
import { loadProfile, type LoadedProfile } from '../../hardening/load-profile.js';
import { filterTable, NetnsPair, requireHardeningTools } from '../support/netns.js';

// Rollback must not strand the board with the profile it was meant to undo: not when other
// software changed INPUT meanwhile (fail2ban-style tools add and remove rules above ours),
// and not when the snapshot itself cannot be loaded any more.
describe('rollback that never gives up, on the nft backend in a namespace', () => {
  let pair: NetnsPair;
  let root: string;
  let engine: HardeningEngine;
  let baseline: LoadedProfile;
  let strict: LoadedProfile;
  const ipt = async (...args: string[]) => {
    const r = await pair.exec(pair.device, ['iptables-nft', ...args]);
    expect(r.code, r.stderr).toBe(0);
  };
  const input = async () => (await filterTable(pair, 'iptables-nft-save')).split('\n').filter((l) => l.startsWith('-A INPUT '));
  const agentIn = async () => (await pair.exec(pair.device, ['iptables-nft', '-S', 'IOT-AGENT-IN'])).stdout;

  beforeAll(async () => {
    requireHardeningTools(['iptables-nft', 'iptables-nft-save', 'iptables-nft-restore', 'sysctl']);
    pair = await NetnsPair.create();
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-harden-rollback-'));
    baseline = await loadProfile('baseline', root);
    strict = await loadProfile('strict', root);
  });
  afterAll(async () => {
    await pair?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });
  beforeEach(() => {
    // A fresh state directory per case; what is loaded in the namespace carries over.
    engine = new HardeningEngine({ root, stateDir: mkdtempSync(path.join(root, 'state-')), backend: 'nft', commandPrefix: pair.prefix(pair.device) });
  });

  it('succeeds when a foreign rule above the agent\'s jump has vanished since the snapshot', async () => {
    await engine.apply(baseline);
    // A ban inserted at the top of INPUT: the agent's jump is second now, and the snapshot
    // taken by the next apply records it there.
    await ipt('-I', 'INPUT', '1', '-s', '192.0.2.66/32', '-j', 'DROP');
    expect(await input()).toEqual(['-A INPUT -s 192.0.2.66/32 -j DROP', '-A INPUT -j IOT-AGENT-IN']);
    await engine.apply(strict);
    // The snapshot holds other software's rules (the ban): root's eyes only.
    expect(statSync(engine.records.snapshot.file).mode & 0o777).toBe(0o600);
    // The ban expires before the rollback: position 2 no longer exists once our jump is deleted.
    await ipt('-D', 'INPUT', '-s', '192.0.2.66/32', '-j', 'DROP');
    const report = await engine.rollback();
    expect(report.notes).toEqual([]);
    expect(await input()).toEqual(['-A INPUT -j IOT-AGENT-IN']);
    expect(await agentIn()).toContain('iot-agent:echo-limited');
    expect((await engine.applied())?.profile.name).toBe('baseline');
    expect((await engine.verify()).drift).toBe(0);
  });

  it('loads the last known good profile\'s rules when the snapshot cannot be restored', async () => {
    await engine.apply(baseline);
    await engine.markKnownGood();
    expect((await engine.knownGood())?.profile.name).toBe('baseline');
    await engine.apply(strict);
    // A snapshot whose rules this kernel refuses (taken under a module since removed, say).
    const snapshot = (await engine.records.snapshot.read())!;
    await engine.records.snapshot.write({ ...snapshot, firewall: { ...snapshot.firewall, 4: snapshot.firewall[4]!.replace('COMMIT', '-A IOT-AGENT-IN -j NO-SUCH-TARGET\nCOMMIT') } });
    const report = await engine.rollback();
    expect(report.notes.join('\n')).toMatch(/iptables: the state before the change could not be restored .*\niptables: loaded the last known good profile's rules instead/);
    expect(await agentIn()).toContain('iot-agent:echo-limited');
    expect(await agentIn()).not.toContain('NO-SUCH-TARGET');
    expect(await input()).toEqual(['-A INPUT -j IOT-AGENT-IN']);
  });

  it('removes the agent\'s chains and jumps when neither the snapshot nor a known good profile can be loaded', async () => {
    await engine.apply(strict);
    await ipt('-A', 'INPUT', '-s', '192.0.2.7/32', '-j', 'ACCEPT');
    const snapshot = (await engine.records.snapshot.read())!;
    await engine.records.snapshot.write({ ...snapshot, firewall: { ...snapshot.firewall, 4: snapshot.firewall[4]!.replace('COMMIT', '-A IOT-AGENT-IN -j NO-SUCH-TARGET\nCOMMIT') } });
    const report = await engine.rollback();
    expect(report.notes.at(-1)).toBe('iptables: removed the agent\'s chains and jumps (the firewall as before the agent)');
    const table = await filterTable(pair, 'iptables-nft-save');
    expect(table).not.toContain('IOT-AGENT');
    expect(await input()).toEqual(['-A INPUT -s 192.0.2.7/32 -j ACCEPT']);
  });
});
