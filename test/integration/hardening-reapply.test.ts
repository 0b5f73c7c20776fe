import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HardeningEngine } from '../../hardening/engine.js';
import { loadProfile, type LoadedProfile } from '../../hardening/load-profile.js';
import { parseFilterTable, removeText } from '../../hardening/restore-text.js';
import type { CommandRunner } from '../../agent/lib/exec.js';
import { hardeningRunner } from '../../hardening/runner.js';
import { filterTable, NetnsPair, requireHardeningTools } from '../support/netns.js';

// The order of an apply's commands, and the boot path's re-apply of the recorded profile
// into a kernel that starts with empty tables, on the nft backend in a namespace.
describe('apply: --test before any change, and the boot re-apply', () => {
  let pair: NetnsPair;
  let root: string;
  let engine: HardeningEngine;
  let strict: LoadedProfile;
  let commands: string[][] = [];

  beforeAll(async () => {
    requireHardeningTools(['iptables-nft-save', 'iptables-nft-restore', 'sysctl']);
    pair = await NetnsPair.create();
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-harden-reapply-'));
    const inner = hardeningRunner(pair.prefix(pair.device));
    const runner: CommandRunner = { run: (argv, options) => { commands.push([...argv]); return inner.run(argv, options); } };
    engine = new HardeningEngine({ root, backend: 'nft', runner });
    strict = await loadProfile('strict', root);
  });

  afterAll(async () => {
    await pair?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const restores = () => commands.filter((c) => c[0] === 'iptables-nft-restore');
  const saves = () => commands.filter((c) => c[0] === 'iptables-nft-save');

  it('tests the rules before it loads them, and loads them once', async () => {
    commands = [];
    expect((await engine.apply(strict)).changed).toBe(true);
    const loads = restores();
    expect(loads.map((c) => c.includes('--test'))).toEqual([true, false]);
    expect(saves()).toHaveLength(2); // the live table before, the loaded rules after
  });

  it('re-applies the recorded profile after a reboot without reading the table back, and verifies clean', async () => {
    const applied = await filterTable(pair, 'iptables-nft-save');
    // What a reboot leaves: the record from the last boot, and no agent chains in the kernel.
    const { stdout } = await pair.exec(pair.device, ['iptables-nft-save', '-t', 'filter']);
    await hardeningRunner(pair.prefix(pair.device)).run(['iptables-nft-restore', '--noflush'], { input: removeText(parseFilterTable(stdout)) });
    await engine.records.applied.write({ ...(await engine.applied())!, bootId: 'the previous boot' });

    commands = [];
    const report = await engine.apply(strict);
    expect(report.changed).toBe(true);
    expect(restores().map((c) => c.includes('--test'))).toEqual([true, false]);
    expect(saves()).toHaveLength(1);
    expect(await filterTable(pair, 'iptables-nft-save')).toBe(applied);
    expect((await engine.verify()).drift).toBe(0);
  });

  it('changes nothing, and loads nothing, when applied again in the same boot', async () => {
    commands = [];
    expect((await engine.apply(strict)).changed).toBe(false);
    expect(restores()).toHaveLength(0);
  });
});
