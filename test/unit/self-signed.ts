import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A self-signed server certificate with the subject given in openssl's form
 * ("/O=Acme/OU=Boards", "/CN=a/CN=b"), for `hosts`: what a client trusts by naming the
 * certificate itself as its CA. For tests of how a certificate's names are shown.
 */
export async function selfSignedCertificate(subject: string, hosts: string[]): Promise<{ key: string; cert: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-self-signed-'));
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  const san = hosts.map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
  try {
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
      '-days', '30', '-subj', subject, '-addext', `subjectAltName=${san}`, '-addext', 'basicConstraints=critical,CA:TRUE']);
    return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
