import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { probeThroughProxy } from '../../agent/check/proxy-probe.js';
import { parseProxyUrl } from '../../agent/config/proxy-setting.js';
import { ensureServerCredentials } from '../cloud/tls.js';
import { runCli } from '../support/cli.js';
import { objectsAt, parseObject, valueAt } from '../support/json.js';
import { stringMatching } from '../support/matchers.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { DeviceCloud } from '../support/device-cloud.js';
import { TinyProxy } from '../support/tinyproxy.js';
import { tlsContextsBuilt } from '../support/tls-contexts.js';

// tinyproxy takes letters and digits only in BasicAuth; URL-encoded credentials are unit-tested.
const USER = { name: 'board', password: 'S3cretPw' };
const SECRET = 'S3cretPw';

/**
 * A board behind an authenticating proxy that allows CONNECT to 443 only (a real tinyproxy
 * from Debian), with 8883 closed: DPS and the hub are reached through the proxy alone.
 */
describe('the agent behind an authenticating HTTPS proxy', () => {
  let dc: DeviceCloud;
  let proxy: TinyProxy;
  let baseConfig: string;

  const configure = (network: string) => writeFileSync(dc.files.configPath, `${baseConfig}network:\n${network}`);
  const dpsTarget = () => `${dc.cloud.dps.host}:443`;
  const hubTarget = () => `${dc.hub.hostName}:443`;

  beforeAll(async () => {
    dc = await DeviceCloud.start({ deviceId: 'board-proxy' });
    await dc.hub.set8883('closed');
    proxy = await TinyProxy.start({ dir: path.join(dc.dir, 'proxy'), user: USER, hostsFile: dc.files.hostsFile });
    baseConfig = readFileSync(dc.files.configPath, 'utf8');
  }, 60_000);
  afterEach(async () => {
    await dc.stopAgents();
  });
  afterAll(async () => {
    proxy?.stop();
    await dc?.stop();
  });

  it('provisions and reaches ready through the proxy, answers a direct method, and the proxy logged the CONNECTs to DPS and the hub', async () => {
    configure(`  proxy: "${proxy.url(USER)}"\n`);
    const agent = dc.startAgent();
    const status = await agent.waitForState('ready', 45_000);
    expect(status).toMatchObject({ hubProtocol: 'mqtt-ws', proxy: `http://***@${proxy.address}:${proxy.port} (network.proxy)` });
    expect(status.hubProtocolReason).toMatch(/proxy/);
    expect(await dc.invoke('ping')).toMatchObject({ status: 200 });
    expect(proxy.connects()).toEqual(expect.arrayContaining([dpsTarget(), hubTarget()]));
    // The credentials appear nowhere the agent writes: its log, status (human and JSON).
    const human = await runCli(['--config', dc.files.configPath, 'status']);
    expect(human.stdout).toContain('MQTT over WebSockets (port 443)');
    for (const text of [agent.lines.join('\n'), JSON.stringify(status), human.stdout, JSON.stringify(await dc.reported())]) {
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(encodeURIComponent(USER.password));
    }
  }, 60_000);

  it('passes check through the proxy: the proxy, DPS and the hub on 443, and says why WebSockets', async () => {
    configure(`  proxy: "${proxy.url(USER)}"\n`);
    const dpsConnects = () => proxy.connects().filter((c) => c === dpsTarget()).length;
    const before = dpsConnects();
    const result = await runCli(['--config', dc.files.configPath, 'check', '--json']);
    const checks = objectsAt(parseObject(result.stdout, 'check --json'), 'checks');
    const byId = Object.fromEntries(checks.map((c) => [String(c.id), c]));
    expect(byId.proxy).toMatchObject({ status: 'pass' });
    expect(byId.proxy!.message).toContain(`CONNECT to ${dpsTarget()}`);
    expect(byId['dps-tls']).toMatchObject({ status: 'pass' });
    expect(byId['hub-wss']).toMatchObject({ status: 'pass' });
    expect(byId['hub-tls']!.message).toContain('not used: through the proxy the hub is reached on 443 only');
    expect(byId['hub-choice']).toMatchObject({ status: 'pass', message: stringMatching(/WebSockets on 443 through the proxy .*: through the proxy, which tunnels 443 only/) });
    expect(byId['dps-dns']!.message).toContain('is resolved by the proxy');
    // The clock is measured from DPS's Date header through the proxy too: a second CONNECT to DPS.
    expect(byId.clock!.message).toMatch(/(ahead of|behind) DPS /);
    expect(dpsConnects() - before).toBe(2);
    expect(result.stdout).not.toContain(SECRET);
  }, 60_000);

  it('names wrong proxy credentials in check and in the daemon\'s degraded reason', async () => {
    configure(`  proxy: "${proxy.url({ name: USER.name, password: 'n0tIt' })}"\n`);
    const result = await runCli(['--config', dc.files.configPath, 'check']);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/FAIL {2}proxy +the proxy http:\/\/\*\*\*@\S+ \(network\.proxy\) refused the credentials: wrong user name or password/);
    const agent = dc.startAgent();
    await agent.waitForState('degraded', 30_000);
    await expect.poll(async () => String(valueAt(await agent.statusObject(), 'lastError', 'message')), { timeout: 20_000 })
      .toMatch(/the proxy http:\/\/\*\*\*@\S+ \(network\.proxy\) refused the credentials/);
    expect(agent.lines.join('\n')).not.toContain('n0tIt');
    // Not provisioned: DPS's answer is the proxy's refusal, named as such (not "DPS refused the device").
    await dc.stopAgents();
    rmSync(path.join(dc.files.stateDir, 'assignment.json'), { force: true });
    const fresh = dc.startAgent();
    await expect.poll(async () => String(valueAt(await fresh.statusObject(), 'lastError', 'message')), { timeout: 20_000 })
      .toMatch(/^provisioning failed: DPS \S+ not reached: the proxy http:\/\/\*\*\*@\S+ \(network\.proxy\) refused the credentials/);
    expect((await fresh.statusObject()).operatorMustAct).toBe(false);
  }, 90_000);

  it('names a proxy that wants credentials it was not given', async () => {
    configure(`  proxy: "${proxy.url()}"\n`);
    const result = await runCli(['--config', dc.files.configPath, 'check']);
    expect(result.stdout).toMatch(/FAIL {2}proxy +the proxy http:\/\/\S+ \(network\.proxy\) requires credentials \(407\)/);
  }, 30_000);

  it('goes direct for the hosts in network.noProxy', async () => {
    configure(`  proxy: "${proxy.url(USER)}"\n  noProxy: [".azure-devices-provisioning.test"]\n`);
    rmSync(path.join(dc.files.stateDir, 'assignment.json'), { force: true });
    const before = proxy.connects().length;
    const agent = dc.startAgent();
    await agent.waitForState('ready', 45_000);
    const connects = proxy.connects().slice(before);
    expect(connects).toContain(hubTarget());
    expect(connects).not.toContain(dpsTarget());
  }, 60_000);

  it('takes https_proxy and no_proxy from the environment when the config has no proxy', async () => {
    configure('  hubProtocol: auto\n');
    rmSync(path.join(dc.files.stateDir, 'assignment.json'), { force: true });
    const before = proxy.connects().length;
    const agent = dc.startAgent(undefined, { https_proxy: proxy.url(USER), no_proxy: dc.hub.hostName });
    const status = await agent.waitForState('ready', 45_000);
    expect(status.proxy).toBe(`http://***@${proxy.address}:${proxy.port} (https_proxy)`);
    const connects = proxy.connects().slice(before);
    expect(connects).toContain(dpsTarget());
    expect(connects).not.toContain(hubTarget());
    // The hub went direct, and with 8883 closed that is WebSockets on 443.
    expect(status.hubProtocol).toBe('mqtt-ws');
  }, 60_000);

  it('verifies an endpoint given by address against that address inside the tunnel, through one shared TLS context', async () => {
    const address = randomLoopbackAddress();
    const tls = await ensureServerCredentials(path.join(dc.dir, 'by-address-tls'), [address]);
    const server = https.createServer({ key: tls.key, cert: tls.cert }, (_req, res) => res.end());
    await new Promise<void>((resolve) => server.listen(443, address, resolve));
    try {
      const through = parseProxyUrl(proxy.url(USER), 'network.proxy');
      // Three tunnels, one TLS context between them (lib/tls-context.ts), none built per tunnel.
      const made = await tlsContextsBuilt(async () => {
        for (let i = 0; i < 3; i++) {
          const ok = await probeThroughProxy(through, { host: address, port: 443, ca: [tls.ca], timeoutMs: 5_000 });
          expect(ok).toMatchObject({ connect: 'accepted', tls: { ok: true } });
        }
      });
      expect(made).toBe(0);
      // A certificate for another address is still refused: nothing is relaxed.
      const other = await ensureServerCredentials(path.join(dc.dir, 'other-address-tls'), ['127.0.0.1']);
      server.setSecureContext({ key: other.key, cert: other.cert });
      const refused = await probeThroughProxy(through, { host: address, port: 443, ca: [other.ca], timeoutMs: 5_000 });
      expect(refused).toMatchObject({ connect: 'accepted', tls: { ok: false, code: 'ERR_TLS_CERT_ALTNAME_INVALID' } });
    } finally {
      server.close();
    }
  }, 30_000);

  it('leaves the environment\'s proxy alone when the config names one', async () => {
    configure(`  proxy: "${proxy.url(USER)}"\n`);
    const agent = dc.startAgent(undefined, { HTTPS_PROXY: 'http://127.0.0.1:9' });
    expect(await agent.waitForState('ready', 45_000)).toMatchObject({ proxy: `http://***@${proxy.address}:${proxy.port} (network.proxy)` });
  }, 60_000);
});
