import { describe, expect, it } from 'vitest';
import { isSecretName, redactProxy, redactText, redactValue } from '../../agent/support/redact.js';

describe('support bundle redaction', () => {
  it.each([
    ['SharedAccessSignature sr=hub%2Fdevices%2Fd1&sig=abc%2Bdef%3D&se=1900000000', 'SharedAccessSignature [redacted]'],
    ['password="SharedAccessSignature sr=x&sig=y&se=1&skn=iothubowner" next', 'password="SharedAccessSignature [redacted]" next'],
    ['https://a.blob.core.windows.net/c/b?sv=2021-12-02&sr=b&sp=rw&sig=S1gn%3D&se=x', 'https://a.blob.core.windows.net/c/b?sv=2021-12-02&sr=b&sp=rw&sig=[redacted]&se=x'],
    ['url=https%3A%2F%2Fa%2Fb%3Fsv%3D1%26sig%3DS1gn%2B%3D%26se%3D2', 'url=https%3A%2F%2Fa%2Fb%3Fsv%3D1%26sig%3D[redacted]%26se%3D2'],
    ['HostName=h;DeviceId=d;SharedAccessKey=c2VjcmV0;GatewayHostName=g', 'HostName=h;DeviceId=d;SharedAccessKey=[redacted];GatewayHostName=g'],
    ['HostName=h;SharedAccessKeyName=iothubowner;SharedAccessKey=k=', 'HostName=h;SharedAccessKeyName=iothubowner;SharedAccessKey=[redacted]'],
    ['DefaultEndpointsProtocol=https;AccountName=a;AccountKey=Zm9vYmFy==;EndpointSuffix=core.windows.net', 'DefaultEndpointsProtocol=https;AccountName=a;AccountKey=[redacted];EndpointSuffix=core.windows.net'],
    ['proxy http://user:p%40ss@proxy:3128 and socks5://u@h:1080', 'proxy http://[redacted]@proxy:3128 and socks5://[redacted]@h:1080'],
    ['Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc', 'Authorization: [redacted] [redacted]'],
    ['curl -H "Bearer eyJhbGciOiJIUzI1NiJ9"', 'curl -H "Bearer [redacted]"'],
    ['level=info password=hunter2 user=bob', 'level=info password=[redacted] user=bob'],
    ['  primaryKey: "c2VjcmV0"', '  primaryKey: "[redacted]"'],
    ['{"authenticationKey":"AAAA","registrationId":"r1"}', '{"authenticationKey":"[redacted]","registrationId":"r1"}'],
    ['network.proxy: http://a:b@c:8080', 'network.proxy: http://[redacted]@c:8080'],
  ])('redacts %j', (input, output) => {
    expect(redactText(input)).toBe(output);
  });

  it('removes PEM private keys of any kind, also one cut off before its END line', () => {
    const key = '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBase64Body\n-----END EC PRIVATE KEY-----';
    expect(redactText(`before\n${key}\nafter`)).toBe('before\n-----[redacted] PRIVATE KEY-----\nafter');
    expect(redactText('x\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANtruncated')).toBe('x\n-----[redacted] PRIVATE KEY-----');
    const cert = '-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----';
    expect(redactText(cert)).toBe(cert);
  });

  it.each([
    'time=2026-11-26T00:00:00Z level=info event=state.changed from=connecting to=ready',
    'registration id abcd, EK at 0x81010001, signing with the key at 0x81000100',
    'SharedAccessKeyName=iothubowner',
    '{"endorsementKey":"ARoAAQALAAMAsgAg","storageRootKey":"ARYAAQALAAMAcgAA"}',
    '',
    'no=equals at=all;',
  ])('leaves text without secrets as it is: %j', (input) => {
    expect(redactText(input)).toBe(input);
  });

  it('redacts JSON by key name, keeps public keys and structure, and redacts strings as text', () => {
    expect(redactValue({
      primaryKey: 'c2VjcmV0', tokenLifetimeSeconds: 3600, nested: [{ password: 'x', note: 'url https://u:p@h' }],
      endorsementKey: 'ARoA', identityKey: { ok: true, value: { type: 'KEYEDHASH' } }, keysCreated: ['EK'], empty: null,
    })).toEqual({
      primaryKey: '[redacted]', tokenLifetimeSeconds: '[redacted]', nested: [{ password: '[redacted]', note: 'url https://[redacted]@h' }],
      endorsementKey: 'ARoA', identityKey: { ok: true, value: { type: 'KEYEDHASH' } }, keysCreated: ['EK'], empty: null,
    });
  });

  it.each([
    ['password', true], ['proxyPassword', true], ['client_secret', true], ['AccountKey', true], ['apikeys', true], ['sig', true],
    ['Authorization', true], ['sasToken', true], ['endorsementKey', false], ['storageRootKey', false], ['keyName', false],
    ['registrationId', false], ['keysCreated', false], ['extraCaFile', false], ['keepalive', false],
  ])('treats the value of %s as secret: %s', (name, secret) => {
    expect(isSecretName(name)).toBe(secret);
  });

  it.each([
    ['http://user:pass@proxy:3128', 'http://[redacted]@proxy:3128'],
    ['user:pass@proxy:3128', '[redacted]@proxy:3128'],
    ['proxy:3128', 'proxy:3128'],
    ['localhost,127.0.0.1,.internal', 'localhost,127.0.0.1,.internal'],
  ])('removes credentials from a proxy setting %j', (input, output) => {
    expect(redactProxy(input)).toBe(output);
  });
});
