import type { HostPort, ProbeProxy } from '../../hardening/probe.js';
import type { Egress } from '../../hardening/render-firewall.js';
import type { AgentConfig } from '../config.js';
import type { Proxy, ProxySettings } from '../config/proxy-setting.js';
import { proxyFor, proxySettings } from '../network/proxy.js';
import type { HubProtocol } from '../retry/hub-protocol.js';

/**
 * What the agent needs of the network, derived in this one place from the config (and the
 * cached assignment): the endpoints a hardening change must keep reachable, the outbound
 * rules the profiles render, and the path the confirm probes take. A hardening change is
 * confirmed only when every endpoint answers; the boot guard keeps a new profile on the
 * same condition; the fail-closed rule set lets them through.
 *
 * The proxy here is network.proxy / network.noProxy only: the root units that apply
 * hardening read the config, never the agent's environment (an https_proxy given to the
 * agent alone serves its own connections).
 */
export function neededEndpoints(config: AgentConfig, assignment: { assignedHub: string } | undefined, hubProtocol?: HubProtocol): HostPort[] {
  const settings = configProxy(config);
  const hub = assignment?.assignedHub;
  return [
    ...(settings.proxy ? [{ host: settings.proxy.host, port: settings.proxy.port }] : []),
    ...(hub === undefined ? [] : [{ host: hub, port: hubPort(config, proxyFor(settings, hub, 443), hubProtocol) }]),
    { host: config.provisioning.globalEndpoint, port: 443 },
  ];
}

/**
 * The outbound rules the config asks for: with a proxy, only the proxy (and 443 direct only
 * when network.noProxy may send something around it); 8883 unless the hub never uses it.
 */
export function egressFor(config: AgentConfig): Egress {
  const { proxy, noProxy } = configProxy(config);
  const setting = config.network.hubProtocol;
  return {
    ...(proxy ? { proxy: { host: proxy.host, port: proxy.port } } : {}),
    direct443: proxy === undefined || noProxy.length > 0,
    mqtt: setting === 'mqtt' || (setting === 'auto' && proxy === undefined),
  };
}

/** The proxy the confirm probes go through, with its credentials, as the agent's connections do. */
export function probeProxyFor(config: AgentConfig): ProbeProxy | undefined {
  const settings = configProxy(config);
  const { proxy } = settings;
  if (!proxy) return undefined;
  return {
    host: proxy.host, port: proxy.port, ...(proxy.username === undefined ? {} : { authorization: basic(proxy) }),
    direct: (target) => target.port !== 443 || proxyFor(settings, target.host, target.port) === undefined,
  };
}

/** 8883 or 443: the setting, a proxy (443 only), or in auto what the agent uses (or learnt). */
function hubPort(config: AgentConfig, proxy: Proxy | undefined, hubProtocol: HubProtocol | undefined): number {
  const setting = config.network.hubProtocol;
  if (setting === 'mqtt') return 8883;
  if (setting === 'mqtt-ws' || proxy) return 443;
  return hubProtocol === 'mqtt-ws' ? 443 : 8883;
}

function configProxy(config: AgentConfig): ProxySettings {
  return proxySettings({ proxy: config.network.proxy, noProxy: config.network.noProxy ?? [] }, {});
}

function basic(proxy: Proxy): string {
  return `Basic ${Buffer.from(`${proxy.username}:${proxy.password ?? ''}`).toString('base64')}`;
}
