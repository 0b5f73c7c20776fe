import { describe, expect, it } from 'vitest';
import { parseNoProxyEntry, parseNoProxyList, parseProxyUrl, ProxySettingError } from '../../agent/config/proxy-setting.js';
import { endpointProxy, proxyFor, proxySettings } from '../../agent/network/proxy.js';
import { proxyRefusal } from '../../agent/network/proxy-agent.js';

const none = { proxy: undefined, noProxy: undefined };

function problem(text: string): ProxySettingError {
  try {
    parseProxyUrl(text, 'network.proxy');
  } catch (err) {
    expect(err).toBeInstanceOf(ProxySettingError);
    return err as ProxySettingError;
  }
  throw new Error(`expected ${text} to be refused`);
}

describe('proxy URL', () => {
  it('takes http://user:password@host:port, decoding percent-encoded credentials, and shows it without them', () => {
    const proxy = parseProxyUrl('http://field%40acme:p%3Ass%2Fw@proxy.acme.example:3128/', 'network.proxy');
    expect(proxy).toMatchObject({ host: 'proxy.acme.example', port: 3128, username: 'field@acme', password: 'p:ss/w', source: 'network.proxy',
      display: 'http://***@proxy.acme.example:3128' });
    expect(proxy.url).toBe('http://field%40acme:p%3Ass%2Fw@proxy.acme.example:3128');
    expect(parseProxyUrl('http://10.1.2.3:8080', 'x')).toMatchObject({ host: '10.1.2.3', port: 8080, username: undefined, display: 'http://10.1.2.3:8080' });
    expect(parseProxyUrl('http://[fd00::3]:3128', 'x')).toMatchObject({ host: 'fd00::3', port: 3128, display: 'http://[fd00::3]:3128' });
    expect(parseProxyUrl(' http://proxy:80 ', 'x').port).toBe(80);
  });

  it.each([
    ['proxy.example:3128', 'the scheme must be http://'],
    ['https://user:Secret1@proxy.example:3128', 'the scheme must be http://'],
    ['socks5://proxy.example:1080', 'the scheme must be http://'],
    ['http://user:Secret1@proxy.example', 'the proxy port is missing'],
    ['http://user:Secret1@proxy.example:0', 'the proxy port is out of range'],
    ['http://user:Secret1@proxy.example:99999', 'not a URL'],
    ['http://user:Secret1@proxy.example:3128/path', 'no path, query or fragment'],
    ['http://user:Secret1@proxy.example:3128?x=1', 'no path, query or fragment'],
    ['http://user:Secret1@proxy.example:3128#frag', 'no path, query or fragment'],
    ['http://user:Secret1%zz@proxy.example:3128', 'not validly percent-encoded'],
    ['http://:Secret1@proxy.example:3128', 'a password without a user name'],
    ['http://pro_xy.example:3128', 'no valid proxy host'],
    ['', 'not a URL'],
  ])('refuses %j (%s), never repeating the password', (text, reason) => {
    const err = problem(text);
    expect(err.message).toContain(reason);
    expect(err.message.startsWith('network.proxy: ')).toBe(true);
    expect(`${err.message} ${err.hint}`).not.toContain('Secret1');
    expect(err.hint).toContain('http://[user:password@]host:port');
  });
});

describe('proxy URL: what is kept and what is said', () => {
  it('keeps a user name without a password, and shows neither', () => {
    expect(parseProxyUrl('http://field@proxy.example:3128', 'network.proxy')).toMatchObject({
      username: 'field', password: undefined, url: 'http://field@proxy.example:3128', display: 'http://***@proxy.example:3128',
    });
  });

  it('does not take digits of the password for the port', () => {
    expect(problem('http://user:1234@proxy.example').message).toBe('network.proxy: the proxy port is missing');
  });

  it('takes the highest port, 65535', () => {
    expect(parseProxyUrl('http://proxy.example:65535', 'x').port).toBe(65535);
  });

  it('names a wrong scheme by at most its first twelve characters', () => {
    expect(problem('https://proxy.example:3128').message).toBe('network.proxy: the scheme must be http:// (got https://)');
    expect(problem('averyveryverylongscheme://proxy.example:3128').message).toBe('network.proxy: the scheme must be http:// (got averyveryver//)');
  });
});

describe('noProxy entries: what they cover and what they say', () => {
  const covers = (entry: string, host: string, port = 443) =>
    proxyFor({ proxy: parseProxyUrl('http://p:3128', 'x'), noProxy: [parseNoProxyEntry(entry, 'x')], noProxySource: 'x' }, host, port) === undefined;

  it('takes an address without a prefix as that one address, IPv4 and IPv6', () => {
    expect(parseNoProxyEntry('10.1.2.3', 'x')).toMatchObject({ kind: 'address', text: '10.1.2.3/32' });
    expect(parseNoProxyEntry('fd00::1', 'x')).toMatchObject({ kind: 'address', text: 'fd00::1/128' });
    expect(covers('10.1.2.3', '10.1.2.4')).toBe(false);
    expect(covers('fd00::1', 'fd00::1')).toBe(true);
    expect(covers('fd00::1', 'fd00::2')).toBe(false);
  });

  it('matches names without regard to case, an address only by address, and a port only on that port', () => {
    expect(parseNoProxyEntry(' HUB.Example ', 'x')).toEqual({ kind: 'name', name: 'hub.example' });
    expect(covers('HUB.Example', 'hub.example')).toBe(true);
    expect(covers('10.0.0.0/8', 'hub.example')).toBe(false);
    expect(covers('10.1.2.3:443', '10.1.2.3', 443)).toBe(true);
    expect(covers('10.1.2.3:443', '10.1.2.3', 8883)).toBe(false);
    expect(covers('.example', 'example')).toBe(true);
  });

  it('takes ports 1 to 65535, prefixes of several digits down to /0, and a bracketed address without a port', () => {
    expect(parseNoProxyEntry('host:1', 'x')).toEqual({ kind: 'name', name: 'host', port: 1 });
    expect(parseNoProxyEntry('host:65535', 'x')).toEqual({ kind: 'name', name: 'host', port: 65535 });
    expect(() => parseNoProxyEntry('host:65536', 'x')).toThrow('has an invalid port');
    expect(covers('10.0.0.0/16', '10.0.5.5')).toBe(true);
    expect(covers('10.0.0.0/16', '10.1.5.5')).toBe(false);
    expect(covers('0.0.0.0/0', '192.0.2.1')).toBe(true);
    expect(covers('fd00::/16', 'fd00:1::1')).toBe(true);
    expect(covers('[::1]', '::1')).toBe(true);
    for (const entry of ['x[::1]', '[::1]:443x', '[::1]x']) expect(() => parseNoProxyEntry(entry, 'x')).toThrow(/^x: .* is not valid$/);
  });

  it('says which entry is wrong and how, cut to 80 characters', () => {
    expect(() => parseNoProxyEntry('10.0.0.0/33', 'network.noProxy[0]')).toThrow(/^network\.noProxy\[0\]: "10\.0\.0\.0\/33" is not a valid CIDR$/);
    expect(() => parseNoProxyEntry('host:0', 'network.noProxy[0]')).toThrow(/^network\.noProxy\[0\]: "host:0" has an invalid port$/);
    const long = `${'a'.repeat(100)} b`;
    expect(() => parseNoProxyEntry(long, 'network.noProxy[0]')).toThrow(`network.noProxy[0]: "${'a'.repeat(80)}" is not valid`);
  });

  it('cuts a long name that is not a host name to 80 characters too', () => {
    expect(() => parseNoProxyEntry(`${'a'.repeat(100)}_`, 'network.noProxy[0]')).toThrow(new RegExp(`^network\\.noProxy\\[0\\]: "${'a'.repeat(80)}" is not valid$`));
  });

  it.each([
    ['host:0', 'has an invalid port'], ['10.0.0.0/33', 'is not a valid CIDR'], ['10.0.0.0/0008', 'is not a valid CIDR'], ['pro_xy.example', 'is not valid'],
  ])('refuses %j: %s, saying what an entry may be', (entry, reason) => {
    let error: unknown;
    try {
      parseNoProxyEntry(entry, 'x');
    } catch (err) {
      error = err;
    }
    expect(error).toMatchObject({ message: `x: ${JSON.stringify(entry)} ${reason}`, hint: 'expected a host name, .suffix, IP address or CIDR (optionally :port), or *' });
  });

  it('refuses a CIDR with text after its prefix as an entry, not as a CIDR', () => {
    expect(() => parseNoProxyEntry('fd00::/8x', 'x')).toThrow(/^x: "fd00::\/8x" is not valid$/);
  });

  it('gives a rule a port only when the entry names one', () => {
    expect(parseNoProxyEntry('host', 'x')).toStrictEqual({ kind: 'name', name: 'host' });
    expect(Object.keys(parseNoProxyEntry('10.1.2.3', 'x'))).toEqual(['kind', 'list', 'text']);
    expect(parseNoProxyEntry('10.1.2.3:443', 'x')).toMatchObject({ kind: 'address', port: 443 });
  });

  it('reads no_proxy separated by commas or spaces, ignoring empty entries', () => {
    expect(parseNoProxyList(' , a.example,,b.example  c.example ', 'no_proxy').map((r) => r.kind === 'name' && r.name)).toEqual(['a.example', 'b.example', 'c.example']);
    expect(parseNoProxyList('', 'no_proxy')).toEqual([]);
  });

  it('gives the proxy for one endpoint from the config and the environment', () => {
    expect(endpointProxy({ proxy: 'http://cfg:3128', noProxy: ['hub.example'] }, 'dps.example', 443, {})).toMatchObject({ host: 'cfg' });
    expect(endpointProxy({ proxy: 'http://cfg:3128', noProxy: ['hub.example'] }, 'hub.example', 443, {})).toBeUndefined();
    expect(endpointProxy(none, 'dps.example', 443, {})).toBeUndefined();
  });
});

describe('noProxy', () => {
  it.each([
    ['*', true, true, true],
    ['dps.example', false, true, false],
    ['.example', true, true, false],
    ['*.example', true, true, false],
    ['hub.example:443', true, false, false],
    ['hub.example:8883', false, false, false],
    ['10.0.0.0/8', false, false, true],
    ['10.1.2.3', false, false, true],
  ])('%s: hub.example:443 %s, dps.example:443 %s, 10.1.2.3:443 %s direct', (entry, hub, dps, address) => {
    const settings = { proxy: parseProxyUrl('http://p:3128', 'x'), noProxy: [parseNoProxyEntry(entry, 'x')], noProxySource: 'x' };
    expect(proxyFor(settings, 'hub.example', 443) === undefined).toBe(hub);
    expect(proxyFor(settings, 'DPS.example', 443) === undefined).toBe(dps);
    expect(proxyFor(settings, '10.1.2.3', 443) === undefined).toBe(address);
    expect(proxyFor(settings, 'notexample', 443) === undefined).toBe(entry === '*');
  });

  it('matches an IPv6 address and CIDR', () => {
    const settings = { proxy: parseProxyUrl('http://p:3128', 'x'), noProxy: [parseNoProxyEntry('fd00::/8', 'x'), parseNoProxyEntry('[::1]:443', 'x')], noProxySource: 'x' };
    expect(proxyFor(settings, 'fd00::7', 443)).toBeUndefined();
    expect(proxyFor(settings, '::1', 443)).toBeUndefined();
    expect(proxyFor(settings, '::1', 80)).toBeDefined();
  });

  it.each(['', 'exa mple', 'http://x', '10.0.0.0/33', '10.0.0.0/8/1', 'host:0', 'host:70000', 'a/b', '[fd00::1', 'fd00::/200', '-bad.example'])(
    'refuses %j', (entry) => {
      expect(() => parseNoProxyEntry(entry, 'network.noProxy[0]')).toThrow(/^network\.noProxy\[0\]: /);
    });
});

describe('where the proxy comes from', () => {
  it('takes https_proxy, then HTTPS_PROXY, when network.proxy is unset, and no_proxy then NO_PROXY', () => {
    expect(proxySettings(none, { https_proxy: 'http://a:1', HTTPS_PROXY: 'http://b:2' }).proxy).toMatchObject({ host: 'a', source: 'https_proxy' });
    expect(proxySettings(none, { HTTPS_PROXY: 'http://b:2' }).proxy).toMatchObject({ host: 'b', source: 'HTTPS_PROXY' });
    expect(proxySettings(none, { HTTPS_PROXY: 'b:2' }).proxy).toMatchObject({ host: 'b', port: 2 });
    expect(proxySettings(none, { https_proxy: '  ', http_proxy: 'http://c:3' }).proxy).toBeUndefined();
    const settings = proxySettings(none, { https_proxy: 'http://a:1', no_proxy: 'x.example, .y.example 10.0.0.0/8', NO_PROXY: '*' });
    expect(settings.noProxySource).toBe('no_proxy');
    expect(settings.noProxy).toHaveLength(3);
    expect(proxySettings(none, { NO_PROXY: '*' }).noProxy).toEqual([{ kind: 'all' }]);
  });

  it('takes the config\'s keys over the environment', () => {
    const settings = proxySettings({ proxy: 'http://cfg:3128', noProxy: ['hub.example'] }, { https_proxy: 'http://env:1', no_proxy: '*' });
    expect(settings.proxy).toMatchObject({ host: 'cfg', source: 'network.proxy' });
    expect(settings.noProxySource).toBe('network.noProxy');
    expect(proxyFor(settings, 'dps.example', 443)).toBeDefined();
    expect(proxyFor(settings, 'hub.example', 443)).toBeUndefined();
    // An empty list in the config: nothing goes direct, whatever no_proxy says.
    expect(proxySettings({ proxy: undefined, noProxy: [] }, { https_proxy: 'http://env:1', no_proxy: '*' }).noProxy).toEqual([]);
  });

  it('names the variable of an unusable environment value, without its credentials', () => {
    expect(() => proxySettings(none, { HTTPS_PROXY: 'http://u:Secret1@proxy' })).toThrow(/^HTTPS_PROXY: the proxy port is missing$/);
    expect(() => proxySettings(none, { https_proxy: 'http://a:1', no_proxy: 'a b/c' })).toThrow(/^no_proxy: /);
  });
});

describe('the proxy\'s refusals in words', () => {
  it.each([
    ['http://u:Secret1@proxy.example:3128', 'network.proxy', 407, 'the proxy http://***@proxy.example:3128 (network.proxy) refused the credentials: wrong user name or password (407)'],
    ['http://u:Secret1@proxy.example:3128', 'network.proxy', 401, 'the proxy http://***@proxy.example:3128 (network.proxy) refused the credentials: wrong user name or password (401)'],
    ['http://proxy.example:3128', 'https_proxy', 407, 'the proxy http://proxy.example:3128 (https_proxy) requires credentials (407)'],
    ['http://u:Secret1@proxy.example:3128', 'network.proxy', 403, 'the proxy http://***@proxy.example:3128 (network.proxy) does not allow a tunnel to hub.example:443 (403)'],
    ['http://u:Secret1@proxy.example:3128', 'network.proxy', 502, 'the proxy http://***@proxy.example:3128 (network.proxy) could not open a tunnel to hub.example:443 (502)'],
  ])('%#: the proxy (%s from %s) answering %i', (url, source, status, message) => {
    const err = proxyRefusal(parseProxyUrl(url, source), status, 'hub.example:443');
    expect(err.message).toBe(message);
    expect(err.statusCode).toBe(status);
    expect(`${err.message} ${err.hint}`).not.toContain('Secret1');
  });
});
