import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS, type AgentConfig } from '../../agent/config.js';
import { writeAssignment } from '../../agent/state/assignment-store.js';
import { networkCollector, timeCollector } from '../../agent/support/collect-system.js';
import { runCollector, type CollectedFile } from '../../agent/support/collector.js';
import type { BundleSources } from '../../agent/support/sources.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { restorePath, standInPrograms } from './stand-in-programs.js';
import { ofType } from '../support/matchers.js';

const dirs: string[] = [];
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  restorePath();
  for (const cleanup of cleanups.splice(0)) await cleanup();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Sources whose DPS (and hub, once assigned) is a loopback address of the test's own: nothing else is ever connected to. */
function sources(daemon?: Record<string, unknown>): { sources: BundleSources; address: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-net-'));
  dirs.push(dir);
  const address = randomLoopbackAddress();
  const config: AgentConfig = { ...structuredClone(DEFAULTS), stateDir: dir, provisioning: { ...DEFAULTS.provisioning, globalEndpoint: address } };
  const s = { config, daemon: daemon ? { status: daemon } : undefined } as unknown as BundleSources;
  return { sources: s, address };
}

function json(files: CollectedFile[], name: string): Record<string, unknown> {
  const file = files.find((f) => f.name === name);
  if (!file || !('json' in file)) throw new Error(`no ${name}`);
  return file.json as Record<string, unknown>;
}

async function listen(host: string, port: number): Promise<void> {
  const server = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
}

/** Sets environment variables for one test; the afterEach puts the old values back. */
function setEnv(values: Record<string, string | undefined>): void {
  const saved = Object.fromEntries(Object.keys(values).map((key) => [key, process.env[key]]));
  cleanups.push(() => {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });
  for (const [key, value] of Object.entries(values)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
}

/** A PATH on which no program is found: every tool a collector runs is "not installed". */
function emptyPath(): void {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-empty-path-'));
  dirs.push(dir);
  setEnv({ PATH: dir });
}

const PROXY_VARIABLES = ['https_proxy', 'HTTPS_PROXY', 'http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY', 'no_proxy', 'NO_PROXY'];

const IP_STAND_IN = `case "$*" in
  "-j address show") echo '[{"ifname":"lo"}]' ;;
  "-j -4 route show table all") echo 'not json' ;;
  *) printf '\nError: ipv6 is disabled\n' >&2; exit 2 ;;
esac`;

describe('the network collector', () => {
  it('tries DPS on 443 only until a hub is assigned, and says whether each accepts a TCP connection, naming its role', async () => {
    standInPrograms({ ip: IP_STAND_IN });
    const { sources: s, address } = sources();
    const { entry, files } = await runCollector(networkCollector(s));
    expect(entry.status).toBe('ok');
    const network = json(files, 'network/network.json');
    expect(network.hubKnown).toBe(false);
    expect(network.reachability).toEqual([{ role: 'dps', target: `${address}:443`, reachable: false, ms: ofType(Number), error: 'ECONNREFUSED' }]);
  });

  it('tries the assigned hub on 8883 and 443, then DPS, naming each one\'s role', async () => {
    standInPrograms({ ip: IP_STAND_IN });
    const { sources: s, address } = sources();
    const hub = randomLoopbackAddress();
    await writeAssignment(s.config.stateDir, {
      assignedHub: hub, deviceId: 'd1', registrationId: 'r1', idScope: '0ne1', globalEndpoint: address, assignedAt: '2026-03-15T00:00:00.000Z', identityKeyHandle: 0x81000100,
    });
    await listen(hub, 8883);
    const { files } = await runCollector(networkCollector(s));
    const network = json(files, 'network/network.json');
    expect(network.hubKnown).toBe(true);
    expect(network.reachability).toEqual([
      { role: 'hub', target: `${hub}:8883`, reachable: true, ms: ofType(Number) },
      { role: 'hub', target: `${hub}:443`, reachable: false, ms: ofType(Number), error: 'ECONNREFUSED' },
      { role: 'dps', target: `${address}:443`, reachable: false, ms: ofType(Number), error: 'ECONNREFUSED' },
    ]);
  });

  it('keeps what ip answered as JSON, and says when it failed or did not answer JSON', async () => {
    standInPrograms({ ip: IP_STAND_IN });
    const { files } = await runCollector(networkCollector(sources().sources));
    expect(json(files, 'network/network.json')).toMatchObject({
      addresses: [{ ifname: 'lo' }],
      routes: { ipv4: { error: 'output is not JSON', text: 'not json\n' }, ipv6: { error: 'exit code 2: Error: ipv6 is disabled' } },
    });
    expect(files.find((f) => f.name === 'network/resolv.conf')).toEqual({ name: 'network/resolv.conf', text: readFileSync('/etc/resolv.conf', 'utf8') });
  });

  it('keeps the first 64 KiB of an answer of ip that is not JSON', async () => {
    standInPrograms({ ip: `case "$*" in
  "-j address show") head -c 100000 /dev/zero | tr '\\0' x ;;
  *) echo "[]" ;;
esac` });
    const { files } = await runCollector(networkCollector(sources().sources));
    expect(json(files, 'network/network.json').addresses).toEqual({ error: 'output is not JSON', text: 'x'.repeat(64 * 1024) });
  });

  it('gives the proxy settings of the environment without their credentials', async () => {
    standInPrograms({ ip: IP_STAND_IN });
    setEnv({ HTTPS_PROXY: 'http://user:s3cret@127.0.0.9:9', no_proxy: 'localhost,.internal' });
    const { files } = await runCollector(networkCollector(sources().sources));
    expect(json(files, 'network/network.json').proxyEnvironment).toMatchObject({
      HTTPS_PROXY: 'http://[redacted]@127.0.0.9:9', no_proxy: 'localhost,.internal',
    });
  });
  it('says what it reads and how long it may take', () => {
    expect(networkCollector(sources().sources)).toMatchObject({
      name: 'network', reads: '/etc/resolv.conf, proxy variables, TCP connects to the hub and DPS', timeoutMs: 10_000,
    });
  });

  it('names the proxy in force, without its credentials, and tries it first', async () => {
    standInPrograms({ ip: IP_STAND_IN });
    const { sources: s, address } = sources();
    const proxy = randomLoopbackAddress();
    s.config.network.proxy = `http://user:s3cret@${proxy}:3128`;
    await listen(proxy, 3128);
    const started = performance.now();
    const { files } = await runCollector(networkCollector(s));
    const network = json(files, 'network/network.json') as { proxy: unknown; reachability: { ms: number }[] };
    expect(network.proxy).toEqual({ url: `http://***@${proxy}:3128`, source: 'network.proxy' });
    expect(network.reachability).toEqual([
      { role: 'proxy', target: `${proxy}:3128`, reachable: true, ms: ofType(Number) },
      { role: 'dps', target: `${address}:443`, reachable: false, ms: ofType(Number), error: 'ECONNREFUSED' },
    ]);
    expect(network.reachability.every((r) => r.ms >= 0 && r.ms <= performance.now() - started)).toBe(true);
  });

  it('says why the proxy setting cannot be used, and still tries DPS', async () => {
    standInPrograms({ ip: IP_STAND_IN });
    const { sources: s, address } = sources();
    s.config.network.proxy = 'ftp://127.0.0.1:21';
    const { entry, files } = await runCollector(networkCollector(s));
    expect(entry.status).toBe('ok');
    expect(json(files, 'network/network.json')).toMatchObject({
      proxy: { error: 'network.proxy: the scheme must be http:// (got ftp://)' },
      reachability: [{ role: 'dps', target: `${address}:443`, reachable: false, ms: ofType(Number), error: 'ECONNREFUSED' }],
    });
  });

  it('says there is no proxy when none is set', async () => {
    standInPrograms({ ip: IP_STAND_IN });
    setEnv(Object.fromEntries(PROXY_VARIABLES.map((name) => [name, undefined])));
    const { files } = await runCollector(networkCollector(sources().sources));
    expect(json(files, 'network/network.json')).toMatchObject({ proxy: null, proxyEnvironment: {} });
  });

  it('gives every proxy variable that is set, and only those, with credentials removed with or without a scheme', async () => {
    standInPrograms({ ip: IP_STAND_IN });
    const { sources: s } = sources();
    s.config.network.proxy = 'http://127.0.0.1:9';
    s.config.network.noProxy = [];
    const values = Object.fromEntries(PROXY_VARIABLES.map((name, i) => [name, `${name}:pw${i}@127.0.0.${i + 2}:3128`]));
    setEnv({ ...values, ALL_PROXY: undefined });
    const { entry, files } = await runCollector(networkCollector(s));
    expect(entry.status).toBe('ok');
    expect(json(files, 'network/network.json').proxyEnvironment).toEqual(Object.fromEntries(PROXY_VARIABLES.filter((name) => name !== 'ALL_PROXY')
      .map((name) => [name, `[redacted]@127.0.0.${PROXY_VARIABLES.indexOf(name) + 2}:3128`])));
  });

  it('says ip is not installed when it is not', async () => {
    emptyPath();
    const { entry, files } = await runCollector(networkCollector(sources().sources));
    expect(entry.status).toBe('ok');
    expect(json(files, 'network/network.json')).toMatchObject({
      addresses: { error: 'ip is not installed' }, routes: { ipv4: { error: 'ip is not installed' }, ipv6: { error: 'ip is not installed' } },
    });
    expect(entry.commands.map((c) => c.argv.join(' '))).toEqual(['ip -j address show', 'ip -j -4 route show table all', 'ip -j -6 route show table all']);
  });
});

describe('the time collector', () => {
  it('gives timedatectl\'s settings as a map, and says the clock offset is measured by the daemon only', async () => {
    standInPrograms({ timedatectl: 'printf "Timezone=UTC\\nNTP=yes\\nNTPMessage={ Leap=0 }\\nnothing here\\n"' });
    const before = Date.now();
    const { files } = await runCollector(timeCollector(sources().sources));
    const time = json(files, 'time.json');
    expect(time).toEqual({
      systemTime: ofType(String), timedatectl: { Timezone: 'UTC', NTP: 'yes', NTPMessage: '{ Leap=0 }' },
      clockOffsetMs: null, clockOffsetNote: 'measured by the running daemon only',
    });
    expect(Date.parse(time.systemTime as string)).toBeGreaterThanOrEqual(before - 1);
  });

  it('says what it reads and how long it may take', () => {
    expect(timeCollector(sources().sources)).toMatchObject({ name: 'time', reads: 'timedatectl show, the daemon\'s measured clock offset', timeoutMs: 5_000 });
  });

  it('says timedatectl is not installed when it is not', async () => {
    emptyPath();
    const { entry, files } = await runCollector(timeCollector(sources().sources));
    expect(entry).toMatchObject({ status: 'ok', commands: [{ argv: ['timedatectl', 'show'], exitCode: null, error: 'timedatectl is not installed' }] });
    expect(json(files, 'time.json').timedatectl).toEqual({ error: 'timedatectl is not installed' });
  });

  it('takes the clock offset from the running daemon', async () => {
    standInPrograms({ timedatectl: 'echo NTP=no' });
    const measured = await runCollector(timeCollector(sources({ clockOffsetMs: -420 }).sources));
    expect(json(measured.files, 'time.json')).toMatchObject({ clockOffsetMs: -420, clockOffsetNote: 'service clock minus device clock; null: not measured yet' });
    const notYet = await runCollector(timeCollector(sources({}).sources));
    expect(json(notYet.files, 'time.json')).toMatchObject({ clockOffsetMs: null, clockOffsetNote: 'service clock minus device clock; null: not measured yet' });
  });

  it('says why timedatectl gave nothing: its first line of complaint, or its exit code', async () => {
    standInPrograms({ timedatectl: 'printf "\\n  System has not been booted with systemd.\\nFailed to connect to bus\\n" >&2; exit 1' });
    const said = await runCollector(timeCollector(sources().sources));
    expect(json(said.files, 'time.json').timedatectl).toEqual({ error: 'System has not been booted with systemd.' });
    standInPrograms({ timedatectl: 'exit 3' });
    const silent = await runCollector(timeCollector(sources().sources));
    expect(json(silent.files, 'time.json').timedatectl).toEqual({ error: 'exit code 3' });
  });
});
