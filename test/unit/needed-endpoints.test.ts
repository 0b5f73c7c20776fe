import { describe, expect, it } from 'vitest';
import { egressFor, neededEndpoints, probeProxyFor } from '../../agent/commands/needed-endpoints.js';
import { DEFAULTS, parseConfig } from '../../agent/config.js';
import { failClosedRules } from '../../hardening/fail-closed.js';
import { OUTPUT_CHAIN, renderFirewall } from '../../hardening/render-firewall.js';
import { builtinProfile } from '../support/hardening-profiles.js';

const config = (network = '') => parseConfig(`provisioning:\n  globalEndpoint: dps.example.net\n${network ? `network:\n${network}` : ''}`, 'test');
const hub = { assignedHub: 'hub-1.azure-devices.net' };
const outbound = (egress: ReturnType<typeof egressFor>, family: 4 | 6 = 4, profile = builtinProfile('strict')) =>
  renderFirewall(profile, family, egress)!.chains[OUTPUT_CHAIN]!.filter((r) => r.includes('-j ACCEPT') && r.includes('--dport') && !r.includes('--sport'));

describe('the endpoints a hardening change must keep reachable', () => {
  it.each([
    ['', undefined, ['hub-1.azure-devices.net:8883', 'dps.example.net:443']],
    ['', 'mqtt-ws', ['hub-1.azure-devices.net:443', 'dps.example.net:443']],
    ['  hubProtocol: mqtt-ws\n', undefined, ['hub-1.azure-devices.net:443', 'dps.example.net:443']],
    ['  hubProtocol: mqtt\n', 'mqtt-ws', ['hub-1.azure-devices.net:8883', 'dps.example.net:443']],
    ['  proxy: http://u:p@10.9.8.7:3128\n', undefined, ['10.9.8.7:3128', 'hub-1.azure-devices.net:443', 'dps.example.net:443']],
    ['  proxy: http://proxy.corp:8080\n  hubProtocol: mqtt\n', undefined, ['proxy.corp:8080', 'hub-1.azure-devices.net:8883', 'dps.example.net:443']],
  ] as const)('%j with the agent on %s: %j', (network, inUse, expected) => {
    expect(neededEndpoints(config(network), hub, inUse).map((t) => `${t.host}:${t.port}`)).toEqual(expected);
  });

  it('ignores a proxy the agent has only in its environment: the root units never see it', () => {
    process.env.https_proxy = 'http://env-proxy:3128';
    try {
      expect(neededEndpoints(config(), hub).map((t) => t.host)).toEqual(['hub-1.azure-devices.net', 'dps.example.net']);
      expect(egressFor(config())).toEqual({ direct443: true, mqtt: true });
    } finally {
      delete process.env.https_proxy;
    }
  });
  it('confirms against DPS alone until a hub is assigned, then against the hub first', () => {
    expect(neededEndpoints(DEFAULTS, undefined)).toEqual([{ host: 'global.azure-devices-provisioning.net', port: 443 }]);
    expect(neededEndpoints(DEFAULTS, { assignedHub: 'hub-2.azure-devices.net' })).toEqual([
      { host: 'hub-2.azure-devices.net', port: 8883 }, { host: 'global.azure-devices-provisioning.net', port: 443 },
    ]);
  });
});

describe('outbound rules rendered from the config', () => {
  it('without a proxy: DNS, NTP, 443 and 8883 (8883 dropped with mqtt-ws)', () => {
    expect(outbound(egressFor(config())).map((r) => /--comment iot-agent:(\S+)/.exec(r)![1])).toEqual(['dns-udp', 'dns-tcp', 'ntp', 'https', 'mqtts']);
    expect(outbound(egressFor(config('  hubProtocol: mqtt-ws\n'))).map((r) => /iot-agent:(\S+)/.exec(r)![1])).toEqual(['dns-udp', 'dns-tcp', 'ntp', 'https']);
  });

  it('with a proxy at an address: only that address and port, no 443 or 8883 to anywhere', () => {
    const egress = egressFor(config('  proxy: http://u:p@10.9.8.7:3128\n'));
    expect(egress).toEqual({ proxy: { host: '10.9.8.7', port: 3128 }, direct443: false, mqtt: false });
    const rules = outbound(egress);
    expect(rules.filter((r) => r.includes('--dport 443') || r.includes('--dport 8883'))).toEqual([]);
    expect(rules.at(-1)).toBe('-d 10.9.8.7/32 -p tcp --dport 3128 -m comment --comment iot-agent:proxy -j ACCEPT');
    // IPv6 (baseline keeps it): an IPv4 proxy has no rule there, and nothing else opens 443.
    expect(outbound(egress, 6, builtinProfile('baseline')).filter((r) => /dport (443|8883|3128)/.test(r))).toEqual([]);
  });

  it('with a proxy by name: its port to anywhere (the name is resolved after the rules are loaded)', () => {
    expect(outbound(egressFor(config('  proxy: http://proxy.corp:8080\n'))).at(-1)).toBe('-p tcp --dport 8080 -m comment --comment iot-agent:proxy -j ACCEPT');
  });

  it('keeps 443 direct when network.noProxy may send something around the proxy, and 8883 with hubProtocol mqtt', () => {
    expect(egressFor(config('  proxy: http://p:1\n  noProxy: [dps.example.net]\n'))).toMatchObject({ direct443: true, mqtt: false });
    expect(egressFor(config('  proxy: http://p:1\n  hubProtocol: mqtt\n'))).toMatchObject({ direct443: false, mqtt: true });
  });

  it('lets the proxy through the fail-closed rules too', () => {
    const rules = failClosedRules(4, neededEndpoints(config('  proxy: http://u:p@10.9.8.7:3128\n'), hub)).chains[OUTPUT_CHAIN]!;
    expect(rules).toContain('-d 10.9.8.7/32 -p tcp --dport 3128 -j ACCEPT');
  });
});

describe('the confirm probes\' path', () => {
  it('goes through the proxy with its credentials, except for network.noProxy and other ports', () => {
    const via = probeProxyFor(config('  proxy: http://field%40acme:pw@proxy.corp:3128\n  noProxy: [.example.net]\n'))!;
    expect(via).toMatchObject({ host: 'proxy.corp', port: 3128, authorization: `Basic ${Buffer.from('field@acme:pw').toString('base64')}` });
    expect(via.direct({ host: 'hub-1.azure-devices.net', port: 443 })).toBe(false);
    expect(via.direct({ host: 'dps.example.net', port: 443 })).toBe(true);
    expect(via.direct({ host: 'hub-1.azure-devices.net', port: 8883 })).toBe(true);
    expect(probeProxyFor(config('  proxy: http://proxy.corp:3128\n'))!.authorization).toBeUndefined();
    // A user without a password: the empty password after the colon, as Basic has it.
    expect(probeProxyFor(config('  proxy: http://field@proxy.corp:3128\n'))!.authorization).toBe(`Basic ${Buffer.from('field:').toString('base64')}`);
    expect(probeProxyFor(config())).toBeUndefined();
  });
});
