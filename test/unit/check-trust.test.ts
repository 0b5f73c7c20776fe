import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { caBundle, loadTrust } from '../../agent/check/trust.js';
import { ensureServerCredentials, type ServerCredentials } from '../cloud/tls.js';
import { stringContaining } from '../support/matchers.js';

let made: Promise<ServerCredentials> | undefined;
/** A private test CA and a server certificate it issued (openssl), made once per file. */
const credentials = () => (made ??= ensureServerCredentials(mkdtempSync(path.join(tmpdir(), 'iot-agent-trust-')), ['localhost']));

function file(text: string): string {
  const name = path.join(mkdtempSync(path.join(tmpdir(), 'iot-agent-trust-file-')), 'ca.pem');
  writeFileSync(name, text);
  return name;
}

const savedExtra = process.env.NODE_EXTRA_CA_CERTS;
afterEach(() => {
  if (savedExtra === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
  else process.env.NODE_EXTRA_CA_CERTS = savedExtra;
});

describe('the CAs the agent trusts', () => {
  it('leaves Node\'s default trust alone when no extra CA file is configured', async () => {
    const trust = await loadTrust(undefined);
    expect(trust).toEqual({ ok: true, ca: undefined, extraCaFile: undefined });
    expect(caBundle(trust as Extract<typeof trust, { ok: true }>)).toBeUndefined();
  });

  it('adds the extra CA file to the system roots rather than replacing them', async () => {
    delete process.env.NODE_EXTRA_CA_CERTS;
    const { ca } = await credentials();
    const name = file(ca);
    const trust = await loadTrust(name);
    expect(trust).toEqual({ ok: true, ca: [...rootCertificates, ca.trim()], extraCaFile: name });
    expect(caBundle(trust as Extract<typeof trust, { ok: true }>)).toBe([...rootCertificates, ca.trim()].join('\n'));
  });

  it('takes every certificate of a bundle, and ignores the text around them', async () => {
    delete process.env.NODE_EXTRA_CA_CERTS;
    const { ca, cert } = await credentials();
    const trust = await loadTrust(file(`# corporate CAs\n${ca}\nsome note\n${cert}\n`));
    expect(trust.ok && trust.ca?.slice(rootCertificates.length)).toEqual([ca.trim(), cert.trim()]);
  });

  it('keeps NODE_EXTRA_CA_CERTS, which Node\'s own connections trust, when it spells the list out', async () => {
    const { ca, cert } = await credentials();
    process.env.NODE_EXTRA_CA_CERTS = file(cert);
    const trust = await loadTrust(file(ca));
    expect(trust.ok && trust.ca).toEqual([...rootCertificates, cert.trim(), ca.trim()]);
  });

  it('goes on with the system roots when NODE_EXTRA_CA_CERTS cannot be read, as Node does', async () => {
    const { ca } = await credentials();
    process.env.NODE_EXTRA_CA_CERTS = '/nonexistent/extra-ca.pem';
    const trust = await loadTrust(file(ca));
    expect(trust.ok && trust.ca).toEqual([...rootCertificates, ca.trim()]);
  });

  it('refuses an extra CA file that cannot be read, naming it and its error', async () => {
    expect(await loadTrust('/nonexistent/ca.pem')).toEqual({
      ok: false, problem: 'tls.extraCaFile /nonexistent/ca.pem cannot be read (ENOENT)', hint: 'fix tls.extraCaFile in the config or install the CA file',
    });
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-trust-dir-'));
    expect(await loadTrust(dir)).toMatchObject({ ok: false, problem: `tls.extraCaFile ${dir} cannot be read (EISDIR)` });
  });

  it('refuses a file without a certificate in it', async () => {
    const name = file('-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n');
    expect(await loadTrust(name)).toEqual({
      ok: false, problem: `tls.extraCaFile ${name} holds no PEM certificate`, hint: 'the file must hold one or more "BEGIN CERTIFICATE" blocks',
    });
    expect(await loadTrust(file('-----BEGIN CERTIFICATE----------END CERTIFICATE-----\n'))).toMatchObject({ ok: false, problem: stringContaining('holds no PEM certificate') });
  });

  it('refuses a damaged certificate, even beside a good one', async () => {
    const { ca } = await credentials();
    const name = file(`${ca}\n-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n`);
    expect(await loadTrust(name)).toEqual({
      ok: false, problem: `tls.extraCaFile ${name} holds a damaged certificate`, hint: 'replace the file with a good copy of the CA certificate',
    });
  });
});
