import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { describeFailures, formatHostPort, parseHostPort, probeTargets, probeUntilReachable, type HostPort, type ProbeResult } from '../../hardening/probe.js';
import { hardeningRunner } from '../../hardening/runner.js';
import { ensureServerCredentials, listenerTlsOptions } from '../cloud/tls.js';
import { TinyProxy } from '../support/tinyproxy.js';
import { stringMatching } from '../support/matchers.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function listen(server: TcpServer): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => sockets.add(s));
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return (server.address() as { port: number }).port;
}

/** A loopback TLS listener that, like Azure's endpoints, hands its certificate only to a client naming `hostName`. */
async function tlsListener(hostName: string): Promise<number> {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-probe-tls-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const credentials = await ensureServerCredentials(dir, ['localhost', '127.0.0.1']);
  return listen(createTlsServer(listenerTlsOptions(credentials, hostName), (s) => s.on('error', () => undefined)));
}

/** A port nothing listens on: one that was just closed. */
async function closedPort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('confirm targets', () => {
  it('parses host:port, IPv6 in brackets included', () => {
    expect(parseHostPort('hub.example.net:8883')).toEqual({ host: 'hub.example.net', port: 8883 });
    expect(parseHostPort('[fd00::1]:443')).toEqual({ host: 'fd00::1', port: 443 });
    expect(parseHostPort('192.0.2.1:1')).toEqual({ host: '192.0.2.1', port: 1 });
    expect(parseHostPort('hub:65535')).toEqual({ host: 'hub', port: 65535 });
  });

  it('rejects a missing or bad port, and a host that is not a DNS name or address, as a usage error', () => {
    for (const bad of ['hub.example.net', 'hub:0', 'hub:65536', 'hub:123456', 'hub:', 'fd00::1:443', '[hub]:443', '[fd00::1]443', 'hub_x:443', 'a..b:443',
      ' hub:443', 'hub:443 ', 'x hub:443', '-hub:443', 'a/b:443', `${'a'.repeat(64)}.net:443`]) {
      expect(() => parseHostPort(bad), bad).toThrow(`invalid host:port ${JSON.stringify(bad)}`);
    }
    let error: unknown;
    try { parseHostPort('hub'); } catch (err) { error = err; }
    expect(error).toMatchObject({ exitCode: 2, hint: 'give the hub or DPS endpoint as host:port, e.g. myhub.azure-devices.net:8883 or [fd00::1]:443' });
  });

  it('prints an IPv6 address in brackets, and reads back what it prints', () => {
    expect(formatHostPort({ host: 'fd00::1', port: 443 })).toBe('[fd00::1]:443');
    expect(formatHostPort({ host: 'hub.example.net', port: 8883 })).toBe('hub.example.net:8883');
    expect(parseHostPort(formatHostPort({ host: '::1', port: 8883 }))).toEqual({ host: '::1', port: 8883 });
  });
});

describe('probing the endpoints with a TLS handshake', () => {
  it('proves a target reachable by completing a handshake, naming a host by SNI as Azure needs', async () => {
    const port = await tlsListener('localhost');
    expect(await probeTargets(hardeningRunner(), [{ host: 'localhost', port }], 5_000)).toEqual([
      { target: `localhost:${port}`, ok: true, detail: stringMatching(/^TLS handshake completed \(TLSv1\.[23]\)$/) },
    ]);
  });

  it('reaches an address without SNI, and reports each target in order with why it failed', async () => {
    const good = await tlsListener('127.0.0.1');
    const refused = await closedPort();
    const results = await probeTargets(hardeningRunner(), [{ host: '127.0.0.1', port: refused }, { host: '127.0.0.1', port: good }], 5_000);
    expect(results).toEqual([
      { target: `127.0.0.1:${refused}`, ok: false, detail: 'ECONNREFUSED' },
      { target: `127.0.0.1:${good}`, ok: true, detail: stringMatching(/^TLS handshake completed/) },
    ]);
  });

  it('gives up on a listener that never answers the handshake, waiting at least 100 ms', async () => {
    const port = await listen(createTcpServer(() => undefined));
    expect(await probeTargets(hardeningRunner(), [{ host: '127.0.0.1', port }], 10)).toEqual([
      { target: `127.0.0.1:${port}`, ok: false, detail: 'no TLS handshake within 100 ms' },
    ]);
  });

  it('reports a probe that could not run as a failure, with the reason', async () => {
    const runner = hardeningRunner([path.join(tmpdir(), 'iot-agent-no-such-program')]);
    const [result] = await probeTargets(runner, [{ host: 'fd00::1', port: 443 }], 1_000);
    expect(result).toEqual({ target: '[fd00::1]:443', ok: false, detail: stringMatching(/iot-agent-no-such-program is not installed$/) });
  });
});

describe('the one probe loop', () => {
  const hub: HostPort = { host: 'hub.example.net', port: 8883 };
  const clock = () => {
    let t = 1_000_000;
    return { now: () => t, sleep: (ms: number) => { t += ms; return Promise.resolve(); } };
  };
  const failing = (targets: readonly HostPort[]): Promise<ProbeResult[]> => Promise.resolve(targets.map((t) => ({ target: t.host, ok: false, detail: 'ECONNREFUSED' })));

  it('stops at the first round in which every target answers', async () => {
    let round = 0;
    const probe = (targets: readonly HostPort[]) => Promise.resolve(targets.map((t) => ({ target: t.host, ok: ++round >= 3, detail: '' })));
    const c = clock();
    expect(await probeUntilReachable({ probe, targets: [hub], deadline: c.now() + 60_000, intervalMs: 1_000, ...c })).toMatchObject({ ok: true, rounds: 3 });
  });

  it('is not reachable while any one target fails', async () => {
    const probe = (targets: readonly HostPort[]) => Promise.resolve(targets.map((t, i) => ({ target: t.host, ok: i === 0, detail: '' })));
    const c = clock();
    const outcome = await probeUntilReachable({ probe, targets: [hub, hub], deadline: c.now() + 2_000, intervalMs: 1_000, ...c });
    expect(outcome).toMatchObject({ ok: false, rounds: 3 });
    expect(outcome.probes.map((p) => p.ok)).toEqual([true, false]);
  });

  it('gives up at the deadline, and after a bounded number of rounds if the clock stands still', async () => {
    const c = clock();
    expect(await probeUntilReachable({ probe: failing, targets: [hub], deadline: c.now() + 10_000, intervalMs: 3_000, ...c })).toMatchObject({ ok: false, rounds: 5 });
    expect(await probeUntilReachable({ probe: failing, targets: [hub], deadline: 6_000, intervalMs: 3_000, now: () => 0, sleep: () => Promise.resolve() }))
      .toMatchObject({ ok: false, rounds: 4 });
  });

  it('probes once more after a past deadline, never sleeping, and survives an interval of 0', async () => {
    const sleeps: number[] = [];
    const past = await probeUntilReachable({ probe: failing, targets: [hub], deadline: 500, intervalMs: 1_000, now: () => 1_000, sleep: (ms) => { sleeps.push(ms); return Promise.resolve(); } });
    expect(past).toMatchObject({ ok: false, rounds: 1 });
    expect(sleeps).toEqual([]);
    const zero = await probeUntilReachable({ probe: failing, targets: [hub], deadline: 2, intervalMs: 0, now: () => 0, sleep: () => Promise.resolve() });
    expect(zero.rounds).toBe(4);
  });

  it('sleeps the interval, only the time left before the deadline at the end', async () => {
    const c = clock();
    const sleeps: number[] = [];
    const sleep = async (ms: number) => { sleeps.push(ms); await c.sleep(ms); };
    await probeUntilReachable({ probe: failing, targets: [hub], deadline: c.now() + 2_500, intervalMs: 1_000, now: c.now, sleep });
    expect(sleeps).toEqual([1_000, 1_000, 500]);
  });

  it('gives each round at most 3 s, and never less than 200 ms, for its handshakes', async () => {
    const c = clock();
    const timeouts: number[] = [];
    const probe = async (targets: readonly HostPort[], timeoutMs: number) => { timeouts.push(timeoutMs); return failing(targets); };
    await probeUntilReachable({ probe, targets: [hub], deadline: c.now() + 4_000, intervalMs: 1_000, ...c });
    expect(timeouts).toEqual([3_000, 3_000, 2_000, 1_000, 200]);
  });

  it('waits in real time when given no clock', async () => {
    const started = Date.now();
    const outcome = await probeUntilReachable({ probe: failing, targets: [hub], deadline: started + 60, intervalMs: 30 });
    expect(outcome.ok).toBe(false);
    expect(outcome.rounds).toBeGreaterThanOrEqual(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(55);
  });
});

describe('describing failed probes', () => {
  it('lists each target that did not answer with why, and only those', () => {
    expect(describeFailures([
      { target: 'hub:8883', ok: false, detail: 'ECONNREFUSED' }, { target: 'dps:443', ok: true, detail: 'TLS' }, { target: '[fd00::1]:443', ok: false, detail: 'timeout' },
    ])).toBe('hub:8883: ECONNREFUSED; [fd00::1]:443: timeout');
    expect(describeFailures([])).toBe('');
  });
});

describe('probing through the configured HTTPS proxy', () => {
  /** A real proxy (tinyproxy) that asks for Basic credentials and may CONNECT to `port`. */
  async function proxyTo(port: number): Promise<TinyProxy> {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-probe-proxy-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const proxy = await TinyProxy.start({ dir, user: { name: 'agent', password: 'pw' }, connectPorts: [port] });
    cleanups.push(() => proxy.stop());
    return proxy;
  }
  const basic = (user: string) => `Basic ${Buffer.from(user).toString('base64')}`;

  it('completes the handshake inside a CONNECT tunnel, with the proxy\'s credentials', async () => {
    const port = await tlsListener('127.0.0.1');
    const proxy = await proxyTo(port);
    const via = { host: proxy.address, port: proxy.port, authorization: basic('agent:pw'), direct: () => false };
    expect(await probeTargets(hardeningRunner(), [{ host: '127.0.0.1', port }], 5_000, via)).toEqual([
      { target: `127.0.0.1:${port}`, ok: true, detail: stringMatching(/^TLS handshake completed \(TLSv1\.[23]\) through the proxy$/) },
    ]);
    expect(proxy.connects()).toEqual([`127.0.0.1:${port}`]);
    const [refused] = await probeTargets(hardeningRunner(), [{ host: '127.0.0.1', port }], 5_000, { ...via, authorization: basic('agent:wrong') });
    expect(refused).toMatchObject({ ok: false, detail: stringMatching(/^the proxy answered the CONNECT with 40[17]$/) });
  });

  it('knows the proxy by its host, in any case, and its port: only the proxy itself is probed by a TCP connection', async () => {
    // A proxy that accepts connections and never answers a CONNECT.
    const port = await listen(createTcpServer());
    const via = (host: string) => ({ host, port, direct: () => false });
    const [proxy] = await probeTargets(hardeningRunner(), [{ host: 'localhost', port }], 300, via('LocalHost'));
    expect(proxy).toEqual({ target: `localhost:${port}`, ok: true, detail: 'TCP connection to the proxy' });
    const others = await probeTargets(hardeningRunner(), [{ host: '127.0.0.2', port }, { host: '127.0.0.1', port: port === 65535 ? 1 : port + 1 }], 300, via('127.0.0.1'));
    expect(others.map((p) => [p.ok, p.detail])).toEqual([[false, 'no TLS handshake within 300 ms'], [false, 'no TLS handshake within 300 ms']]);
  });

  it('reaches a target the proxy is bypassed for directly, and the proxy itself by a TCP connection', async () => {
    const port = await tlsListener('127.0.0.1');
    const proxy = await proxyTo(port);
    const via = { host: proxy.address, port: proxy.port, authorization: basic('agent:pw'), direct: (t: HostPort) => t.port === port };
    expect(await probeTargets(hardeningRunner(), [{ host: '127.0.0.1', port }, { host: proxy.address, port: proxy.port }], 5_000, via)).toEqual([
      { target: `127.0.0.1:${port}`, ok: true, detail: stringMatching(/^TLS handshake completed \(TLSv1\.[23]\)$/) },
      { target: `${proxy.address}:${proxy.port}`, ok: true, detail: 'TCP connection to the proxy' },
    ]);
    expect(proxy.connects()).toEqual([]);
  });
});
