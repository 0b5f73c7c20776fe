import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface ServerCredentials {
  caCertPath: string;
  /** PEM of the private test CA: what clients must trust, explicitly. */
  ca: string;
  key: string;
  cert: string;
}

/**
 * A private test CA and one server certificate covering `hosts` (names or IP addresses),
 * made with the openssl command on first use and reused from `dir` afterwards. A host
 * list that changed gets a new server certificate from the same CA.
 */
export async function ensureServerCredentials(dir: string, hosts: string[]): Promise<ServerCredentials> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caKey = path.join(dir, 'ca.key');
  const caCertPath = path.join(dir, 'ca.pem');
  const serverKey = path.join(dir, 'server.key');
  const serverCert = path.join(dir, 'server.pem');
  const hostsFile = path.join(dir, 'server.hosts');
  const wanted = [...new Set(hosts)].sort().join(',');

  if (!existsSync(caCertPath) || !existsSync(caKey)) {
    await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', caKey, '-out', caCertPath, '-days', '3650', '-subj', '/CN=iot-agent local cloud test CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  }
  const current = existsSync(hostsFile) ? readFileSync(hostsFile, 'utf8') : '';
  if (current !== wanted || !existsSync(serverCert) || !existsSync(serverKey)) {
    const san = [...new Set(hosts)].map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
    const csr = path.join(dir, 'server.csr');
    await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', serverKey, '-out', csr, '-subj', `/CN=${hosts[0] ?? 'localhost'}`, '-addext', `subjectAltName=${san}`]);
    await openssl(['x509', '-req', '-in', csr, '-CA', caCertPath, '-CAkey', caKey, '-CAcreateserial',
      '-out', serverCert, '-days', '825', '-copy_extensions', 'copy',
      '-extfile', writeExtensions(dir), '-extensions', 'server']);
    writeFileSync(hostsFile, wanted);
  }
  return {
    caCertPath,
    ca: readFileSync(caCertPath, 'utf8'),
    key: readFileSync(serverKey, 'utf8'),
    cert: readFileSync(serverCert, 'utf8'),
  };
}

function writeExtensions(dir: string): string {
  const file = path.join(dir, 'server.ext');
  writeFileSync(file, '[server]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n');
  return file;
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new Error('openssl is not installed: run scripts/setup.sh (Debian package openssl)', { cause: err });
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.trim() ?? e.message}`, { cause: err });
  }
}
