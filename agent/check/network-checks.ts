import type { AgentConfig } from '../config.js';
import { ProxySettingError, type Proxy, type ProxySettings } from '../config/proxy-setting.js';
import { proxyFor, proxySettings } from '../network/proxy.js';
import { HubProtocolChoice, MQTT_PROBE_MS, type ProtocolMemory } from '../retry/hub-protocol.js';
import { describeResolution, resolveHost, type Resolution } from './dns-check.js';
import type { TunnelOutcome } from './proxy-probe.js';
import { fail, pass, seconds, warn, type CheckId, type CheckResult } from './result.js';
import { describeTls } from './tls-check.js';
import { probeTls, type TlsOutcome } from './tls-probe.js';
import type { Trust } from './trust.js';

export interface NetworkCheckOptions {
  config: AgentConfig;
  trust: Trust;
  /** The assigned hub, when one is cached. */
  hub: string | undefined;
  /** Why no hub is known, when none is. */
  noHub: string;
  /** What network.hubProtocol auto learnt (the state directory). */
  memory: ProtocolMemory | undefined;
  stepMs: number;
  env?: NodeJS.ProcessEnv;
}

export const NETWORK_CHECK_IDS: CheckId[] = ['proxy', 'dps-dns', 'dps-tls', 'hub-dns', 'hub-tls', 'hub-wss', 'hub-choice'];

export type Probe = { via: 'proxy'; outcome: TunnelOutcome } | { via: 'direct'; outcome: TlsOutcome } | { via: 'none'; reason: string; hint: string };

/**
 * The network the way the agent uses it: the proxy (reachable, CONNECT accepted for DPS and
 * the hub), DPS on 443, the hub on 8883 and on 443, and which of the two the agent will use
 * and why. A host the proxy serves is not resolved here (the proxy resolves it) and is
 * reached through the tunnel; everything else directly. Two network steps at most: a name
 * (the proxy's or the endpoint's), then a handshake.
 */
export async function checkNetwork(o: NetworkCheckOptions): Promise<CheckResult[]> {
  const { config, trust, hub, stepMs } = o;
  const dpsHost = config.provisioning.globalEndpoint;
  let settings: ProxySettings = { proxy: undefined, noProxy: [], noProxySource: undefined };
  let settingProblem: ProxySettingError | undefined;
  try {
    settings = proxySettings(config.network, o.env);
  } catch (err) {
    if (!(err instanceof ProxySettingError)) throw err;
    settingProblem = err;
  }
  const dpsProxy = proxyFor(settings, dpsHost, 443);
  const hubProxy = hub === undefined ? undefined : proxyFor(settings, hub, 443);
  const setting = config.network.hubProtocol;
  const ca = trust.ok ? trust.ca : undefined;

  const [proxyName, dpsName, hubName] = await Promise.all([
    settings.proxy ? resolveHost(settings.proxy.host, stepMs) : undefined,
    dpsProxy ? undefined : resolveHost(dpsHost, stepMs),
    hub === undefined || (hubProxy && setting !== 'mqtt') ? undefined : resolveHost(hub, stepMs),
  ]);
  const probe = async (host: string, port: number, proxy: Proxy | undefined, name: Resolution | undefined): Promise<Probe> => {
    if (!trust.ok) return { via: 'none', reason: `not tried: ${trust.problem}`, hint: trust.hint };
    const unresolved = 'fix the name resolution first';
    if (proxy) {
      if (!proxyName?.ok) return { via: 'none', reason: `not tried: the proxy ${proxy.host} does not resolve (see proxy)`, hint: unresolved };
      const { probeThroughProxy } = await import('./proxy-probe.js');
      return { via: 'proxy', outcome: await probeThroughProxy(proxy, { host, port, ca, timeoutMs: stepMs }) };
    }
    if (!name?.ok) return { via: 'none', reason: `not tried: ${host} does not resolve`, hint: unresolved };
    return { via: 'direct', outcome: await probeTls({ host, port, addresses: name.addresses, ca, timeoutMs: stepMs }) };
  };
  const [dps, hub443, hub8883] = await Promise.all([
    probe(dpsHost, 443, dpsProxy, dpsName),
    hub === undefined || setting === 'mqtt' ? undefined : probe(hub, 443, hubProxy, hubName),
    hub === undefined || setting === 'mqtt-ws' || (hubProxy && setting === 'auto') ? undefined : probe(hub, 8883, undefined, hubName),
  ]);

  const extraCaFile = trust.ok ? trust.extraCaFile : undefined;
  const tls = (id: CheckId, role: string, host: string, port: number, result: Probe): CheckResult => {
    if (result.via === 'none') return fail(id, result.reason, result.hint);
    if (result.via === 'direct') return describeTls({ id, role, host, port, extraCaFile, timeoutMs: stepMs }, result.outcome);
    const { outcome } = result;
    if (outcome.connect === 'refused' || outcome.connect === 'unreachable') return fail(id, `${role} ${host}:${port}: not reached: ${outcome.error.message}`, 'see the proxy check');
    const checked = describeTls({ id, role, host, port, extraCaFile, timeoutMs: stepMs }, (outcome as { tls: TlsOutcome }).tls);
    return { ...checked, message: `${checked.message.replace(`${role} ${host}:${port}`, `${role} ${host}:${port} through the proxy`)}` };
  };
  const viaProxy = (role: string, host: string, proxy: Proxy) => pass(role === 'DPS' ? 'dps-dns' : 'hub-dns',
    `${role} ${host} is resolved by the proxy ${proxy.display} (the board connects to the proxy only)`);

  // What the proxy carries: a probe of it that was not tried still names a way the agent goes.
  const carried = (target: string, proxy: Proxy | undefined, result: Probe | undefined): [string, Probe][] => (proxy && result ? [[target, result]] : []);
  const results: CheckResult[] = [
    proxyCheck(settings, settingProblem, proxyName, stepMs, [...carried(`${dpsHost}:443`, dpsProxy, dps), ...carried(`${hub}:443`, hubProxy, hub443)]),
    dpsProxy ? viaProxy('DPS', dpsHost, dpsProxy) : describeResolution({ id: 'dps-dns', role: 'DPS', host: dpsHost, origin: 'provisioning.globalEndpoint in the config' }, dpsName!, stepMs),
    tls('dps-tls', 'DPS', dpsHost, 443, dps),
  ];
  if (hub === undefined) {
    const hint = 'the hub is known once DPS has assigned one';
    return [...results, ...(['hub-dns', 'hub-tls', 'hub-wss', 'hub-choice'] as const).map((id) => warn(id, `${o.noHub}, no hub known`, hint))];
  }
  const origin = `the cached assignment in ${config.stateDir} (re-provision if the hub moved)`;
  results.push(hubName ? describeResolution({ id: 'hub-dns', role: 'hub', host: hub, origin }, hubName, stepMs) : viaProxy('hub', hub, hubProxy!));
  const tls8883 = hub8883 && tls('hub-tls', 'hub', hub, 8883, hub8883);
  const tls443 = hub443 && tls('hub-wss', 'hub', hub, 443, hub443);
  const ok8883 = tls8883?.status === 'pass';
  const ok443 = tls443?.status === 'pass';
  // Both ports are tried only in auto without a proxy; then a port the agent can do without only warns.
  const fallback = (result: CheckResult, otherWorks: boolean, note: string): CheckResult =>
    (otherWorks && result.status === 'fail' ? { ...result, status: 'warn', message: `${result.message} (${note})` } : result);
  results.push(tls8883 ? fallback(tls8883, ok443, 'the agent falls back to MQTT over WebSockets on 443')
    : pass('hub-tls', hubProxy ? `hub ${hub}:8883 not used: through the proxy the hub is reached on 443 only` : 'hub 8883 not used: network.hubProtocol is mqtt-ws'));
  results.push(tls443 ? fallback(tls443, ok8883, 'the agent uses 8883') : pass('hub-wss', 'hub 443 not used: network.hubProtocol is mqtt'));
  results.push(hubChoice(setting, hubProxy, o.memory, ok8883, ok443));
  return results;
}

/**
 * The proxy line: whether the settings are usable, the proxy's name resolves, and the proxy
 * took the CONNECT of every target it carries (`probes`, each `host:port` with its probe).
 */
export function proxyCheck(settings: ProxySettings, problem: ProxySettingError | undefined, name: Resolution | undefined, stepMs: number,
  probes: [string, Probe][]): CheckResult {
  if (problem) return fail('proxy', problem.message, problem.hint);
  const { proxy } = settings;
  if (!proxy) return pass('proxy', 'none: connections go direct (network.proxy and https_proxy are unset)');
  const where = `${proxy.display} (${proxy.source})`;
  if (name && !name.ok) {
    return fail('proxy', `${where}: ${proxy.host}${name.timedOut ? `: no answer from the resolver within ${seconds(stepMs)}` : ` does not resolve (${name.code})`}`,
      `check the proxy host in ${proxy.source} and /etc/resolv.conf`);
  }
  if (probes.length === 0) return pass('proxy', `${where}: not used for DPS or the hub (${settings.noProxySource ?? 'noProxy'})`);
  const untried = probes.find((p): p is [string, Probe & { via: 'none' }] => p[1].via === 'none');
  if (untried) {
    const { reason, hint } = untried[1];
    return warn('proxy', `${where} carries ${probes.map(([target]) => target).join(' and ')}; ${reason}`, hint);
  }
  const tunnelled = probes.filter((p): p is [string, Probe & { via: 'proxy' }] => p[1].via === 'proxy');
  for (const [, probe] of tunnelled) {
    const { outcome } = probe;
    if (outcome.connect === 'refused' || outcome.connect === 'unreachable') return fail('proxy', outcome.error.message, outcome.error.hint);
  }
  const timedOut = tunnelled.find(([, p]) => p.outcome.connect === 'timeout' && p.outcome.tls.ok === false && p.outcome.tls.phase === 'tcp');
  if (timedOut) return fail('proxy', `${where}: no answer to CONNECT ${timedOut[0]} within ${seconds(stepMs)}`, 'check that the proxy is up and that a firewall lets the board reach it');
  return pass('proxy', `${where} reachable; ${tunnelled.map(([target]) => `CONNECT to ${target} accepted`).join(', ')}`);
}

/** Which protocol the agent will use and why, and whether that way works from here. */
export function hubChoice(setting: AgentConfig['network']['hubProtocol'], hubProxy: Proxy | undefined, memory: ProtocolMemory | undefined,
  ok8883: boolean, ok443: boolean): CheckResult {
  const plan = new HubProtocolChoice({ setting, proxied: hubProxy !== undefined, probeMs: MQTT_PROBE_MS }, memory).plan();
  const mqtt = 'MQTT on 8883';
  const ws = `MQTT over WebSockets on 443${hubProxy ? ` through the proxy ${hubProxy.display}` : ''}`;
  if (setting !== 'auto' || hubProxy) {
    const works = plan.protocol === 'mqtt' ? ok8883 : ok443;
    const words = plan.protocol === 'mqtt' ? mqtt : ws;
    return works ? pass('hub-choice', `${words}: ${plan.reason}`)
      : fail('hub-choice', `${words} (${plan.reason}), but that way does not work from here (see ${plan.protocol === 'mqtt' ? 'hub-tls' : 'hub-wss'})`,
        setting === 'auto' ? 'the proxy must allow CONNECT to the hub on 443' : 'network.hubProtocol: auto uses whichever of 8883 and 443 works');
  }
  if (plan.protocol === 'mqtt-ws') {
    return ok443 ? pass('hub-choice', `${ws}: ${plan.reason}`) : ok8883 ? pass('hub-choice', `${mqtt}: WebSockets were remembered, but 443 does not answer now and 8883 does`)
      : fail('hub-choice', 'neither 8883 nor 443 of the hub answers (see hub-tls, hub-wss)', 'a firewall must let TCP 8883 or 443 out to the hub');
  }
  if (ok8883) return pass('hub-choice', `${mqtt}: ${plan.reason}`);
  if (ok443) return pass('hub-choice', `${ws}: auto tries 8883 first and falls back within ${MQTT_PROBE_MS / 1000} s; 8883 does not answer from here`);
  return fail('hub-choice', 'neither 8883 nor 443 of the hub answers (see hub-tls, hub-wss)', 'a firewall must let TCP 8883 or 443 out to the hub');
}
