import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureServerCredentials } from '../cloud/tls.js';
import { runCli } from '../support/cli.js';
import { DeviceCloud } from '../support/device-cloud.js';
import { stringMatching } from '../support/matchers.js';

/**
 * The device disabled in the hub's registry (CONNACK 5 from then on), with and without DPS
 * re-enabling it on re-registration (not documented: a knob); and tls.extraCaFile adding to
 * the system's trust instead of replacing it, in the daemon and in `check` alike.
 */
describe('a device disabled in the hub\'s registry', () => {
  let dc: DeviceCloud;

  beforeAll(async () => {
    dc = await DeviceCloud.start({ deviceId: 'board-disabled' });
  }, 60_000);
  afterEach(async () => {
    await dc.stopAgents();
    dc.hub.configure({});
  });
  afterAll(async () => {
    await dc?.stop();
  });

  const disable = () => dc.service.registry.update({ deviceId: dc.deviceId, status: 'disabled', statusReason: 'returned for repair' });

  it('re-provisions once; refused again, it keeps knocking with backoff and leaves DPS alone for minReprovisionSeconds', async () => {
    // The production rate limit (the tests' default has none).
    const agent = dc.startAgent('minReprovision=3600');
    await agent.waitForState('ready');
    const registrations = dc.cloud.dps.counters.registrations;
    await disable();
    await dc.waitFor('re-provisioned once and refused again', () => dc.cloud.dps.counters.registrations > registrations
      && agent.lines.some((l, i) => i > 0 && l.includes('event=hub.rejected') && l.includes('then=reconnect')), 30_000);
    const status = JSON.parse((await agent.status()).stdout) as { lastError: { message: string }; dpsHeldOffUntil: string | null };
    expect(status.lastError.message).toMatch(/^the hub refused the device: .*Not authorized/);
    expect(Date.parse(status.dpsHeldOffUntil!)).toBeGreaterThan(Date.now() + 50 * 60_000);
    const refused = dc.hub.counters.refused;
    await new Promise((r) => setTimeout(r, 5_000));
    expect(dc.cloud.dps.counters.registrations - registrations).toBe(1);
    expect(dc.hub.counters.refused).toBeGreaterThan(refused); // it keeps trying the hub, on the backoff
  }, 90_000);

  it('comes back by itself when a DPS registration enables the device again', async () => {
    await dc.service.registry.update({ deviceId: dc.deviceId, status: 'enabled' });
    const agent = dc.startAgent();
    await agent.waitForState('ready', 30_000);
    dc.hub.configure({ registrationReenables: true });
    const registrations = dc.cloud.dps.counters.registrations;
    await disable();
    await dc.waitFor('re-provisioned and connected', async () => {
      const now = JSON.parse((await agent.status()).stdout) as { state: string };
      return dc.cloud.dps.counters.registrations > registrations && now.state === 'ready';
    }, 30_000);
    expect(dc.cloud.dps.counters.registrations - registrations).toBe(1);
  }, 90_000);
});

describe('tls.extraCaFile next to the system\'s CAs', () => {
  let dc: DeviceCloud;
  let systemCa: string;

  beforeAll(async () => {
    dc = await DeviceCloud.start({ deviceId: 'board-trust' });
    // The cloud's CA stands in for a public root: in the system store (NODE_EXTRA_CA_CERTS), not in the config.
    systemCa = dc.cloud.caCertPath;
    const unrelated = await ensureServerCredentials(path.join(dc.dir, 'corporate-ca'), ['proxy.corp.test']);
    writeFileSync(dc.files.configPath, readFileSync(dc.files.configPath, 'utf8').replace(`extraCaFile: ${systemCa}`, `extraCaFile: ${unrelated.caCertPath}`));
  }, 60_000);
  afterAll(async () => {
    await dc?.stop();
  });

  const check = async (env: NodeJS.ProcessEnv) => {
    const result = await runCli(['--config', dc.files.configPath, 'check', '--json'], { IOT_AGENT_TPM: '', ...env }, 30_000, dc.files.hostsFile);
    const checks = (JSON.parse(result.stdout) as { checks: { id: string; status: string; message: string }[] }).checks;
    return Object.fromEntries(checks.map((c) => [c.id, c]));
  };

  it('connects with an unrelated extra CA while the cloud\'s CA is in the system store, and check agrees', async () => {
    const agent = dc.startAgent(undefined, { NODE_EXTRA_CA_CERTS: systemCa });
    await agent.waitForState('ready', 40_000);
    const checks = await check({ NODE_EXTRA_CA_CERTS: systemCa });
    expect(checks['dps-tls']).toMatchObject({ status: 'pass' });
    expect(checks['hub-tls']).toMatchObject({ status: 'pass' });
    await dc.stopAgents();
  }, 60_000);

  it('fails in both, and says so, when the cloud\'s CA is in neither', async () => {
    const checks = await check({ NODE_EXTRA_CA_CERTS: '' });
    expect(checks['dps-tls']).toMatchObject({ status: 'fail', message: stringMatching(/unknown CA/) });
    const agent = dc.startAgent(undefined, { NODE_EXTRA_CA_CERTS: '' });
    // Provisioned in the test before: the hub is tried, and refused by TLS, on the backoff (its last error says why).
    const status = await dc.waitFor('the hub unreachable for its certificate', async () => {
      const now = JSON.parse((await agent.status()).stdout) as { lastError: { message: string } | null };
      return now.lastError ? now : undefined;
    }, 40_000);
    expect(status.lastError!.message).toMatch(/^hub unreachable: .*(self-signed|unable to verify|unable to get local issuer)/i);
  }, 60_000);
});
