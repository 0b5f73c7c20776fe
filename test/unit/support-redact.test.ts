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

  it.each([
    ['a SAS token URL-encoded in a query, and what follows it up to a space', 'q=SharedAccessSignature%20sr%3Dhub%26sig%3Dabc&next=1 end', 'q=SharedAccessSignature [redacted] end'],
    ['a SAS token joined with +', 'auth=SharedAccessSignature+sr=hub&sig=abc', 'auth=SharedAccessSignature [redacted]'],
    ['a SAS token ended by a quote', '"SharedAccessSignature sr=a&sig=b" rest', '"SharedAccessSignature [redacted]" rest'],
    ['an upper-case SIG', 'https://a/b?SIG=abc&sp=r', 'https://a/b?sig=[redacted]&sp=r'],
    ['an encoded sig first in an encoded query, ended by an encoded &', 'url=https%3A%2F%2Fa%2Fb%3Fsig%3Dabc%26se%3D1', 'url=https%3A%2F%2Fa%2Fb%3Fsig%3D[redacted]%26se%3D1'],
    ['an encoded sig after a lower-case encoded ?', 'u=%2fb%3fsig%3Dabc', 'u=%2fb%3fsig%3D[redacted]'],
    ['keys with spaces around =', 'AccountKey = Zm9v ; x=1', 'AccountKey = [redacted] ; x=1'],
    ['a secondary key', 'SecondaryKey=Zm9v;', 'SecondaryKey=[redacted];'],
    ['a primary key in lower case', 'primarykey=Zm9v;', 'primarykey=[redacted];'],
    ['basic credentials', 'curl -H "Basic dXNlcjpwYXNzd29yZA=="', 'curl -H "Basic [redacted]"'],
    ['a quoted secret', "password: 'hunter2'", "password: '[redacted]'"],
    ['a secret under a dotted name', 'tls.clientKey=abc123 next=1', 'tls.clientKey=[redacted] next=1'],
    ['a secret named in JSON', '{"sasToken": "abc", "ok": 1}', '{"sasToken": "[redacted]", "ok": 1}'],
    ['an RSA private key', '-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----', '-----[redacted] PRIVATE KEY-----'],
    ['an encrypted private key', '-----BEGIN ENCRYPTED PRIVATE KEY-----\nabc\n-----END ENCRYPTED PRIVATE KEY----- tail', '-----[redacted] PRIVATE KEY----- tail'],
  ])('redacts %s', (_what, input, output) => {
    expect(redactText(input)).toBe(output);
  });

  it.each([
    ['a short bearer word', 'Bearer abc'],
    ['a mapping opened under a secret name', 'secret: {'],
    ['a list opened under a secret name', 'tokens: [a, b]'],
    ['a sig inside a word', 'design%3Dplan'],
    ['a key name that is public', 'endorsementKey=ARoA'],
    ['a value already redacted', 'password=[redacted]'],
  ])('leaves %s alone', (_what, input) => {
    expect(redactText(input)).toBe(input);
  });

  it('redacts values by name whatever their case or separators, and numbers too, but keeps booleans and nulls', () => {
    expect(redactValue({ PWD: 1234, 'client-secret': 'x', Cookie: 'c', authorisation: 'a', passphrase: 'p', disabled: { token: true, password: null } })).toEqual({
      PWD: '[redacted]', 'client-secret': '[redacted]', Cookie: '[redacted]', authorisation: '[redacted]', passphrase: '[redacted]', disabled: { token: true, password: null },
    });
  });

  it('looks inside a mapping or list under a secret name by the names inside', () => {
    expect(redactValue({ apiKeys: [{ name: 'a', value: 'v' }], credentials: { user: 'u', password: 'p' } })).toEqual({
      apiKeys: [{ name: 'a', value: 'v' }], credentials: { user: 'u', password: '[redacted]' },
    });
  });

  it.each([['sasUrl', true], ['sas', true], ['pwd', true], ['mysig', false], ['signatureAlgorithm', true], ['keysAreFine', false]])('treats %s as secret: %s', (name, secret) => {
    expect(isSecretName(name)).toBe(secret);
  });

  it('removes a user without a password from a proxy setting, and leaves a path alone', () => {
    expect(redactProxy('user@proxy:3128')).toBe('[redacted]@proxy:3128');
    expect(redactProxy('proxy/path@x')).toBe('proxy/path@x');
  });
});

