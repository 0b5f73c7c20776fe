import { pbkdf2 } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { describeResolution, resolveHost } from '../../agent/check/dns-check.js';
import { hubChoice, proxyCheck, type Probe } from '../../agent/check/network-checks.js';
import type { TunnelOutcome } from '../../agent/check/proxy-probe.js';
import { seconds } from '../../agent/check/result.js';
import { describeTls, type TlsContext } from '../../agent/check/tls-check.js';
import { parseProxyUrl } from '../../agent/config/proxy-setting.js';
import { proxySettings } from '../../agent/network/proxy.js';
import { arrayContaining, stringContaining, stringMatching } from '../support/matchers.js';

const dps = { id: 'dps-dns', role: 'DPS', host: 'dps.example.invalid', origin: 'provisioning.globalEndpoint in the config' } as const;
const tls = (extraCaFile?: string): TlsContext => ({ id: 'dps-tls', role: 'DPS', host: 'dps.example.net', port: 443, extraCaFile, timeoutMs: 5_000 });
const failed = (code: string, phase: 'tcp' | 'tls' = 'tls', timedOut = false) => ({ ok: false as const, code, detail: '', phase, timedOut });

describe('check: name resolution', () => {
  it('takes an IP address as resolved without asking anyone', async () => {
    const resolution = await resolveHost('127.70.1.2', 1);
    expect(resolution).toEqual({ ok: true, addresses: [{ address: '127.70.1.2', family: 4 }], literal: true });
    expect(describeResolution({ ...dps, host: '127.70.1.2' }, resolution, 5_000).status).toBe('pass');
  });

  it('lists the addresses a name resolves to', () => {
    const result = describeResolution(dps, { ok: true, literal: false, addresses: [{ address: '10.0.0.1', family: 4 }, { address: 'fd00::1', family: 6 }] }, 5_000);
    expect(result).toEqual({ id: 'dps-dns', status: 'pass', message: 'DPS dps.example.invalid resolves to 10.0.0.1, fd00::1' });
  });

  it('fails an unknown name, pointing at the config key', () => {
    const result = describeResolution(dps, { ok: false, code: 'ENOTFOUND', timedOut: false }, 5_000);
    expect(result.message).toBe('DPS dps.example.invalid does not resolve (ENOTFOUND): no such name');
    expect(result.hint).toContain('check provisioning.globalEndpoint in the config');
  });

  it('fails a resolver that does not answer in time, pointing at resolv.conf', () => {
    const result = describeResolution(dps, { ok: false, code: 'ETIMEOUT', timedOut: true }, 5_000);
    expect(result.message).toBe('DPS dps.example.invalid: no answer from the resolver within 5 s');
    expect(result.hint).toContain('/etc/resolv.conf');
  });
});

describe('check: TLS outcomes in words', () => {
  it('names an unknown CA and asks whether tls.extraCaFile is set', () => {
    const result = describeTls(tls(), failed('UNABLE_TO_GET_ISSUER_CERT_LOCALLY'));
    expect(result.status).toBe('fail');
    expect(result.message).toContain('certificate signed by an unknown CA (UNABLE_TO_GET_ISSUER_CERT_LOCALLY)');
    expect(result.hint).toContain('is tls.extraCaFile set?');
  });

  it('with an extra CA file, says that file does not trust the server either', () => {
    const result = describeTls(tls('/etc/iot-agent/ca.pem'), failed('SELF_SIGNED_CERT_IN_CHAIN'));
    expect(result.message).toContain('nor tls.extraCaFile (/etc/iot-agent/ca.pem)');
  });

  it('tells a refused connection from a silent TLS handshake and a dropped TCP connect', () => {
    expect(describeTls(tls(), failed('ECONNREFUSED', 'tcp')).message).toContain('connection refused');
    expect(describeTls(tls(), failed('ETIMEDOUT', 'tls', true)).message).toBe('DPS dps.example.net:443: TCP connected, but the TLS handshake did not finish within 5 s');
    expect(describeTls(tls(), failed('ETIMEDOUT', 'tcp', true)).message).toBe('DPS dps.example.net:443: no TCP connection within 5 s (packets dropped?)');
  });

  it('blames the clock for a certificate that is not valid yet', () => {
    expect(describeTls(tls(), failed('CERT_NOT_YET_VALID')).hint).toContain('clock');
  });

  it('names a certificate for another host', () => {
    const result = describeTls(tls(), { ...failed('ERR_TLS_CERT_ALTNAME_INVALID'), detail: "Host: dps.example.net. is not in the cert's altnames" });
    expect(result.message).toContain('the certificate is not for dps.example.net');
  });

  it('passes a verified handshake, naming certificate and issuer', () => {
    const result = describeTls(tls(), { ok: true, address: '10.0.0.1:443', protocol: 'TLSv1.3', subject: 'CN=dps', issuer: 'CN=ca', validTo: 'Jan  1 00:00:00 2030 GMT' });
    expect(result).toEqual({ id: 'dps-tls', status: 'pass', message: 'TLS handshake with DPS dps.example.net:443 (10.0.0.1:443, TLSv1.3): certificate CN=dps issued by CN=ca, valid until Jan  1 00:00:00 2030 GMT' });
  });
});

describe('check: every resolver answer in words', () => {
  const dnsCheck = () => ({ id: 'dps-dns', role: 'DPS', host: 'dps.example.invalid', origin: 'provisioning.globalEndpoint in the config' } as const);

  it('shows four addresses and counts the rest', () => {
    const addresses = ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6'].map((address) => ({ address, family: 4 }));
    expect(describeResolution(dnsCheck(), { ok: true, literal: false, addresses }, 5_000).message)
      .toBe('DPS dps.example.invalid resolves to 10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.4, 2 more');
    expect(describeResolution(dnsCheck(), { ok: true, literal: false, addresses: addresses.slice(0, 4) }, 5_000).message)
      .toBe('DPS dps.example.invalid resolves to 10.0.0.1, 10.0.0.2, 10.0.0.3, 10.0.0.4');
  });

  it('calls a name without addresses no such name, like an unknown one', () => {
    expect(describeResolution(dnsCheck(), { ok: false, code: 'ENODATA', timedOut: false }, 5_000)).toMatchObject({
      status: 'fail', message: 'DPS dps.example.invalid does not resolve (ENODATA): no such name',
      hint: 'check provisioning.globalEndpoint in the config for a typo; if the name is right, check the network link and the name servers in /etc/resolv.conf; a firewall must let DNS (port 53) out',
    });
  });

  it('tells name servers that did not answer now from other resolver failures', () => {
    const resolver = 'check the network link and the name servers in /etc/resolv.conf; a firewall must let DNS (port 53) out';
    expect(describeResolution(dnsCheck(), { ok: false, code: 'EAI_AGAIN', timedOut: false }, 5_000)).toEqual({
      id: 'dps-dns', status: 'fail', message: 'DPS dps.example.invalid could not be resolved now (EAI_AGAIN): the name servers did not answer', hint: resolver,
    });
    expect(describeResolution(dnsCheck(), { ok: false, code: 'ESERVFAIL', timedOut: false }, 5_000)).toEqual({
      id: 'dps-dns', status: 'fail', message: 'DPS dps.example.invalid could not be resolved (ESERVFAIL)', hint: resolver,
    });
  });

  it('resolves localhost from /etc/hosts, and an empty name to nothing', async () => {
    expect(await resolveHost('localhost', 5_000)).toMatchObject({ ok: true, literal: false, addresses: arrayContaining([{ address: '127.0.0.1', family: 4 }]) });
    expect(await resolveHost('', 5_000)).toEqual({ ok: false, code: 'ENODATA', timedOut: false });
    expect(await resolveHost('::1', 1)).toEqual({ ok: true, addresses: [{ address: '::1', family: 6 }], literal: true });
  });

  it('passes on the resolver\'s own error code for a name it refuses, without asking a name server', async () => {
    // libuv refuses a name longer than DNS allows before getaddrinfo runs: no packet leaves.
    expect(await resolveHost('x'.repeat(300), 5_000)).toEqual({ ok: false, code: 'EINVAL', timedOut: false });
  });

  it('gives up on a lookup that does not finish within its deadline', async () => {
    // getaddrinfo runs on libuv's thread pool: while the pool is busy, a lookup of even localhost waits.
    const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
    const busy = Array.from({ length: 2 * threads }, () => new Promise((resolve) => pbkdf2('p', 's', 50_000, 64, 'sha512', resolve)));
    const t0 = performance.now();
    expect(await resolveHost('localhost', 50)).toEqual({ ok: false, code: 'ETIMEOUT', timedOut: true });
    expect(performance.now() - t0).toBeLessThan(1_000);
    await Promise.all(busy);
  });

  it('gives deadlines in seconds with at most one decimal', () => {
    expect(seconds(5_000)).toBe('5 s');
    expect(seconds(1_250)).toBe('1.3 s');
    expect(seconds(400)).toBe('0.4 s');
  });
});

describe('check: every TLS failure in words', () => {
  const firewall = 'a firewall must let TCP port 443 out';

  it('blames the certificate for having expired, and points at the clock first', () => {
    expect(describeTls(tls(), failed('CERT_HAS_EXPIRED'))).toEqual({
      id: 'dps-tls', status: 'fail', message: 'DPS dps.example.net:443: the server\'s certificate has expired (CERT_HAS_EXPIRED)',
      hint: 'if the clock check fails, fix the clock first; otherwise the server must renew its certificate',
    });
    expect(describeTls(tls(), failed('CERT_NOT_YET_VALID')).message).toBe('DPS dps.example.net:443: the server\'s certificate is not valid yet (CERT_NOT_YET_VALID)');
  });

  it.each(['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT'])(
    'counts %s as an unknown CA', (code) => {
      expect(describeTls(tls(), failed(code))).toEqual({
        id: 'dps-tls', status: 'fail', message: `DPS dps.example.net:443: certificate signed by an unknown CA (${code}): not trusted by the system CAs`,
        hint: 'is tls.extraCaFile set? A private CA (or a TLS-inspecting proxy\'s) must be listed there',
      });
      expect(describeTls(tls('/ca.pem'), failed(code)).hint).toBe('is tls.extraCaFile the CA that issued this server\'s certificate? A TLS-inspecting proxy on the path also causes this');
    });

  it('says which name the certificate is not for, and why that happens', () => {
    expect(describeTls(tls(), { ...failed('ERR_TLS_CERT_ALTNAME_INVALID'), detail: 'IP: 10.0.0.1 is not in the cert\'s list' })).toEqual({
      id: 'dps-tls', status: 'fail', message: 'DPS dps.example.net:443: the certificate is not for dps.example.net (IP: 10.0.0.1 is not in the cert\'s list)',
      hint: 'the configured name is wrong, or another server (a proxy?) answers at this address',
    });
  });

  it('explains a refused connection and a dropped or silent one with the firewall in mind', () => {
    expect(describeTls(tls(), failed('ECONNREFUSED', 'tcp'))).toEqual({
      id: 'dps-tls', status: 'fail', message: 'DPS dps.example.net:443: connection refused: nothing listens there, or a firewall rejects it',
      hint: `the service is down, the name points elsewhere, or a firewall rejects the connection; ${firewall}`,
    });
    expect(describeTls(tls(), failed('ETIMEDOUT', 'tcp', true)).hint).toBe(`check the network link; ${firewall}`);
    expect(describeTls(tls(), failed('ETIMEDOUT', 'tls', true)).hint).toBe('something on the path accepts connections but does not speak TLS: a proxy, captive portal or another service on this port');
  });

  it('tells a reset TCP connection from one closed during the handshake', () => {
    expect(describeTls(tls(), failed('ECONNRESET', 'tcp'))).toEqual({
      id: 'dps-tls', status: 'fail', message: 'DPS dps.example.net:443: the connection was reset (ECONNRESET)', hint: 'a firewall or proxy may block TLS on port 443',
    });
    expect(describeTls(tls(), failed('EPIPE', 'tls')).message).toBe('DPS dps.example.net:443: the connection was closed during the TLS handshake (EPIPE)');
  });

  it.each(['EHOSTUNREACH', 'ENETUNREACH'])('calls %s no route to the host', (code) => {
    expect(describeTls(tls(), failed(code, 'tcp'))).toEqual({
      id: 'dps-tls', status: 'fail', message: `DPS dps.example.net:443: no route to the host (${code})`, hint: 'check the network link, the default route and the interface address',
    });
  });

  it.each(['ERR_SSL_WRONG_VERSION_NUMBER', 'EPROTO'])('calls %s a server that does not speak TLS 1.2 or later', (code) => {
    expect(describeTls(tls(), failed(code))).toEqual({
      id: 'dps-tls', status: 'fail', message: `DPS dps.example.net:443: the server does not speak TLS 1.2 or later (${code})`, hint: 'another service answers on this port, or a proxy is in the way',
    });
  });

  it('names any other failure with its detail, blaming the certificate when the code is about one', () => {
    expect(describeTls(tls(), { ...failed('CERT_REVOKED'), detail: 'certificate revoked' })).toEqual({
      id: 'dps-tls', status: 'fail', message: 'DPS dps.example.net:443: TLS handshake failed (CERT_REVOKED: certificate revoked)',
      hint: 'the server certificate was rejected; check the clock and tls.extraCaFile',
    });
    expect(describeTls(tls(), failed('ERR_SSL_SOME_CERT_PROBLEM')).hint).toBe('the server certificate was rejected; check the clock and tls.extraCaFile');
    expect(describeTls(tls(), failed('ERR_SOMETHING'))).toEqual({ id: 'dps-tls', status: 'fail', message: 'DPS dps.example.net:443: TLS handshake failed (ERR_SOMETHING)', hint: firewall });
  });

  it('leaves out the address when it is the one configured', () => {
    const result = describeTls({ ...tls(), host: '10.0.0.1' }, { ok: true, address: '10.0.0.1:443', protocol: 'TLSv1.2', subject: 'CN=dps', issuer: 'CN=ca', validTo: 'x' });
    expect(result.message).toBe('TLS handshake with DPS 10.0.0.1:443 (TLSv1.2): certificate CN=dps issued by CN=ca, valid until x');
  });
});

describe('check: the proxy line in words', () => {
  const settings = () => proxySettings({ proxy: 'http://proxy.example:3128', noProxy: undefined }, {});

  it('fails a proxy whose name does not resolve, naming the code and where the proxy is set', () => {
    expect(proxyCheck(settings(), undefined, { ok: false, code: 'ENOTFOUND', timedOut: false }, 5_000, [])).toEqual({
      id: 'proxy', status: 'fail', message: 'http://proxy.example:3128 (network.proxy): proxy.example does not resolve (ENOTFOUND)',
      hint: 'check the proxy host in network.proxy and /etc/resolv.conf',
    });
  });

  it('fails a proxy whose name the resolver did not answer for within the step\'s time', () => {
    expect(proxyCheck(settings(), undefined, { ok: false, code: 'ETIMEOUT', timedOut: true }, 2_500, []).message)
      .toBe('http://proxy.example:3128 (network.proxy): proxy.example: no answer from the resolver within 2.5 s');
  });
});

describe('check: the proxy\'s answer to CONNECT in words', () => {
  const settings = () => proxySettings({ proxy: 'http://proxy.example:3128', noProxy: undefined }, {});
  const timedOut = (phase: 'tcp' | 'tls') => ({ ok: false as const, code: 'ETIMEDOUT', detail: '', phase, timedOut: true });
  const tunnel = (outcome: TunnelOutcome): [string, Probe] => ['dps.example:443', { via: 'proxy', outcome }];
  const resolved = { ok: true as const, literal: false, addresses: [{ address: '10.0.0.1', family: 4 }] };

  it('fails a proxy that did not answer the CONNECT in time', () => {
    expect(proxyCheck(settings(), undefined, resolved, 5_000, [tunnel({ connect: 'timeout', tls: timedOut('tcp') })])).toEqual({
      id: 'proxy', status: 'fail', message: 'http://proxy.example:3128 (network.proxy): no answer to CONNECT dps.example:443 within 5 s',
      hint: 'check that the proxy is up and that a firewall lets the board reach it',
    });
  });

  it('passes a proxy that opened the tunnel, however the handshake behind it went', () => {
    const passed = { id: 'proxy', status: 'pass', message: 'http://proxy.example:3128 (network.proxy) reachable; CONNECT to dps.example:443 accepted' };
    expect(proxyCheck(settings(), undefined, resolved, 5_000, [tunnel({ connect: 'timeout', tls: timedOut('tls') })])).toEqual(passed);
    expect(proxyCheck(settings(), undefined, resolved, 5_000, [tunnel({ connect: 'accepted', tls: timedOut('tls') })])).toEqual(passed);
    // Once the proxy accepted, even a failure named in the TCP phase is the endpoint's, not the proxy's.
    expect(proxyCheck(settings(), undefined, resolved, 5_000, [tunnel({ connect: 'accepted', tls: timedOut('tcp') })])).toEqual(passed);
  });
});

describe('check: the hub\'s protocol in words', () => {
  const proxy = () => parseProxyUrl('http://proxy.example:3128', 'network.proxy');
  const neither = { id: 'hub-choice', status: 'fail', message: 'neither 8883 nor 443 of the hub answers (see hub-tls, hub-wss)', hint: 'a firewall must let TCP 8883 or 443 out to the hub' };

  it('with a fixed protocol, passes when that way works and fails when only the other one does', () => {
    expect(hubChoice('mqtt', undefined, undefined, true, false)).toEqual({ id: 'hub-choice', status: 'pass', message: 'MQTT on 8883: network.hubProtocol is mqtt' });
    expect(hubChoice('mqtt', undefined, undefined, false, true)).toEqual({ id: 'hub-choice', status: 'fail',
      message: 'MQTT on 8883 (network.hubProtocol is mqtt), but that way does not work from here (see hub-tls)',
      hint: 'network.hubProtocol: auto uses whichever of 8883 and 443 works' });
    expect(hubChoice('mqtt-ws', undefined, undefined, false, true)).toEqual({ id: 'hub-choice', status: 'pass', message: 'MQTT over WebSockets on 443: network.hubProtocol is mqtt-ws' });
    expect(hubChoice('mqtt-ws', undefined, undefined, true, false)).toMatchObject({ status: 'fail', message: stringContaining('(see hub-wss)') });
  });

  it('in auto behind a proxy, takes WebSockets through it and names the proxy', () => {
    expect(hubChoice('auto', proxy(), undefined, false, true)).toEqual({ id: 'hub-choice', status: 'pass',
      message: 'MQTT over WebSockets on 443 through the proxy http://proxy.example:3128: through the proxy, which tunnels 443 only' });
  });

  it('in auto, takes 8883 when it answers, and says that the agent falls back when only 443 does', () => {
    expect(hubChoice('auto', undefined, undefined, true, true)).toEqual({ id: 'hub-choice', status: 'pass', message: 'MQTT on 8883: auto: 8883 first' });
    expect(hubChoice('auto', undefined, undefined, false, true)).toEqual({ id: 'hub-choice', status: 'pass',
      message: 'MQTT over WebSockets on 443: auto tries 8883 first and falls back within 10 s; 8883 does not answer from here' });
    expect(hubChoice('auto', undefined, undefined, false, false)).toEqual(neither);
  });

  it('in auto with WebSockets remembered, keeps them while 443 answers, and names 8883 when only it does', () => {
    const since = Date.now() - 60_000;
    const remembered = { protocol: 'mqtt-ws' as const, since, retryMqttAt: Date.now() + 3_600_000 };
    expect(hubChoice('auto', undefined, remembered, true, true)).toMatchObject({ id: 'hub-choice', status: 'pass',
      message: stringMatching(new RegExp(`^MQTT over WebSockets on 443: 8883 was unreachable \\(${new Date(since).toISOString()}\\); 8883 is tried again after `)) });
    expect(hubChoice('auto', undefined, remembered, true, false)).toEqual({ id: 'hub-choice', status: 'pass',
      message: 'MQTT on 8883: WebSockets were remembered, but 443 does not answer now and 8883 does' });
    expect(hubChoice('auto', undefined, remembered, false, false)).toEqual(neither);
  });
});
