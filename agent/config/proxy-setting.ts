import { BlockList, isIP } from 'node:net';
import { AgentError, ExitCode } from '../lib/errors.js';
import { isHostName } from '../lib/host-name.js';

/**
 * The syntax of the proxy settings (`network.proxy`, `network.noProxy`, and the same in the
 * environment): pure parsers the config checks its keys with. Which proxy a connection takes
 * is agent/network/proxy.ts. Credentials never leave a `Proxy` except as the
 * Proxy-Authorization header the proxy agent sends: `display` is what logs, `status`,
 * `check` and the twin may show.
 */
export interface Proxy {
  host: string;
  port: number;
  /** Basic credentials from the URL's user info, decoded; undefined without. */
  username: string | undefined;
  password: string | undefined;
  /** The URL with credentials (for the proxy agent only). */
  url: string;
  /** `http://host:port`, credentials left out (shown as `***@` when there are some). */
  display: string;
  /** Where it was set: `network.proxy`, `https_proxy` or `HTTPS_PROXY`. */
  source: string;
}

/** One `noProxy` entry: a host name (and its subdomains), a `.suffix`, an address, a CIDR, or `*`. */
export type NoProxyRule =
  | { kind: 'all' }
  | { kind: 'name'; name: string; port?: number }
  | { kind: 'address'; list: BlockList; text: string; port?: number };

export interface ProxySettings {
  proxy: Proxy | undefined;
  noProxy: NoProxyRule[];
  /** Where noProxy came from: `network.noProxy`, `no_proxy`, `NO_PROXY`, or undefined for none. */
  noProxySource: string | undefined;
}

export class ProxySettingError extends AgentError {
  static override readonly errorName: string = 'ProxySettingError';

  constructor(message: string, hint: string) {
    super(message, { hint, exitCode: ExitCode.usage });
  }
}

const PROXY_HINT = 'expected http://[user:password@]host:port (percent-encode ":" "@" "/" in the user name and password)';

/**
 * Parses a proxy URL. Only `http://` (the CONNECT is sent in the clear; the tunnelled TLS is
 * end to end), an explicit port, no path. Errors never repeat the value: it may hold a password.
 */
export function parseProxyUrl(text: string, source: string): Proxy {
  const trimmed = text.trim();
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    throw new ProxySettingError(`${source}: not a URL`, PROXY_HINT);
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (url.protocol !== 'http:') throw new ProxySettingError(`${source}: the scheme must be http:// (got ${url.protocol.slice(0, 12)}//)`, PROXY_HINT);
  if (!host || !isHostName(host)) throw new ProxySettingError(`${source}: no valid proxy host`, PROXY_HINT);
  const authority = trimmed.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').split(/[/?#]/)[0] ?? '';
  // Anchored at the end, where the host is: digits of a password never count as the port.
  const portText = /:(\d{1,5})$/.exec(authority)?.[1];
  if (portText === undefined) throw new ProxySettingError(`${source}: the proxy port is missing`, PROXY_HINT);
  if (url.pathname !== '/' || url.search || url.hash) {
    throw new ProxySettingError(`${source}: a proxy URL has no path, query or fragment`, PROXY_HINT);
  }
  let username: string | undefined;
  let password: string | undefined;
  try {
    username = url.username ? decodeURIComponent(url.username) : undefined;
    password = url.password ? decodeURIComponent(url.password) : undefined;
  } catch {
    throw new ProxySettingError(`${source}: the user name or password is not validly percent-encoded`, PROXY_HINT);
  }
  if (password !== undefined && username === undefined) throw new ProxySettingError(`${source}: a password without a user name`, PROXY_HINT);
  const port = Number(portText);
  if (!(port >= 1 && port <= 65535)) throw new ProxySettingError(`${source}: the proxy port is out of range`, PROXY_HINT);
  const hostPort = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  return {
    host, port, username, password, url: `http://${url.username ? `${url.username}${url.password ? `:${url.password}` : ''}@` : ''}${hostPort}`,
    display: `http://${username !== undefined ? '***@' : ''}${hostPort}`, source,
  };
}

/** One noProxy entry; `*`, `name`, `.suffix`, `*.suffix`, an IP address or CIDR, each optionally with `:port`. */
export function parseNoProxyEntry(text: string, source: string): NoProxyRule {
  const entry = text.trim().toLowerCase();
  if (entry === '*') return { kind: 'all' };
  const expected = 'a host name, .suffix, IP address or CIDR (optionally :port), or *';
  const bracketed = /^\[([0-9a-f:.]+)\](?::(\d{1,5}))?$/.exec(entry);
  const plain = bracketed ? null : /^([^:\s]+)(?::(\d{1,5}))?$/.exec(entry);
  const bare = isIP(entry) === 6 || /^[0-9a-f:]+\/\d{1,3}$/.test(entry) ? [entry, entry, undefined] : null;
  const m = bare ?? bracketed ?? plain;
  if (!m) throw new ProxySettingError(`${source}: ${JSON.stringify(text.slice(0, 80))} is not valid`, `expected ${expected}`);
  const port = m[2] === undefined ? undefined : Number(m[2]);
  if (port !== undefined && !(port >= 1 && port <= 65535)) throw new ProxySettingError(`${source}: ${JSON.stringify(text)} has an invalid port`, `expected ${expected}`);
  const target = m[1]!;
  const [address, bits, extra] = target.split('/');
  const family = isIP(address ?? '');
  if (family !== 0) {
    const prefix = bits === undefined ? (family === 4 ? 32 : 128) : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
    if (extra !== undefined || !(prefix >= 0 && prefix <= (family === 4 ? 32 : 128))) {
      throw new ProxySettingError(`${source}: ${JSON.stringify(text)} is not a valid CIDR`, `expected ${expected}`);
    }
    const list = new BlockList();
    list.addSubnet(address!, prefix, family === 4 ? 'ipv4' : 'ipv6');
    return { kind: 'address', list, text: `${address}/${prefix}`, ...(port === undefined ? {} : { port }) };
  }
  const name = target.replace(/^\*?\./, '');
  if (!isHostName(name) || name.includes('/')) throw new ProxySettingError(`${source}: ${JSON.stringify(text.slice(0, 80))} is not valid`, `expected ${expected}`);
  return { kind: 'name', name, ...(port === undefined ? {} : { port }) };
}

/** A comma- or space-separated list, as no_proxy is written. */
export function parseNoProxyList(text: string, source: string): NoProxyRule[] {
  return text.split(/[\s,]+/).filter(Boolean).map((entry) => parseNoProxyEntry(entry, source));
}
