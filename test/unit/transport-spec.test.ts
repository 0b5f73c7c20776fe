import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../agent/lib/errors.js';
import { formatTransport, parseTransport, TransportSpecError } from '../../agent/config/transport-spec.js';

describe('TPM transport strings', () => {
  it.each([
    ['device:/dev/tpmrm0', { kind: 'device', path: '/dev/tpmrm0' }],
    ['device', { kind: 'device', path: '/dev/tpmrm0' }],
    ['device:/dev/tpm0', { kind: 'device', path: '/dev/tpm0' }],
    ['swtpm:host=127.0.0.1,port=2321', { kind: 'swtpm', host: '127.0.0.1', port: 2321 }],
    ['swtpm:port=4000', { kind: 'swtpm', host: '127.0.0.1', port: 4000 }],
    ['swtpm', { kind: 'swtpm', host: '127.0.0.1', port: 2321 }],
    ['mssim:host=tpm.local,port=2321', { kind: 'mssim', host: 'tpm.local', port: 2321 }],
    ['mssim:host=[::1]', { kind: 'mssim', host: '::1', port: 2321 }],
    [' swtpm:host=localhost , port=9 ', { kind: 'swtpm', host: 'localhost', port: 9 }],
    ['swtpm:host=::1,port=1', { kind: 'swtpm', host: '::1', port: 1 }],
    ['swtpm:port=65534', { kind: 'swtpm', host: '127.0.0.1', port: 65534 }],
    ['mssim:host=tpm.example.net.', { kind: 'mssim', host: 'tpm.example.net.', port: 2321 }],
    ['device:', { kind: 'device', path: '/dev/tpmrm0' }],
  ])('accepts %j', (text, expected) => {
    expect(parseTransport(text)).toEqual(expected);
  });

  it.each([
    ['', /it is empty/],
    ['tpm:/dev/tpm0', /unknown kind "tpm"/],
    ['DEVICE:/dev/tpmrm0', /unknown kind "DEVICE"/],
    ['device:dev/tpmrm0', /is not absolute/],
    ['device:/dev/tpm rm0', /white space/],
    ['swtpm:host=127.0.0.1,port=', /port "" is not a number/],
    ['swtpm:port=0', /port "0" is not a number from 1 to 65534/],
    ['swtpm:port=65535', /port "65535"/],
    ['swtpm:port=12ab', /port "12ab"/],
    ['swtpm:port=-1', /port "-1"/],
    ['swtpm:host=a b', /host "a b" is not a host name/],
    ['swtpm:host=;rm -rf /', /is not a host name/],
    ['swtpm:host=x[::1]', /host "x\[::1\]" is not a host name or address/],
    ['swtpm:host=[::1', /host "\[::1" is not a host name/],
    ['swtpm:host=tpm[a]', /host "tpm\[a\]" is not a host name/],
    ['swtpm:host=[tpm]a', /host "\[tpm\]a" is not a host name/],
    ['swtpm:host=-tpm', /host "-tpm" is not a host name/],
    ['swtpm:host=', /host "" is not a host name/],
    ['swtpm:port=0x10', /port "0x10" is not a number/],
    ['swtpm:port=x12', /port "x12" is not a number/],
    ['swtpm:port=123456', /port "123456"/],
    ['swtpm:=1', /expected key=value, got "=1"/],
    ['swtpm:127.0.0.1:2321', /expected key=value/],
    ['swtpm:host=127.0.0.1,,port=1', /expected key=value, got ""/],
    ['swtpm:port=1,port=2', /port is given twice/],
    ['mssim:hostname=x', /unknown key "hostname"/],
  ])('rejects %j naming the problem and the accepted forms', (text, reason) => {
    let error: unknown;
    try {
      parseTransport(text);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(TransportSpecError);
    const e = error as TransportSpecError;
    expect(e.message).toMatch(reason);
    expect(e.hint).toBe('accepted forms: device:/dev/tpmrm0, swtpm:host=127.0.0.1,port=2321, mssim:host=127.0.0.1,port=2321');
    expect(e.exitCode).toBe(ExitCode.usage);
  });

  it('formats a parsed transport back to its canonical string', () => {
    expect(formatTransport(parseTransport('swtpm:port=5'))).toBe('swtpm:host=127.0.0.1,port=5');
    expect(formatTransport(parseTransport('device'))).toBe('device:/dev/tpmrm0');
    expect(formatTransport(parseTransport('mssim:host=[::1],port=7'))).toBe('mssim:host=::1,port=7');
  });
});
