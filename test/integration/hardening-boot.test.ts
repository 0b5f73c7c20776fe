import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hardeningAccess } from '../../agent/hardening-bridge/access.js';
import { HardeningEngine } from '../../hardening/engine.js';
import { loadProfile } from '../../hardening/load-profile.js';
import { probeTargets } from '../../hardening/probe.js';
import { parseFilterTable, removeText } from '../../hardening/restore-text.js';
import { ExecRunner } from '../../hardening/runner.js';
import { runCli } from '../support/cli.js';
import { NetnsPair, requireHardeningTools } from '../support/netns.js';

// The boot path must leave the board filtered whatever it finds: a record an SD-card fault
// truncated or filled with garbage is history and never stops the profile; a profile that
// cannot be applied at all is replaced by the fail-closed rule set. Proven with packets
// from the peer namespace against a listener on the device that no profile allows.
const CLOSED_PORT = 2323;

describe('harden apply --boot with damaged records, in a network namespace', () => {
  let pair: NetnsPair;
  let root: string;
  let config: string;
  const runner = () => new ExecRunner(pair.prefix(pair.device));
  const engine = () => new HardeningEngine({ root, backend: 'nft', commandPrefix: pair.prefix(pair.device) });
  const boot = (...args: string[]) => runCli(['--config', config, 'harden', 'apply', '--boot', '--root', root, '--backend', 'nft',
    '--netns', pair.device, ...args], {}, 60_000);

  /** What a reboot leaves: no agent chains in the kernel, the records on disk. */
  async function reboot(): Promise<void> {
    const { stdout } = await runner().run(['iptables-nft-save', '-t', 'filter']);
    const text = removeText(parseFilterTable(stdout));
    if (text) await runner().run(['iptables-nft-restore', '--noflush'], { input: text });
    expect(await pair.tcpConnect(CLOSED_PORT, { timeoutSeconds: 2 })).toBe('connected');
  }

  /** strict confirmed (known good), then baseline applied and a confirmed change to it interrupted: every record present. */
  async function history(): Promise<void> {
    rmSync(path.join(root, 'var'), { recursive: true, force: true });
    const e = engine();
    await e.apply(await loadProfile('strict', root));
    await e.markKnownGood();
    await e.apply(await loadProfile('baseline', root));
    await e.records.pending.write({ hash: (await e.applied())!.hash, startedAt: new Date().toISOString(), timeoutSeconds: 60 });
  }

  beforeAll(async () => {
    requireHardeningTools(['iptables-nft-save', 'iptables-nft-restore', 'openssl', 'sysctl']);
    pair = await NetnsPair.create();
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-harden-boot-'));
    config = path.join(root, 'config.yaml');
    mkdirSync(path.join(root, 'etc/iot-agent/profiles'), { recursive: true });
    writeFileSync(config, `stateDir: ${path.join(root, 'var/lib/iot-agent')}\nprovisioning:\n  globalEndpoint: ${pair.peerAddress}\n`);
    await pair.listenTcp(CLOSED_PORT);
    await pair.serveTls(path.join(root, 'tls'), 443);
    await pair.serveTls(path.join(root, 'tls'), 8884);
  });
  afterAll(async () => {
    await pair?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const damages: [string, (file: string) => void][] = [
    ['truncated', (file) => truncateSync(file, Math.floor(readFileSync(file).length / 2))],
    ['garbage', (file) => writeFileSync(file, Buffer.from([0x00, 0xff, 0x13, 0x37, 0x7b, 0x0a]))],
  ];
  for (const record of ['snapshot', 'applied', 'pending', 'known-good']) {
    for (const [damage, spoil] of damages) {
      it(`a ${damage} ${record}.json does not stop the profile: the board is filtered`, async () => {
        await history();
        spoil(path.join(root, 'var/lib/iot-agent-hardening', `${record}.json`));
        await reboot();
        const result = await boot('--json');
        expect(result.code, result.stderr).toBe(0);
        const report = JSON.parse(result.stdout) as { profile: string; changed: boolean; failClosed?: boolean; notes: string[] };
        expect(report).toMatchObject({ changed: true });
        expect(report.failClosed).toBeUndefined();
        if (record !== 'pending') expect(report.notes.join('\n')).toMatch(new RegExp(`${record}\\.json is corrupt: .*: ignored`));
        expect(await pair.tcpConnect(CLOSED_PORT, { timeoutSeconds: 1 })).toBe('timeout');
      });
    }
  }

  it('loads the fail-closed rule set when the profile cannot be applied, and the agent reports it', async () => {
    await history();
    for (const record of ['applied', 'known-good']) writeFileSync(path.join(root, 'var/lib/iot-agent-hardening', `${record}.json`), 'garbage');
    await reboot();
    // Nothing usable recorded, and the configured profile is gone.
    const result = await boot('--profile', 'vanished-site-profile');
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toMatch(/^iot-agent: the boot profile could not be applied \(no profile "vanished-site-profile"\); the fail-closed rule set is loaded instead$/);
    // Inbound: dropped. Outbound: DPS (443) answers, an endpoint the agent does not need is refused.
    expect(await pair.tcpConnect(CLOSED_PORT, { timeoutSeconds: 1 })).toBe('timeout');
    const [dps, other] = await probeTargets(runner(), [{ host: pair.peerAddress, port: 443 }, { host: pair.peerAddress, port: 8884 }], 2_000);
    expect(dps).toMatchObject({ ok: true });
    expect(other).toMatchObject({ ok: false, detail: 'ECONNREFUSED' });
    expect(await engine().lastBoot()).toMatchObject({ outcome: 'fail-closed', error: 'no profile "vanished-site-profile"' });
    // What the agent reports to the twin's `hardening` once connected.
    const summary = await hardeningAccess({ root, backend: 'nft', netns: pair.device }, () => []).summary();
    expect(summary).toMatchObject({ failClosed: true, bootFailure: { error: 'no profile "vanished-site-profile"' } });
  });
});
