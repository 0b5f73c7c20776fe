import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { egressFor, neededEndpoints, probeProxyFor } from '../../agent/commands/needed-endpoints.js';
import { parseConfig } from '../../agent/config.js';
import { HardeningEngine } from '../../hardening/engine.js';
import { loadProfile } from '../../hardening/load-profile.js';
import { NetnsPair, PYTHON, requireHardeningTools } from '../support/netns.js';

const PROXY_PORT = 3128;
const USER = { name: 'board', password: 'Pr0xyPw' };

/**
 * The strict profile on a board whose config names an authenticating proxy: the device
 * namespace gets the rules; the peer namespace holds the proxy (a real tinyproxy on its
 * first address) and the "hub" (openssl s_server on 443 at its second address).
 */
describe('strict with a proxy configured, in a network namespace', () => {
  let pair: NetnsPair;
  let root: string;
  let proxyLog: string;

  /** A TCP connection from the device namespace: what its firewall lets out. */
  const connectFromDevice = async (address: string, port: number): Promise<string> => {
    const script = [
      'import socket',
      'try:',
      `    socket.create_connection(("${address}", ${port}), timeout=2).close(); print("connected")`,
      'except socket.timeout: print("timeout")',
      'except ConnectionRefusedError: print("refused")',
      'except OSError as e: print(e)',
    ].join('\n');
    return (await pair.exec(pair.device, [PYTHON, '-c', script])).stdout.trim();
  };

  beforeAll(async () => {
    requireHardeningTools(['iptables-nft-save', 'iptables-nft-restore', 'tinyproxy', 'openssl']);
    pair = await NetnsPair.create();
    root = mkdtempSync(path.join(tmpdir(), 'iot-agent-harden-proxy-'));
    proxyLog = path.join(root, 'tinyproxy.log');
    writeFileSync(proxyLog, '');
    writeFileSync(path.join(root, 'tinyproxy.conf'), [
      `Port ${PROXY_PORT}`, `Listen ${pair.peerAddress}`, 'Timeout 60', `LogFile "${proxyLog}"`, 'LogLevel Connect',
      'ConnectPort 443', `BasicAuth ${USER.name} ${USER.password}`, '',
    ].join('\n'));
    pair.spawn(pair.peer, ['/usr/bin/timeout', '300', '/usr/bin/tinyproxy', '-d', '-c', path.join(root, 'tinyproxy.conf')]);
    for (const deadline = Date.now() + 10_000; !readFileSync(proxyLog, 'utf8').includes('Reloading config file finished');) {
      if (Date.now() > deadline) throw new Error(`tinyproxy did not start: ${readFileSync(proxyLog, 'utf8')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await pair.serveTls(path.join(root, 'tls'), 443, pair.peerAddress2);
  }, 60_000);
  afterAll(async () => {
    await pair?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('renders only the proxy for what leaves on 443, confirms through the proxy, blocks direct 443 to the hub and keeps the proxy reachable', async () => {
    const config = parseConfig(`network:\n  proxy: "http://${USER.name}:${USER.password}@${pair.peerAddress}:${PROXY_PORT}"\n`, 'test');
    expect(egressFor(config)).toEqual({ proxy: { host: pair.peerAddress, port: PROXY_PORT }, direct443: false, mqtt: false });
    const targets = neededEndpoints(config, { assignedHub: pair.peerAddress2 });
    expect(targets).toEqual([{ host: pair.peerAddress, port: PROXY_PORT }, { host: pair.peerAddress2, port: 443 }, { host: config.provisioning.globalEndpoint, port: 443 }]);

    const engine = new HardeningEngine({ root, backend: 'nft', commandPrefix: pair.prefix(pair.device), egress: egressFor(config), probeProxy: probeProxyFor(config) });
    expect(await connectFromDevice(pair.peerAddress2, 443)).toBe('connected');
    // The confirm probes the path the agent uses: the proxy, and the hub through it. DPS's
    // name does not resolve in the namespace, so it is left out here.
    const report = await engine.apply(await loadProfile('strict', root), { targets: targets.slice(0, 2), timeoutSeconds: 10 });
    expect(report).toMatchObject({ changed: true, confirmed: true, rolledBack: false });
    expect(report.probes!.map((p) => p.detail)).toEqual(['TCP connection to the proxy', expect.stringMatching(/^TLS handshake completed \(TLSv1\.\d\) through the proxy$/)]);
    expect(readFileSync(proxyLog, 'utf8')).toContain(`CONNECT ${pair.peerAddress2}:443`);

    expect(await connectFromDevice(pair.peerAddress2, 443)).toMatch(/refused/);
    expect(await connectFromDevice(pair.peerAddress2, 8883)).toMatch(/refused/);
    expect(await connectFromDevice(pair.peerAddress, PROXY_PORT)).toBe('connected');
    // The proxy is allowed by its address only: the same port elsewhere stays closed.
    expect(await connectFromDevice(pair.peerAddress2, PROXY_PORT)).toMatch(/refused/);
  }, 60_000);

  it('rolls back a profile that would cut the proxy off: the confirm needs it', async () => {
    const config = parseConfig(`network:\n  proxy: "http://${USER.name}:${USER.password}@${pair.peerAddress}:${PROXY_PORT}"\n`, 'test');
    // Rules rendered as if no proxy were configured, only 443 and 8883 out: the proxy's port is closed.
    const engine = new HardeningEngine({ root, backend: 'nft', commandPrefix: pair.prefix(pair.device), probeProxy: probeProxyFor(config) });
    const file = path.join(root, 'strict-again.yaml');
    writeFileSync(file, 'extends: strict\nname: strict-again\n');
    const report = await engine.apply(await loadProfile(file, root), { targets: neededEndpoints(config, { assignedHub: pair.peerAddress2 }).slice(0, 2), timeoutSeconds: 3 });
    expect(report).toMatchObject({ changed: true, rolledBack: true });
    expect(await connectFromDevice(pair.peerAddress, PROXY_PORT)).toBe('connected');
  }, 60_000);
});
