import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { pemCertificates, systemCertificates } from '../../agent/lib/ca-certificates.js';

describe('PEM certificates in a text', () => {
  it('are each block, in order, exactly as written, without what lies between', () => {
    const [a, b] = [rootCertificates[0]!, rootCertificates[1]!];
    const crlf = b.replace(/\n/g, '\r\n');
    const text = `# bundle\n${a}\nsubject=some CA\n\n${crlf}\r\ntrailing words`;
    expect(pemCertificates(text)).toEqual([a, crlf]);
  });

  it('are none in a text without a whole block', () => {
    expect(pemCertificates('')).toEqual([]);
    expect(pemCertificates('-----BEGIN CERTIFICATE-----\nMIIB\n')).toEqual([]);
    expect(pemCertificates('-----BEGIN CERTIFICATE----------END CERTIFICATE-----')).toEqual([]);
  });
});

/** Runs `body` with NODE_EXTRA_CA_CERTS set to `value` (unset: undefined) and a temporary directory, then puts both back. */
function withExtraCaCerts(value: (dir: string) => string | undefined, body: (dir: string) => void): void {
  const before = process.env.NODE_EXTRA_CA_CERTS;
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-extra-ca-'));
  try {
    const extra = value(dir);
    if (extra === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
    else process.env.NODE_EXTRA_CA_CERTS = extra;
    body(dir);
  } finally {
    if (before === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
    else process.env.NODE_EXTRA_CA_CERTS = before;
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('the system certificates', () => {
  it('are Node\'s root store when NODE_EXTRA_CA_CERTS is unset or empty', () => {
    withExtraCaCerts(() => undefined, () => expect(systemCertificates()).toEqual([...rootCertificates]));
    withExtraCaCerts(() => '', () => expect(systemCertificates()).toEqual([...rootCertificates]));
  });

  it('add the certificates of the NODE_EXTRA_CA_CERTS file after the roots', () => {
    const extra = [rootCertificates[2]!, rootCertificates[3]!];
    withExtraCaCerts((dir) => path.join(dir, 'extra.pem'), (dir) => {
      writeFileSync(path.join(dir, 'extra.pem'), `extra CAs\n${extra.join('\n')}\n`);
      expect(systemCertificates()).toEqual([...rootCertificates, ...extra]);
    });
  });

  it('are the roots alone when the NODE_EXTRA_CA_CERTS file cannot be read, as Node itself trusts then', () => {
    withExtraCaCerts((dir) => path.join(dir, 'missing.pem'), () => expect(systemCertificates()).toEqual([...rootCertificates]));
  });
});
