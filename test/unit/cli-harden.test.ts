import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { hardenApply, hardenGuard, hardenPlan, hardenRollback, type HardenOptions } from '../../agent/cli/harden.js';
import { captureOutput } from '../support/output.js';
import { ofType, stringContaining, stringMatching } from '../support/matchers.js';

/** A test tree as --root: nothing applied, nothing to roll back; never the machine's own /. */
const tree = (): HardenOptions => ({ root: mkdtempSync(path.join(tmpdir(), 'iot-agent-harden-cli-')) });

describe('iot-agent harden: what needs no privileges', () => {
  it('plans the baseline profile by default, as text or JSON, changing nothing', async () => {
    const options = tree();
    const text = await captureOutput(() => hardenPlan(options));
    expect(text.error).toBeUndefined();
    expect(text.result).toBe(0);
    expect(text.stdout).toMatch(/^Profile baseline \(builtin:baseline\), sha256 [0-9a-f]{64}\n/);
    const json = await captureOutput(() => hardenPlan({ ...options, json: true }));
    expect(json.stdout.trimEnd().split('\n')).toHaveLength(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ profile: 'baseline' });
  });

  it('plans for the files under --root, whatever the agent config says', async () => {
    const options = tree();
    const config = path.join(options.root!, 'config.yaml');
    writeFileSync(config, 'no-such-key: 1\n');
    const text = await captureOutput(() => hardenPlan({ ...options, config, profile: 'strict' }));
    expect(text.result).toBe(0);
    expect(text.stdout).toMatch(/^Profile strict \(builtin:strict\)/);
    expect(text.stdout).toContain(`\n== write ${options.root!}/etc/sysctl.d/90-iot-agent-hardening.conf\n`);
    const json = await captureOutput(() => hardenPlan({ ...options, config, json: true }));
    expect((JSON.parse(json.stdout) as { files: { path: string }[] }).files.map((f) => f.path)).toContain(`${options.root!}/etc/sysctl.d/90-iot-agent-hardening.conf`);
  });

  it('plans for this machine\'s own files without --root, changing nothing', async () => {
    const { result, stdout } = await captureOutput(() => hardenPlan({ json: true }));
    expect(result).toBe(0);
    expect((JSON.parse(stdout) as { files: { path: string }[] }).files.map((f) => f.path)).toContain('/etc/sysctl.d/90-iot-agent-hardening.conf');
  });

  it('opens only the ports the agent config\'s network section needs', async () => {
    const options = tree();
    const config = path.join(options.root!, 'config.yaml');
    const mqtts = '-A IOT-AGENT-OUT -p tcp --dport 8883 -m comment --comment iot-agent:mqtts -j ACCEPT\n';
    expect((await captureOutput(() => hardenPlan({ ...options, config }))).stdout).toContain(mqtts);
    writeFileSync(config, 'network:\n  hubProtocol: mqtt-ws\n');
    const text = await captureOutput(() => hardenPlan({ ...options, config }));
    expect(text.stdout).toContain('-A IOT-AGENT-OUT -p tcp --dport 443 -m comment --comment iot-agent:https -j ACCEPT\n');
    expect(text.stdout).not.toContain(mqtts);
  });

  it('finds nothing to guard on a board where nothing was applied', async () => {
    const options = tree();
    const text = await captureOutput(() => hardenGuard(options));
    expect(text).toMatchObject({ result: 0, stdout: stringMatching(/^Nothing to guard: .+\n$/) });
    const json = await captureOutput(() => hardenGuard({ ...options, json: true }));
    expect(JSON.parse(json.stdout)).toMatchObject({ status: 'nothing-to-guard', reason: ofType(String) });
  });

  it('has nothing to roll back to on such a board', async () => {
    const { error, stdout } = await captureOutput(() => hardenRollback(tree()));
    expect(error).toMatchObject({ message: 'no hardening snapshot to roll back to', hint: 'a snapshot is taken by `iot-agent harden apply`' });
    expect(stdout).toBe('');
  });
});

describe('iot-agent harden: options refused before anything is done', () => {
  it.each([
    [{ backend: 'pf' }, 'unknown --backend "pf"', 'one of auto, nft, legacy'],
    [{ netns: 'bad name' }, 'invalid --netns "bad name"', 'the name of a namespace listed by `ip netns list`'],
    [{ netns: '-x' }, 'invalid --netns "-x"', 'ip netns list'],
    [{ confirmTimeout: '30' }, '--confirm-timeout needs at least one --confirm-host host:port', 'the hub and DPS endpoints to prove reachable'],
    [{ confirmHost: ['hub.example:8883'], confirmTimeout: '0' }, 'invalid --confirm-timeout "0"', 'whole seconds from 1 to 3600'],
    [{ confirmHost: ['hub.example:8883'], confirmTimeout: '3601' }, 'invalid --confirm-timeout "3601"', 'whole seconds from 1 to 3600'],
    [{ confirmHost: ['hub.example:8883'], confirmTimeout: '1.5' }, 'invalid --confirm-timeout "1.5"', 'whole seconds'],
    [{ confirmHost: ['hub.example:8883'], request: '/run/iot-agent/request.json' }, '--request cannot be combined with --confirm-timeout/--confirm-host', 'the request names the endpoints to confirm against'],
    [{ boot: true, confirmTimeout: '30' }, '--boot cannot be combined with --confirm-timeout, --confirm-host or --request', 'the network is not up at boot; the guard confirms later'],
    [{ boot: true, confirmHost: ['hub.example:8883'] }, '--boot cannot be combined with --confirm-timeout, --confirm-host or --request', 'the guard confirms later'],
    [{ boot: true, request: '/x' }, '--boot cannot be combined with --confirm-timeout, --confirm-host or --request', 'the guard confirms later'],
  ] as [HardenOptions, string, string][])('apply refuses %j as a usage error', async (given, message, hint) => {
    const { error, stdout } = await captureOutput(() => hardenApply({ ...tree(), ...given }));
    expect(error).toMatchObject({ message, hint: stringContaining(hint), exitCode: 2 });
    expect(stdout).toBe('');
  });

  it.each(['0', '3601', '1.5', 'soon'])('guard refuses --grace %j as a usage error', async (grace) => {
    const { error } = await captureOutput(() => hardenGuard({ ...tree(), grace }));
    expect(error).toMatchObject({ message: `invalid --grace ${JSON.stringify(grace)}`, hint: 'whole seconds from 1 to 3600 (default: hardening.bootGraceSeconds in the config)', exitCode: 2 });
  });

  it('guard takes --grace from 1 to 3600 seconds', async () => {
    for (const grace of ['1', '3600']) expect((await captureOutput(() => hardenGuard({ ...tree(), grace }))).result).toBe(0);
  });
});
