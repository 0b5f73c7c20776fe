import type { ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureIdentity } from '../../agent/tpm/identity.js';
import { startCloud, type LocalCloud } from '../cloud/cloud.js';
import { serviceClients } from '../cloud/hub/service-sdk.js';
import { invokeMethod, withObjectPayload } from '../support/direct-method.js';
import { clientFor } from '../support/tpm.js';
import { buildDeb, extract, rootfsTarball, startHostSwtpm } from './artifacts.js';
import { BootNetwork, BootedContainer, requireBootTools, sleep } from './container.js';
import { redTeam, type Attempt } from './red-team.js';

/**
 * The package on a real Debian trixie, booted: debootstrap (cached), `apt install` of the
 * .deb inside the booted system, configure, reboot, then look from outside. The container
 * has its own network namespace; through its veth it reaches the local cloud and a swtpm
 * that this test runs on the host end of that link, and nothing else.
 */
const WATCHDOG_SEC = 20;
const timings: Record<string, number> = {};
const notes: string[] = [];
const attempts: Attempt[] = [];

describe('the Debian package on a booted trixie system', () => {
  let work: string;
  let root: string;
  let network: BootNetwork;
  let cloud: LocalCloud;
  let swtpm: ChildProcess;
  let container: BootedContainer | undefined;
  let deviceId: string;
  const machine = `iot-board-${process.pid}`;

  const boot = async () => {
    const t0 = performance.now();
    container = await BootedContainer.boot(root, machine, network);
    timings[`boot ${Object.keys(timings).filter((k) => k.startsWith('boot')).length + 1}`] = performance.now() - t0;
    return container;
  };
  const board = () => container!;

  beforeAll(async () => {
    requireBootTools();
    work = mkdtempSync('/var/tmp/iot-agent-boot-');
    root = path.join(work, 'root');
    mkdirSync(root);
    const [{ deb, ms: debMs }, { tarball, ms: rootfsMs }] = await Promise.all([buildDeb(work), rootfsTarball()]);
    timings['build .deb'] = debMs;
    timings['rootfs (debootstrap or cache)'] = rootfsMs;
    timings['extract rootfs'] = await extract(tarball, root);
    // Not /tmp: trixie mounts a tmpfs over it at boot.
    copyFileSync(deb, path.join(root, 'root/iot-agent.deb'));

    network = await BootNetwork.create();
    mkdirSync(path.join(work, 'swtpm'));
    swtpm = await startHostSwtpm(path.join(work, 'swtpm'), network.hostAddress);
    cloud = await startCloud({
      dir: path.join(work, 'cloud'), dpsAddress: network.hostAddress, hubAddresses: [network.hostAddress2],
      allocation: 'static', log: () => undefined,
    });
    const tpm = clientFor(`swtpm:host=${network.hostAddress},port=2321`);
    const identity = await ensureIdentity(tpm).finally(() => tpm.close());
    deviceId = `boot-board-${network.namespace}`;
    cloud.dps.enroll({ registrationId: identity.registrationId, deviceId, iotHubs: [cloud.hubs[0]!.hostName],
      attestation: { type: 'tpm', tpm: { endorsementKey: identity.endorsementKey.toString('base64') } } });
    await boot();
  }, 900_000);

  afterAll(async () => {
    await container?.poweroff();
    await cloud?.stop();
    swtpm?.kill();
    network?.destroy();
    if (work) rmSync(work, { recursive: true, force: true });
    process.stdout.write(`boot test timings: ${Object.entries(timings).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`).join(', ')}\n`);
    for (const note of notes) process.stdout.write(`boot test: ${note}\n`);
    if (attempts.length) {
      process.stdout.write(`red team (as the iot-agent user, ${attempts.length} attempts):\n`);
      for (const a of attempts) process.stdout.write(`  ${a.refused ? 'refused ' : 'SUCCEEDED'} ${a.what} -> ${a.outcome}\n`);
    }
  }, 60_000);

  it('installs with apt, which resolves nodejs and the other dependencies, and the maintainer scripts create the user and enable the units', async () => {
    const t0 = performance.now();
    await board().ok(['apt-get', 'install', '-y', '-q', '/root/iot-agent.deb'], { env: { DEBIAN_FRONTEND: 'noninteractive' }, timeoutMs: 300_000 });
    timings['apt install'] = performance.now() - t0;
    expect(await board().ok(['dpkg-query', '-W', '-f', '${Status} ${Version}', 'iot-agent'])).toMatch(/^install ok installed /);
    expect(Number((await board().ok(['node', '-p', 'process.versions.node.split(".")[0]'])).trim())).toBeGreaterThanOrEqual(20);
    expect((await board().ok(['id', '-nG', 'iot-agent'])).split(/\s+/)).toContain('tss');
    expect(await board().ok(['getent', 'passwd', 'iot-agent'])).toMatch(/:\/var\/lib\/iot-agent:\/usr\/sbin\/nologin$/m);
    for (const unit of ['iot-agent.service', 'iot-agent-hardening.service']) {
      expect((await board().exec(['systemctl', 'is-enabled', unit])).stdout.trim()).toBe('enabled');
    }
    // Installed without an ID scope: enabled, not started, and the admin was told why.
    expect((await board().exec(['systemctl', 'is-active', 'iot-agent.service'])).stdout.trim()).toBe('inactive');
    expect(await board().ok(['stat', '-c', '%U:%G %a', '/etc/iot-agent/config.yaml', '/var/lib/iot-agent']))
      .toBe('root:iot-agent 640\niot-agent:iot-agent 750\n');
    expect(await board().ok(['dpkg-query', '-W', '-f', '${Conffiles}', 'iot-agent'])).toContain('/etc/iot-agent/config.yaml');
    expect((await board().ok(['iot-agent', '--version'])).trim()).toMatch(/^\d+\.\d+\.\d+/);
  }, 400_000);

  it('its units pass systemd-analyze verify on trixie with nothing on stderr, and score within the limits', async () => {
    const verify = await board().exec(['systemd-analyze', 'verify', 'iot-agent.service', 'iot-agent-hardening.service', 'iot-agent-hardening-guard.service',
      'iot-agent-harden-apply@baseline.service']);
    expect(verify.stderr).toBe('');
    expect(verify.code).toBe(0);
    const score = async (unit: string) => {
      const r = await board().exec(['systemd-analyze', 'security', '--no-pager', unit]);
      const m = /Overall exposure level for \S+: (\d+\.\d+)/.exec(r.stdout);
      if (!m) throw new Error(`no score for ${unit}:\n${r.stdout}\n${r.stderr}`);
      return Number(m[1]);
    };
    const scores: Record<string, number> = {};
    for (const unit of ['iot-agent.service', 'iot-agent-hardening.service', 'iot-agent-hardening-guard.service', 'iot-agent-harden-apply@strict.service']) {
      scores[unit] = await score(unit);
    }
    notes.push(`systemd-analyze security (trixie): ${JSON.stringify(scores)}`);
    expect(scores['iot-agent.service']).toBeLessThanOrEqual(2.0);
    expect(scores['iot-agent-harden-apply@strict.service']).toBeLessThanOrEqual(2.6);
  }, 60_000);

  it('after configuration and a reboot: the hardening unit ran before the network and succeeded, and the agent provisioned and is active', async () => {
    // What an installer does: the ID scope, the CA of this (local) cloud, and a site profile
    // that lets the board reach the QA swtpm through the firewall; recorded by one apply.
    writeFileSync(path.join(root, 'etc/iot-agent/local-ca.pem'), cloud.ca);
    writeFileSync(path.join(root, 'etc/iot-agent/config.yaml'), [
      'provisioning:',
      `  idScope: ${cloud.dps.idScope}`,
      `  globalEndpoint: ${network.hostAddress}`,
      'tpm:',
      `  transport: swtpm:host=${network.hostAddress},port=2321`,
      'tls:',
      '  extraCaFile: /etc/iot-agent/local-ca.pem',
      '',
    ].join('\n'));
    writeFileSync(path.join(root, 'etc/iot-agent/profiles/boardtest.yaml'), [
      'extends: baseline',
      'description: baseline, plus the QA software TPM on the host end of the link',
      'firewall:',
      '  outbound:',
      '    defaults: true',
      '    allow:',
      `      - { protocol: tcp, port: 2321-2322, to: ${network.hostAddress}/32 }`,
      '',
    ].join('\n'));
    await board().ok(['iot-agent', 'harden', 'apply', '--profile', 'boardtest']);

    await board().poweroff();
    container = undefined;
    await boot();

    const hardening = await board().show('iot-agent-hardening.service', ['Result', 'ExecMainStatus', 'ActiveState', 'ActiveEnterTimestampMonotonic']);
    expect(hardening).toMatchObject({ Result: 'success', ExecMainStatus: '0', ActiveState: 'active' });
    // network-pre.target is where interfaces may first be configured (networkd, ifupdown and
    // NetworkManager all start after it); the hardening unit was done before it was reached,
    // and the agent started only after both it and network-online.target. (This minimal
    // system runs no network manager: the test configured the veth from outside.)
    const networkPre = await board().show('network-pre.target', ['ActiveEnterTimestampMonotonic']);
    const networkOnline = await board().show('network-online.target', ['ActiveEnterTimestampMonotonic']);
    const hardened = Number(hardening.ActiveEnterTimestampMonotonic);
    expect(hardened).toBeGreaterThan(0);
    expect(Number(networkPre.ActiveEnterTimestampMonotonic)).toBeGreaterThanOrEqual(hardened);
    expect(await board().ok(['systemctl', 'show', 'iot-agent-hardening.service', '-p', 'Before', '--value'])).toMatch(/\bnetwork-pre\.target\b/);

    const t0 = performance.now();
    const agent = await waitFor(async () => {
      const s = await board().show('iot-agent.service', ['ActiveState', 'MainPID', 'InactiveExitTimestampMonotonic', 'StatusText']);
      return s.ActiveState === 'active' ? s : undefined;
    }, 90_000, async () => (await board().exec(['journalctl', '-u', 'iot-agent', '-n', '30', '--no-pager'])).stdout);
    // Usually 0: multi-user.target waits for the agent's READY=1, so boot 2 includes provisioning.
    timings['agent ready after boot'] = performance.now() - t0;
    expect(Number(agent.InactiveExitTimestampMonotonic)).toBeGreaterThanOrEqual(hardened);
    expect(Number(agent.InactiveExitTimestampMonotonic)).toBeGreaterThanOrEqual(Number(networkOnline.ActiveEnterTimestampMonotonic));
    expect(agent.StatusText).toMatch(/^ready: /);
    const status = JSON.parse(await board().ok(['iot-agent', 'status', '--json'])) as Record<string, unknown>;
    expect(status).toMatchObject({ state: 'ready', deviceId, assignedHub: cloud.hubs[0]!.hostName, daemon: 'running' });
    expect(cloud.hubs[0]!.counters.connects).toBeGreaterThan(0);
  }, 300_000);

  it('keeps the hardening records root\'s after the agent started: /var/lib/iot-agent-hardening root-owned and readable, /var/lib/iot-agent the agent\'s', async () => {
    // Before the fix both units shared StateDirectory=iot-agent, and the agent's start handed
    // the records the boot unit re-applies to the unprivileged user.
    expect(await board().ok(['stat', '-c', '%n %U:%G %a', '/var/lib/iot-agent-hardening', '/var/lib/iot-agent'])).toBe(
      '/var/lib/iot-agent-hardening root:root 755\n/var/lib/iot-agent iot-agent:iot-agent 750\n');
    const records = (await board().ok(['find', '/var/lib/iot-agent-hardening', '-name', '*.json', '-printf', '%f %u:%g %m\n'])).trim().split('\n').sort();
    // The snapshot holds other software's firewall rules: root's eyes only.
    expect(records).toEqual(expect.arrayContaining(['applied.json root:root 644', 'verified.json root:root 644', 'snapshot.json root:root 600']));
    expect(records.filter((r) => !r.startsWith('snapshot.json ')).every((r) => r.endsWith(' root:root 644'))).toBe(true);
    expect((await board().exec(['test', '-e', '/var/lib/iot-agent/hardening'])).code).toBe(1);
    const write = await board().exec(['runuser', '-u', 'iot-agent', '--', 'sh', '-c', 'echo {} > /var/lib/iot-agent-hardening/applied.json']);
    expect(write.code).not.toBe(0);
    expect(write.stderr).toMatch(/Permission denied/);
  }, 60_000);

  it('answers ping and getSystemInfo from inside its sandbox, called through the IoT Hub service SDK', async () => {
    const { client } = serviceClients(cloud.describe().hubServiceConnectionString, cloud.ca);
    const call = (methodName: string) => invokeMethod(client, deviceId, { methodName, payload: {}, responseTimeoutInSeconds: 20 });
    const ping = await call('ping');
    expect(ping.status).toBe(200);
    expect(ping.payload).toMatchObject({ pong: true, state: 'ready' });
    const info = await call('getSystemInfo');
    expect(info.status).toBe(200);
    expect(info.payload).toMatchObject({ os: { platform: 'linux', codename: 'trixie' } });
    notes.push(`getSystemInfo in the sandbox: ${JSON.stringify(info.payload).slice(0, 400)}`);
  }, 60_000);

  it('the agent runs as iot-agent with no capabilities, and the firewall rules and sysctls are in place', async () => {
    const { MainPID } = await board().show('iot-agent.service', ['MainPID']);
    expect(Number(MainPID)).toBeGreaterThan(1);
    const proc = await board().ok(['cat', `/proc/${MainPID}/status`]);
    const uid = (await board().ok(['id', '-u', 'iot-agent'])).trim();
    expect(proc).toMatch(new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`, 'm'));
    expect(proc).toMatch(/^CapEff:\s+0+$/m);
    expect(proc).toMatch(/^CapBnd:\s+0+$/m);

    const input = await board().ok(['iptables', '-S', 'INPUT']);
    expect(input).toMatch(/-j IOT-AGENT-IN/);
    expect(await board().ok(['iptables', '-S', 'OUTPUT'])).toMatch(/-j IOT-AGENT-OUT/);
    const rules = await board().ok(['iptables', '-S', 'IOT-AGENT-IN']);
    expect(rules).toContain('iot-agent:drop-invalid');
    expect(rules).toContain('iot-agent:drop-xmas-all');
    expect(await board().ok(['iptables', '-S', 'IOT-AGENT-OUT'])).toMatch(/198\.18\.\d+\.1\/32.*--dport 2321:2322/);
    for (const [key, value] of [['net.ipv4.tcp_syncookies', '1'], ['net.ipv4.icmp_ignore_bogus_error_responses', '1'],
      ['net.ipv4.icmp_echo_ignore_broadcasts', '1'], ['net.ipv4.conf.all.accept_redirects', '0']] as const) {
      expect((await board().ok(['sysctl', '-n', key])).trim(), key).toBe(value);
    }
  }, 60_000);

  it('restarts a hung agent (SIGSTOP) within the watchdog period, and it reaches ready again', async () => {
    const before = await board().show('iot-agent.service', ['MainPID', 'NRestarts', 'WatchdogUSec']);
    expect(before.WatchdogUSec).toBe(`${WATCHDOG_SEC}s`);
    // (kill -STOP 0 would stop the caller's own process group.)
    expect(Number(before.MainPID)).toBeGreaterThan(1);
    const stoppedAt = Date.now() / 1000; // the container shares the host's clock
    await board().ok(['kill', '-STOP', before.MainPID!]);
    const after = await waitFor(async () => {
      const s = await board().show('iot-agent.service', ['MainPID', 'NRestarts']);
      return s.MainPID !== before.MainPID && s.MainPID !== '0' ? s : undefined;
    }, (WATCHDOG_SEC + 30) * 1000);
    timings['SIGSTOP to new agent process'] = (Date.now() / 1000 - stoppedAt) * 1000;
    expect(Number(after.NRestarts)).toBe(Number(before.NRestarts) + 1);
    // Detected by systemd within the watchdog period (the agent pets at half of it), then
    // restarted after RestartSec=5 s; the journal has the exact moment of detection.
    const journal = await board().ok(['journalctl', '-u', 'iot-agent', '--no-pager', '-o', 'short-unix', '-g', 'Watchdog timeout']);
    const detectedAt = Number([...journal.matchAll(/^(\d+\.\d+) .*Watchdog timeout/gm)].pop()?.[1]);
    timings['SIGSTOP to watchdog timeout'] = (detectedAt - stoppedAt) * 1000;
    expect(detectedAt - stoppedAt).toBeGreaterThan(0);
    expect(detectedAt - stoppedAt).toBeLessThanOrEqual(WATCHDOG_SEC + 1);
    await waitFor(async () => (await board().show('iot-agent.service', ['ActiveState'])).ActiveState === 'active' || undefined, 60_000);
  }, 120_000);

  it('lets the agent user reboot and start the hardening apply unit through polkit, and nothing else', async () => {
    const asAgent = (...argv: string[]) => board().exec(['runuser', '-u', 'iot-agent', '--', ...argv]);
    // The agent's request: the profile (the instance, again), every endpoint to confirm against, the timeout.
    const request = (profile: string) => JSON.stringify({ version: 1, requestId: `polkit-${profile}`, profile, confirmTimeoutSeconds: 30,
      confirmTargets: [`${network.hostAddress2}:8883`, `${network.hostAddress}:443`] });
    await asAgent('sh', '-c', `printf '%s' '${request('boardtest')}' > /run/iot-agent/harden-request.json`);
    const apply = await asAgent('systemctl', 'start', 'iot-agent-harden-apply@boardtest.service');
    const journal = async () => (await board().exec(['journalctl', '-u', 'iot-agent-harden-apply@*', '-n', '30', '--no-pager'])).stdout;
    expect(apply.stderr, apply.stderr && await journal()).toBe('');
    expect(apply.code).toBe(0);
    const refused = await asAgent('systemctl', 'stop', 'iot-agent-hardening.service');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/Access denied|Interactive authentication required/);
    // A dashed profile name is escaped; a raw "-" would become "/" (a path the agent could write).
    writeFileSync(path.join(root, 'etc/iot-agent/profiles/board-test.yaml'), 'extends: boardtest\n');
    await asAgent('sh', '-c', `printf '%s' '${request('board-test')}' > /run/iot-agent/harden-request.json`);
    const dashed = await asAgent('systemctl', 'start', 'iot-agent-harden-apply@board\\x2dtest.service');
    expect(dashed.stderr).toBe('');
    expect(dashed.code).toBe(0);
    for (const unit of ['iot-agent-harden-apply@var-lib-iot\\x2dagent-evil.service', 'iot-agent-harden-apply@evil.yaml.service']) {
      const attempt = await asAgent('systemctl', 'start', unit);
      expect(attempt.code, unit).not.toBe(0);
      expect(attempt.stderr, unit).toMatch(/Access denied|Interactive authentication required/);
    }
    // Reboot (`systemctl reboot` goes through logind): asked of polkit, not performed.
    const reboot = await asAgent('sh', '-c', 'exec pkcheck --action-id org.freedesktop.login1.reboot --process $$');
    expect(reboot.code, reboot.stderr).toBe(0);
    const poweroff = await asAgent('sh', '-c', 'exec pkcheck --action-id org.freedesktop.login1.power-off --process $$');
    expect(poweroff.code).not.toBe(0);
  }, 120_000);

  it('reboots the board on the cloud\'s reboot command: the unprivileged agent through polkit and logind', async () => {
    const { client } = serviceClients(cloud.describe().hubServiceConnectionString, cloud.ca);
    const t0 = performance.now();
    const result = await invokeMethod(client, deviceId, { methodName: 'reboot', payload: {}, responseTimeoutInSeconds: 20 });
    expect(result).toMatchObject({ status: 202, payload: { accepted: true } });
    // systemd-nspawn --boot ends with 133 when the system inside it reboots.
    expect(await board().waitForExit(60_000)).toBe(133);
    timings['reboot command to reboot'] = performance.now() - t0;
    container = undefined;
    await boot();
    await waitFor(async () => (await board().show('iot-agent.service', ['ActiveState'])).ActiveState === 'active' || undefined, 60_000);
  }, 180_000);

  it('applies strict on the cloud\'s applyHardening through the root unit, 202 then a final 200, and reports the recorded drift', async () => {
    const { client, registry } = serviceClients(cloud.describe().hubServiceConnectionString, cloud.ca);
    const call = async (methodName: string, payload: unknown) =>
      withObjectPayload(await invokeMethod(client, deviceId, { methodName, payload, responseTimeoutInSeconds: 20 }));
    const lastApply = async () => {
      const twin = (await registry.getTwin(deviceId)).responseBody as unknown as { properties: { reported: { lastCommands?: Record<string, { status: number; phase: string; at: string; message: string }> } } };
      return twin.properties.reported.lastCommands?.applyHardening;
    };
    const before = await lastApply();
    const t0 = performance.now();
    const ack = await call('applyHardening', { profile: 'strict', confirmTimeoutSec: 30 });
    expect(ack).toMatchObject({ status: 202, payload: { accepted: true, profile: 'strict', confirmTimeoutSec: 30 } });
    const final = await waitFor(async () => {
      const last = await lastApply();
      return last?.phase === 'final' && last.at !== before?.at ? last : undefined;
    }, 120_000, async () => (await board().exec(['journalctl', '-u', 'iot-agent', '-u', 'iot-agent-harden-apply@strict', '-n', '40', '--no-pager'])).stdout);
    timings['applyHardening strict to final result'] = performance.now() - t0;
    expect(final, final.message).toMatchObject({ status: 200, message: 'profile strict applied and confirmed' });
    // Applied by the root oneshot (the agent holds no capability), which logged its report.
    expect(await board().ok(['journalctl', '-u', 'iot-agent-harden-apply@strict.service', '--no-pager', '-o', 'cat']))
      .toMatch(/^Applied profile strict \([0-9a-f]{12}\) in \d+ ms, confirmed$/m);

    // In place inside the container: strict's own rules, and boardtest's swtpm exception gone.
    const inbound = await board().ok(['iptables', '-S', 'IOT-AGENT-IN']);
    expect(inbound).toContain('iot-agent:drop-echo');
    expect(inbound).not.toContain('iot-agent:echo-limited');
    expect(inbound).not.toContain('iot-agent:allow-in-');
    expect(await board().ok(['iptables', '-S', 'IOT-AGENT-OUT'])).not.toMatch(/--dport 2321:2322/);
    expect((await board().ok(['sysctl', '-n', 'net.ipv6.conf.all.disable_ipv6'])).trim()).toBe('1');
    expect((await board().exec(['iot-agent', 'harden', 'verify'])).code).toBe(0);

    const status = await call('getHardeningStatus', {});
    expect(status).toMatchObject({ status: 200, payload: { profile: 'strict', confirmed: true, drift: 0, driftCheckedBy: 'apply', drifted: [] } });
    const checkedAt = Date.parse(String(status.payload.driftCheckedAt));
    expect(Date.now() - checkedAt).toBeLessThan(180_000);
    expect(status.payload.driftError).toBeUndefined();
    notes.push(`getHardeningStatus under the package: ${JSON.stringify(status.payload)}`);
    await waitFor(async () => {
      const twin = (await registry.getTwin(deviceId)).responseBody as unknown as { properties: { reported: { hardening?: Record<string, unknown> } } };
      const reported = twin.properties.reported.hardening;
      return reported?.profile === 'strict' && reported.drift === 0 && typeof reported.driftCheckedAt === 'string' ? reported : undefined;
    }, 30_000);
  }, 180_000);

  it('reports a final 500 with the report when the root unit rolls back a profile that cuts the hub off, and strict stays', async () => {
    // Nothing outbound but DNS: the hub stops answering, and the unit restores strict by itself.
    writeFileSync(path.join(root, 'etc/iot-agent/profiles/nohub.yaml'), [
      'description: QA only, nothing outbound but DNS',
      'firewall:',
      '  inbound: []',
      '  outbound:',
      '    defaults: false',
      '    allow:',
      '      - { protocol: udp, port: 53 }',
      '',
    ].join('\n'));
    const { client, registry } = serviceClients(cloud.describe().hubServiceConnectionString, cloud.ca);
    const lastApply = async () => {
      const twin = (await registry.getTwin(deviceId)).responseBody as unknown as { properties: { reported: { lastCommands?: Record<string, { status: number; phase: string; at: string; message: string }> } } };
      return twin.properties.reported.lastCommands?.applyHardening;
    };
    const before = await lastApply();
    const result = await invokeMethod(client, deviceId, { methodName: 'applyHardening', payload: { profile: 'nohub', confirmTimeoutSec: 5 }, responseTimeoutInSeconds: 20 });
    expect(result).toMatchObject({ status: 202 });
    const final = await waitFor(async () => {
      const last = await lastApply();
      return last?.phase === 'final' && last.at !== before?.at ? last : undefined;
    }, 120_000);
    expect(final.status).toBe(500);
    expect(final.message).toMatch(/^profile nohub was rolled back: not reachable within 5 s/);
    expect(await board().ok(['iptables', '-S', 'IOT-AGENT-IN'])).toContain('iot-agent:drop-echo');
    const { client: again } = serviceClients(cloud.describe().hubServiceConnectionString, cloud.ca);
    const status = await invokeMethod(again, deviceId, { methodName: 'getHardeningStatus', payload: {}, responseTimeoutInSeconds: 20 });
    expect(status).toMatchObject({ status: 200, payload: { profile: 'strict', confirmed: true, drift: 0, driftCheckedBy: 'apply' } });
  }, 180_000);

  it('red team: as the agent user, nothing it writes reaches a root unit as environment, options, config or code, and polkit refuses the rest', async () => {
    const t0 = performance.now();
    attempts.push(...await redTeam(board(), { hub: `${network.hostAddress2}:8883`, dps: `${network.hostAddress}:443` }));
    timings['red team'] = performance.now() - t0;
    expect(attempts.length).toBeGreaterThan(100);
    expect(attempts.filter((a) => !a.refused).map((a) => `${a.what} -> ${a.outcome}`)).toEqual([]);
    // The board is as it was: strict applied, confirmed, no drift.
    expect((await board().exec(['iot-agent', 'harden', 'verify'])).code).toBe(0);
  }, 600_000);

  it('boots to the end while the guard watches an unconfirmed profile that keeps the endpoints away (the guard runs beside the boot)', async () => {
    // nohub (nothing out but DNS), applied without confirmation: after the reboot the guard
    // keeps probing the hub and DPS for hardening.bootGraceSeconds (300 s), and boot must not
    // wait for it. The agent stays disabled for this boot, so that only the guard could hold it.
    await board().ok(['iot-agent', 'harden', 'apply', '--profile', 'nohub']);
    await board().ok(['systemctl', 'disable', 'iot-agent.service']);
    await board().poweroff();
    container = undefined;
    const t0 = performance.now();
    await boot(); // waits for `systemctl is-system-running` to say running or degraded, 60 s at most
    timings['boot with the guard watching'] = performance.now() - t0;
    const guard = await board().show('iot-agent-hardening-guard.service', ['ActiveState', 'SubState']);
    expect(guard).toEqual({ ActiveState: 'active', SubState: 'running' });
    expect((await board().ok(['systemctl', 'is-system-running'])).trim()).toMatch(/^(running|degraded)$/);
    expect((await board().show('multi-user.target', ['ActiveState'])).ActiveState).toBe('active');
    // The same guard with a short grace time, in its sandbox: root without CAP_DAC_OVERRIDE
    // reads the agent's cached assignment through the group, probes the hub and DPS, and reverts.
    await board().ok(['systemctl', 'stop', 'iot-agent-hardening-guard.service']);
    const dropIn = '/run/systemd/system/iot-agent-hardening-guard.service.d';
    await board().ok(['sh', '-c', `mkdir -p ${dropIn} && printf '[Service]\\nExecStart=\\nExecStart=/usr/bin/iot-agent harden guard --grace 3\\n' > ${dropIn}/grace.conf`
      + ' && systemctl daemon-reload && systemctl start iot-agent-hardening-guard.service']);
    await waitFor(async () => (await board().show('iot-agent-hardening-guard.service', ['ActiveState'])).ActiveState !== 'active' || undefined, 60_000);
    const journal = await board().ok(['journalctl', '-u', 'iot-agent-hardening-guard.service', '-o', 'cat', '--no-pager']);
    expect(journal).toContain(`Guarding for up to 3 s: ${cloud.hubs[0]!.hostName}:8883, ${network.hostAddress}:443 (assigned hub (cached assignment) and DPS)`);
    expect(journal).toMatch(/^Reverted: .*reverted to the last known good profile strict$/m);
    expect(await board().ok(['iptables', '-S', 'IOT-AGENT-IN'])).toContain('iot-agent:drop-echo');
    await board().ok(['sh', '-c', `rm -r ${dropIn} && systemctl daemon-reload`]);
    // The agent again, for what follows (not waiting for it: under strict it cannot reach the QA TPM).
    await board().ok(['systemctl', 'enable', 'iot-agent.service']);
    await board().ok(['systemctl', 'start', '--no-block', 'iot-agent.service']);
  }, 240_000);

  it('apt remove stops the units and keeps the config; purge removes state and config', async () => {
    await board().ok(['apt-get', 'remove', '-y', '-q', 'iot-agent'], { env: { DEBIAN_FRONTEND: 'noninteractive' }, timeoutMs: 120_000 });
    expect((await board().exec(['systemctl', 'is-active', 'iot-agent.service'])).stdout.trim()).not.toBe('active');
    expect((await board().exec(['pgrep', '-u', 'iot-agent'])).code).toBe(1);
    expect((await board().exec(['test', '-e', '/usr/bin/iot-agent'])).code).toBe(1);
    expect((await board().exec(['test', '-f', '/etc/iot-agent/config.yaml'])).code).toBe(0);
    expect((await board().exec(['test', '-f', '/var/lib/iot-agent/assignment.json'])).code).toBe(0);
    await board().ok(['apt-get', 'purge', '-y', '-q', 'iot-agent'], { env: { DEBIAN_FRONTEND: 'noninteractive' }, timeoutMs: 120_000 });
    for (const gone of ['/etc/iot-agent', '/var/lib/iot-agent', '/var/lib/iot-agent-hardening']) {
      expect((await board().exec(['test', '-e', gone])).code, gone).toBe(1);
    }
  }, 240_000);
});

async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs: number, explain?: () => Promise<string>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    await sleep(500);
  }
  throw new Error(`not within ${timeoutMs} ms${explain ? `:\n${await explain()}` : ''}`);
}
