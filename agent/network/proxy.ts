import { isIP } from 'node:net';
import { parseNoProxyEntry, parseNoProxyList, parseProxyUrl, type NoProxyRule, type Proxy, type ProxySettings } from '../config/proxy-setting.js';

/**
 * The HTTPS proxy the agent's connections go through (HTTP CONNECT), and the hosts that go
 * direct. Pure: from `network.proxy` / `network.noProxy` or, when the key is unset, from the
 * environment as tools on Linux read it (`https_proxy`, then `HTTPS_PROXY`; `no_proxy`, then
 * `NO_PROXY`).
 */
/**
 * What the config and the environment say. The config's key wins over the environment;
 * `network.noProxy` likewise over no_proxy/NO_PROXY. Throws ProxySettingError for a value
 * that cannot be used (a config value is checked when the config is read).
 */
export function proxySettings(network: { proxy: string | undefined; noProxy: string[] | undefined }, env: NodeJS.ProcessEnv = process.env): ProxySettings {
  const fromEnv = (names: string[]) => names.map((name) => [name, env[name]?.trim()] as const).find(([, value]) => value);
  let proxy: Proxy | undefined;
  if (network.proxy !== undefined) proxy = parseProxyUrl(network.proxy, 'network.proxy');
  else {
    const found = fromEnv(['https_proxy', 'HTTPS_PROXY']);
    if (found) proxy = parseProxyUrl(found[1]!.includes('://') ? found[1]! : `http://${found[1]}`, found[0]);
  }
  if (network.noProxy !== undefined) {
    return { proxy, noProxy: network.noProxy.map((entry) => parseNoProxyEntry(entry, 'network.noProxy')), noProxySource: 'network.noProxy' };
  }
  const found = fromEnv(['no_proxy', 'NO_PROXY']);
  return { proxy, noProxy: found ? parseNoProxyList(found[1]!, found[0]) : [], noProxySource: found?.[0] };
}

/** The proxy a connection to `host:port` goes through, or undefined when it goes direct. */
export function proxyFor(settings: ProxySettings, host: string, port: number): Proxy | undefined {
  if (!settings.proxy) return undefined;
  return settings.noProxy.some((rule) => bypasses(rule, host.toLowerCase(), port)) ? undefined : settings.proxy;
}

function bypasses(rule: NoProxyRule, host: string, port: number): boolean {
  if (rule.kind === 'all') return true;
  if (rule.port !== undefined && rule.port !== port) return false;
  if (rule.kind === 'name') return host === rule.name || host.endsWith(`.${rule.name}`);
  const family = isIP(host);
  return family !== 0 && rule.list.check(host, family === 4 ? 'ipv4' : 'ipv6');
}

/** The proxy for one endpoint under the config's network section and the process environment. */
export function endpointProxy(network: { proxy: string | undefined; noProxy: string[] | undefined }, host: string, port: number,
  env: NodeJS.ProcessEnv = process.env): Proxy | undefined {
  return proxyFor(proxySettings(network, env), host, port);
}
