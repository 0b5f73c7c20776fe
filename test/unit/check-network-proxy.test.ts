import { mkdtempSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { checkNetwork, NETWORK_CHECK_IDS, type NetworkCheckOptions } from '../../agent/check/network-checks.js';
import type { CheckResult } from '../../agent/check/result.js';
import type { Trust } from '../../agent/check/trust.js';
import { DEFAULTS, type AgentConfig } from '../../agent/config.js';
import { ensureServerCredentials, type ServerCredentials } from '../cloud/tls.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { stringContaining, stringMatching } from '../support/matchers.js';
import { closedPort, closeListeners, listen } from './loopback-proxy.js';

/**
 * `iot-agent check`'s network part on a board behind an HTTPS proxy: the proxy is this process
 * on loopback, and every CONNECT it accepts is tunnelled to one HTTPS server on loopback with
 * a certificate for dps.example and hub.example, so nothing but loopback is ever reached.
 * Without a proxy, the checks here stop before any handshake (an unusable CA file).
 */
let made: Promise<ServerCredentials> | undefined;
const credentials = () => (made ??= ensureServerCredentials(mkdtempSync(path.join(tmpdir(), 'iot-agent-check-proxy-')), ['dps.example', 'hub.example']));

afterEach(closeListeners);

async function httpsServer(): Promise<number> {
  const { key, cert } = await credentials();
  return listen(https.createServer({ key, cert }, (_request, response) => response.end()));
}

/**
 * A hub that answers TLS on 8883 and nothing on 443: a loopback address of its own (8883 is
 * fixed, and no other test listens there), with a certificate for that address.
 */
async function hubOn8883Only(): Promise<{ hub: string; trust: Trust }> {
  const hub = randomLoopbackAddress();
  const { key, cert, ca } = await ensureServerCredentials(mkdtempSync(path.join(tmpdir(), 'iot-agent-check-hub-')), [hub]);
  const server = tls.createServer({ key, cert }, (socket) => socket.end());
  server.on('tlsClientError', () => undefined);
  await listen(server, 8883, hub);
  return { hub, trust: { ok: true, ca: [ca], extraCaFile: '/etc/iot-agent/ca.pem' } };
}

type ProxyAnswer = 'tunnel' | 'tunnel-to-silence' | 403 | 407 | 'silent';

/** A CONNECT proxy on loopback that answers every CONNECT the same way; records what it was asked. */
async function proxy(answer: ProxyAnswer): Promise<{ port: number; asked: string[] }> {
  const target = answer === 'tunnel' ? await httpsServer() : answer === 'tunnel-to-silence' ? await listen(net.createServer()) : 0;
  const asked: string[] = [];
  const server = http.createServer();
  server.on('connect', (request: http.IncomingMessage, socket: net.Socket) => {
    asked.push(request.url ?? '');
    socket.on('error', () => undefined);
    if (answer === 'silent') return;
    if (answer === 403 || answer === 407) {
      socket.end(`HTTP/1.1 ${answer} ${answer === 403 ? 'Forbidden' : 'Proxy Authentication Required'}\r\n\r\n`);
      return;
    }
    const upstream = net.connect(target, '127.0.0.1', () => {
      socket.write('HTTP/1.1 200 Connection established\r\n\r\n');
      upstream.pipe(socket).pipe(upstream);
    });
    upstream.on('error', () => socket.destroy());
  });
  return { port: await listen(server), asked };
}

function board(network: Partial<AgentConfig['network']>, dps = 'dps.example'): AgentConfig {
  return { ...DEFAULTS, provisioning: { ...DEFAULTS.provisioning, globalEndpoint: dps }, network: { ...DEFAULTS.network, ...network } };
}

async function trusted(): Promise<Trust> {
  return { ok: true, ca: [(await credentials()).ca], extraCaFile: '/etc/iot-agent/ca.pem' };
}

const unusableCa: Trust = { ok: false, problem: 'tls.extraCaFile /x holds no PEM certificate', hint: 'fix it' };

async function run(options: Partial<NetworkCheckOptions> & { config: AgentConfig; trust: Trust }): Promise<Record<string, CheckResult>> {
  const results = await checkNetwork({ hub: 'hub.example', noHub: 'not provisioned', memory: undefined, stepMs: 5_000, env: {}, ...options });
  expect(results.map((r) => r.id)).toEqual(NETWORK_CHECK_IDS);
  return Object.fromEntries(results.map((r) => [r.id, r]));
}

describe('check: the network through an HTTPS proxy', () => {
  it('reaches DPS and the hub on 443 through the tunnel, leaves the names to the proxy, and uses WebSockets', async () => {
    const { port, asked } = await proxy('tunnel');
    const shown = `http://127.0.0.1:${port}`;
    const r = await run({ config: board({ proxy: shown }), trust: await trusted() });
    expect(asked.sort()).toEqual(['dps.example:443', 'hub.example:443']);
    expect(r.proxy).toEqual({ id: 'proxy', status: 'pass', message: `${shown} (network.proxy) reachable; CONNECT to dps.example:443 accepted, CONNECT to hub.example:443 accepted` });
    expect(r['dps-dns']).toEqual({ id: 'dps-dns', status: 'pass', message: `DPS dps.example is resolved by the proxy ${shown} (the board connects to the proxy only)` });
    expect(r['dps-tls']).toMatchObject({ status: 'pass', message: stringMatching(/^TLS handshake with DPS dps\.example:443 through the proxy \(.*\): certificate /) });
    expect(r['hub-dns']).toEqual({ id: 'hub-dns', status: 'pass', message: `hub hub.example is resolved by the proxy ${shown} (the board connects to the proxy only)` });
    expect(r['hub-tls']).toEqual({ id: 'hub-tls', status: 'pass', message: 'hub hub.example:8883 not used: through the proxy the hub is reached on 443 only' });
    expect(r['hub-wss']).toMatchObject({ status: 'pass', message: stringMatching(/^TLS handshake with hub hub\.example:443 through the proxy /) });
    expect(r['hub-choice']).toEqual({ id: 'hub-choice', status: 'pass',
      message: `MQTT over WebSockets on 443 through the proxy ${shown}: through the proxy, which tunnels 443 only` });
  });

  it('names the proxy\'s refusal of the tunnel as the proxy\'s problem, and DPS and the hub as not reached', async () => {
    const { port } = await proxy(403);
    const r = await run({ config: board({ proxy: `http://127.0.0.1:${port}` }), trust: await trusted() });
    // DPS's refusal is named first; the target is the tunnel's Host header, where 443 goes without saying.
    expect(r.proxy).toEqual({ id: 'proxy', status: 'fail', message: `the proxy http://127.0.0.1:${port} (network.proxy) does not allow a tunnel to dps.example (403)`,
      hint: 'the proxy must allow CONNECT to port 443 of DPS and of the hub; or list the host in network.noProxy' });
    expect(r['dps-tls']).toMatchObject({ status: 'fail', message: stringMatching(/^DPS dps\.example:443: not reached: /), hint: 'see the proxy check' });
    expect(r['hub-wss']).toMatchObject({ status: 'fail', hint: 'see the proxy check' });
    expect(r['hub-choice']).toMatchObject({ status: 'fail', message: stringContaining('but that way does not work from here (see hub-wss)'),
      hint: 'the proxy must allow CONNECT to the hub on 443' });
  });

  it('names refused credentials, without the password', async () => {
    const { port } = await proxy(407);
    const r = await run({ config: board({ proxy: `http://field:Secret1@127.0.0.1:${port}` }), trust: await trusted() });
    expect(r.proxy).toMatchObject({ status: 'fail', message: `the proxy http://***@127.0.0.1:${port} (network.proxy) refused the credentials: wrong user name or password (407)` });
    expect(JSON.stringify(r)).not.toContain('Secret1');
  });

  it('fails a proxy nobody listens on, and DPS and the hub as not reached through it', async () => {
    const port = await closedPort();
    const shown = `http://127.0.0.1:${port}`;
    const r = await run({ config: board({ proxy: shown }), trust: await trusted() });
    expect(r.proxy).toEqual({ id: 'proxy', status: 'fail', message: `the proxy ${shown} (network.proxy) could not be reached (ECONNREFUSED)`,
      hint: 'check the proxy\'s host and port, and that a firewall lets the board reach it' });
    expect(r['dps-tls']).toEqual({ id: 'dps-tls', status: 'fail', message: `DPS dps.example:443: not reached: the proxy ${shown} (network.proxy) could not be reached (ECONNREFUSED)`,
      hint: 'see the proxy check' });
  });

  it('fails a proxy that never answers the CONNECT within the step\'s time', async () => {
    const { port } = await proxy('silent');
    const r = await run({ config: board({ proxy: `http://127.0.0.1:${port}` }), trust: await trusted(), stepMs: 300 });
    expect(r.proxy).toEqual({ id: 'proxy', status: 'fail', message: `http://127.0.0.1:${port} (network.proxy): no answer to CONNECT dps.example:443 within 0.3 s`,
      hint: 'check that the proxy is up and that a firewall lets the board reach it' });
  });

  it('passes a proxy that opened the tunnel when the endpoint behind it does not answer TLS, and fails the endpoint', async () => {
    const { port } = await proxy('tunnel-to-silence');
    const r = await run({ config: board({ proxy: `http://127.0.0.1:${port}` }), trust: await trusted(), stepMs: 500 });
    expect(r.proxy).toMatchObject({ status: 'pass', message: stringContaining('CONNECT to dps.example:443 accepted, CONNECT to hub.example:443 accepted') });
    expect(r['dps-tls']).toMatchObject({ status: 'fail', message: 'DPS dps.example:443 through the proxy: TCP connected, but the TLS handshake did not finish within 0.5 s' });
  });

  it('with mqtt behind a proxy, tunnels DPS only and resolves the hub for a direct 8883', async () => {
    const { port, asked } = await proxy('tunnel');
    const r = await run({ config: board({ proxy: `http://127.0.0.1:${port}`, hubProtocol: 'mqtt' }), trust: await trusted(), hub: '127.0.0.1', stepMs: 1_000 });
    expect(asked).toEqual(['dps.example:443']);
    expect(r.proxy).toEqual({ id: 'proxy', status: 'pass', message: `http://127.0.0.1:${port} (network.proxy) reachable; CONNECT to dps.example:443 accepted` });
    expect(r['hub-dns']).toEqual({ id: 'hub-dns', status: 'pass', message: 'hub 127.0.0.1 is an IP address: nothing to resolve' });
    expect(r['hub-wss']).toEqual({ id: 'hub-wss', status: 'pass', message: 'hub 443 not used: network.hubProtocol is mqtt' });
    expect(r['hub-tls']!.message).toMatch(/^hub 127\.0\.0\.1:8883/);
    expect(r['hub-tls']!.message).not.toContain('not used');
  });

  it('with an unusable CA file, names what the proxy carries and that it was not tried, and sends no CONNECT', async () => {
    const { port, asked } = await proxy('tunnel');
    const shown = `http://127.0.0.1:${port}`;
    const r = await run({ config: board({ proxy: shown }), trust: unusableCa });
    expect(asked).toEqual([]);
    expect(r.proxy).toEqual({ id: 'proxy', status: 'warn',
      message: `${shown} (network.proxy) carries dps.example:443 and hub.example:443; not tried: tls.extraCaFile /x holds no PEM certificate`, hint: 'fix it' });
    expect(r['dps-tls']).toEqual({ id: 'dps-tls', status: 'fail', message: 'not tried: tls.extraCaFile /x holds no PEM certificate', hint: 'fix it' });
    expect(r['hub-wss']).toEqual({ id: 'hub-wss', status: 'fail', message: 'not tried: tls.extraCaFile /x holds no PEM certificate', hint: 'fix it' });
  });

  it('with an unusable CA file and no hub known, names DPS alone as what the proxy from the environment carries', async () => {
    const r = await run({ config: board({ noProxy: ['other.example'] }), trust: unusableCa, hub: undefined, env: { https_proxy: '127.0.0.1:1' } });
    expect(r.proxy).toEqual({ id: 'proxy', status: 'warn',
      message: 'http://127.0.0.1:1 (https_proxy) carries dps.example:443; not tried: tls.extraCaFile /x holds no PEM certificate', hint: 'fix it' });
    expect(r['hub-dns']).toMatchObject({ status: 'warn', message: 'not provisioned, no hub known' });
  });

  it('says the proxy is not used when noProxy lists DPS and the hub, and goes direct', async () => {
    const r = await run({ config: board({ proxy: 'http://127.0.0.1:1', noProxy: ['*'] }, '127.0.0.1'), trust: unusableCa, hub: '127.0.0.2' });
    expect(r.proxy).toEqual({ id: 'proxy', status: 'pass', message: 'http://127.0.0.1:1 (network.proxy): not used for DPS or the hub (network.noProxy)' });
    expect(r['dps-dns']).toMatchObject({ status: 'pass', message: 'DPS 127.0.0.1 is an IP address: nothing to resolve' });
    expect(r['hub-dns']).toMatchObject({ status: 'pass', message: 'hub 127.0.0.2 is an IP address: nothing to resolve' });
  });

  it('fails an unusable proxy from the environment, naming the variable and keeping the password out', async () => {
    const r = await run({ config: board({}, '127.0.0.1'), trust: unusableCa, hub: '127.0.0.2', env: { https_proxy: 'http://u:Secret1@proxy' } });
    expect(r.proxy).toMatchObject({ status: 'fail', message: 'https_proxy: the proxy port is missing', hint: stringContaining('http://[user:password@]host:port') });
    expect(JSON.stringify(r)).not.toContain('Secret1');
  });

  it('says there is no proxy when neither the config nor the environment names one', async () => {
    const r = await run({ config: board({}, '127.0.0.1'), trust: unusableCa, hub: '127.0.0.2' });
    expect(r.proxy).toEqual({ id: 'proxy', status: 'pass', message: 'none: connections go direct (network.proxy and https_proxy are unset)' });
  });
});

describe('check: a hub that answers on 8883 only', () => {
  it('in auto, passes 8883, warns that 443 does not answer as the agent uses 8883, and chooses 8883', async () => {
    const { hub, trust } = await hubOn8883Only();
    const r = await run({ config: board({}, '127.0.0.1'), trust, hub, stepMs: 2_000 });
    expect(r['hub-tls']).toMatchObject({ status: 'pass', message: stringMatching(new RegExp(`^TLS handshake with hub ${hub.replaceAll('.', '\\.')}:8883 \\(TLSv1\\.3\\): `)) });
    expect(r['hub-wss']).toEqual({ id: 'hub-wss', status: 'warn',
      message: `hub ${hub}:443: connection refused: nothing listens there, or a firewall rejects it (the agent uses 8883)`, hint: stringContaining('firewall') });
    expect(r['hub-choice']).toEqual({ id: 'hub-choice', status: 'pass', message: 'MQTT on 8883: auto: 8883 first' });
  });

  it('in auto with WebSockets remembered, says 8883 answers now that 443 does not', async () => {
    const { hub, trust } = await hubOn8883Only();
    const memory = { protocol: 'mqtt-ws' as const, since: Date.now() - 60_000, retryMqttAt: Date.now() + 3_600_000 };
    const r = await run({ config: board({}, '127.0.0.1'), trust, hub, memory, stepMs: 2_000 });
    expect(r['hub-choice']).toEqual({ id: 'hub-choice', status: 'pass', message: 'MQTT on 8883: WebSockets were remembered, but 443 does not answer now and 8883 does' });
  });

  it('with mqtt, passes the choice on 8883 and leaves 443 alone', async () => {
    const { hub, trust } = await hubOn8883Only();
    const r = await run({ config: board({ hubProtocol: 'mqtt' }, '127.0.0.1'), trust, hub, stepMs: 2_000 });
    expect(r['hub-tls']).toMatchObject({ status: 'pass' });
    expect(r['hub-wss']).toEqual({ id: 'hub-wss', status: 'pass', message: 'hub 443 not used: network.hubProtocol is mqtt' });
    expect(r['hub-choice']).toEqual({ id: 'hub-choice', status: 'pass', message: 'MQTT on 8883: network.hubProtocol is mqtt' });
  });
});

describe('check: the hub\'s protocol without a handshake', () => {
  const direct = (hubProtocol: AgentConfig['network']['hubProtocol']) => board({ hubProtocol }, '127.0.0.1');

  it('warns for every hub check while no hub is known, saying why', async () => {
    const r = await run({ config: direct('auto'), trust: unusableCa, hub: undefined, noHub: 'the cached assignment is not usable (see state)' });
    for (const id of ['hub-dns', 'hub-tls', 'hub-wss', 'hub-choice']) {
      expect(r[id]).toEqual({ id, status: 'warn', message: 'the cached assignment is not usable (see state), no hub known', hint: 'the hub is known once DPS has assigned one' });
    }
  });

  it('with mqtt, leaves 443 alone and fails the choice while 8883 does not work', async () => {
    const r = await run({ config: direct('mqtt'), trust: unusableCa, hub: '127.0.0.2' });
    expect(r['dps-tls']).toEqual({ id: 'dps-tls', status: 'fail', message: 'not tried: tls.extraCaFile /x holds no PEM certificate', hint: 'fix it' });
    expect(r['hub-tls']).toEqual({ id: 'hub-tls', status: 'fail', message: 'not tried: tls.extraCaFile /x holds no PEM certificate', hint: 'fix it' });
    expect(r['hub-wss']).toEqual({ id: 'hub-wss', status: 'pass', message: 'hub 443 not used: network.hubProtocol is mqtt' });
    expect(r['hub-choice']).toEqual({ id: 'hub-choice', status: 'fail',
      message: 'MQTT on 8883 (network.hubProtocol is mqtt), but that way does not work from here (see hub-tls)',
      hint: 'network.hubProtocol: auto uses whichever of 8883 and 443 works' });
  });

  it('with mqtt-ws, leaves 8883 alone and fails the choice while 443 does not work', async () => {
    const r = await run({ config: direct('mqtt-ws'), trust: unusableCa, hub: '127.0.0.2' });
    expect(r['hub-tls']).toEqual({ id: 'hub-tls', status: 'pass', message: 'hub 8883 not used: network.hubProtocol is mqtt-ws' });
    expect(r['hub-wss']).toMatchObject({ status: 'fail', message: 'not tried: tls.extraCaFile /x holds no PEM certificate' });
    expect(r['hub-choice']).toMatchObject({ status: 'fail', message: 'MQTT over WebSockets on 443 (network.hubProtocol is mqtt-ws), but that way does not work from here (see hub-wss)' });
  });

  it('in auto, fails the choice when neither 8883 nor 443 works, whatever was remembered', async () => {
    const neither = { id: 'hub-choice', status: 'fail', message: 'neither 8883 nor 443 of the hub answers (see hub-tls, hub-wss)', hint: 'a firewall must let TCP 8883 or 443 out to the hub' };
    expect((await run({ config: direct('auto'), trust: unusableCa, hub: '127.0.0.2' }))['hub-choice']).toEqual(neither);
    const remembered = { protocol: 'mqtt-ws' as const, since: Date.now() - 60_000, retryMqttAt: Date.now() + 3_600_000 };
    expect((await run({ config: direct('auto'), trust: unusableCa, hub: '127.0.0.2', memory: remembered }))['hub-choice']).toEqual(neither);
  });
});
