import { describe, expect, it } from 'vitest';
import { describeResolution, resolveHost } from '../../agent/check/dns-check.js';
import { describeTls, type TlsContext } from '../../agent/check/tls-check.js';

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
