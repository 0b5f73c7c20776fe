import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { createSecureContext, type TlsOptions } from 'node:tls';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface ServerCredentials {
  caCertPath: string;
  /** PEM of the private test CA: what clients must trust, explicitly. */
  ca: string;
  key: string;
  cert: string;
}

/** How long before today the server certificate's validity starts: Azure's endpoints present certificates months old. */
export const CERTIFICATE_AGE_DAYS = 45;
const CERTIFICATE_LIFETIME_DAYS = 365;
/** Written next to the certificate: a change of hosts or of this layout makes a new one. */
const LAYOUT = 'v3';
/** Public roots (DigiCert Global Root G2, Microsoft RSA Root 2017) were issued years ago; so is the test CA. */
const CA_AGE_DAYS = 3 * 365;
const CA_LIFETIME_DAYS = 10 * 365;

/**
 * A private test CA and one server certificate covering `hosts` (DNS names and IP
 * addresses), made with the openssl command on first use and reused from `dir`
 * afterwards. Like Azure's endpoint certificates, it was issued well before today
 * (notBefore CERTIFICATE_AGE_DAYS back), so a device whose clock is a few weeks behind
 * still accepts it. A host list that changed gets a new server certificate from the same CA.
 */
export async function ensureServerCredentials(dir: string, hosts: string[]): Promise<ServerCredentials> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caKey = path.join(dir, 'ca.key');
  const caCertPath = path.join(dir, 'ca.pem');
  const serverKey = path.join(dir, 'server.key');
  const serverCert = path.join(dir, 'server.pem');
  const hostsFile = path.join(dir, 'server.hosts');
  const unique = [...new Set(hosts)];
  const wanted = `${LAYOUT}:${[...unique].sort().join(',')}`;

  const caLayout = path.join(dir, 'ca.layout');
  if (!existsSync(caCertPath) || !existsSync(caKey) || !existsSync(caLayout) || readFileSync(caLayout, 'utf8') !== LAYOUT) {
    const csr = path.join(dir, 'ca.csr');
    await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', caKey, '-out', csr, '-subj', '/CN=iot-agent local cloud test CA']);
    // Self-signed through `openssl ca`, the only way OpenSSL 3.0 backdates a certificate.
    await openssl(['ca', '-batch', '-selfsign', '-config', writeCaConfig(dir), '-keyfile', caKey, '-in', csr, '-out', caCertPath,
      '-startdate', asn1Time(new Date(Date.now() - CA_AGE_DAYS * 86_400_000)), '-enddate', asn1Time(new Date(Date.now() + CA_LIFETIME_DAYS * 86_400_000)),
      '-extensions', 'ca_cert', '-notext']);
    writeFileSync(caLayout, LAYOUT);
    rmSync(hostsFile, { force: true }); // a new CA: new server certificates too
  }
  const current = existsSync(hostsFile) ? readFileSync(hostsFile, 'utf8') : '';
  if (current !== wanted || !existsSync(serverCert) || !existsSync(serverKey)) {
    const san = unique.map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
    const csr = path.join(dir, 'server.csr');
    await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', serverKey, '-out', csr, '-subj', `/CN=${unique[0] ?? 'localhost'}`, '-addext', `subjectAltName=${san}`]);
    // `openssl x509 -req` cannot backdate (OpenSSL 3.0); `openssl ca` takes explicit start and end dates.
    const start = new Date(Date.now() - CERTIFICATE_AGE_DAYS * 86_400_000);
    const end = new Date(Date.now() + CERTIFICATE_LIFETIME_DAYS * 86_400_000);
    await openssl(['ca', '-batch', '-config', writeCaConfig(dir), '-cert', caCertPath, '-keyfile', caKey, '-in', csr,
      '-out', serverCert, '-startdate', asn1Time(start), '-enddate', asn1Time(end), '-extensions', 'server', '-notext']);
    writeFileSync(hostsFile, wanted);
  }
  return {
    caCertPath,
    ca: readFileSync(caCertPath, 'utf8'),
    key: readFileSync(serverKey, 'utf8'),
    cert: readFileSync(serverCert, 'utf8'),
  };
}

/**
 * TLS options for one listener whose clients reach it as `hostName`. Azure's endpoints
 * need SNI: a client that names no server, or another one, fails the handshake. The
 * listener therefore has no default certificate and hands its own only to a client that
 * asks for `hostName`. A listener reached by an IP address keeps a default certificate:
 * SNI carries names only (RFC 6066), so no client could name it.
 */
export function listenerTlsOptions(credentials: { key: string; cert: string }, hostName: string): TlsOptions {
  if (isIP(hostName)) return { key: credentials.key, cert: credentials.cert, minVersion: 'TLSv1.2' };
  const context = createSecureContext({ key: credentials.key, cert: credentials.cert });
  const wanted = hostName.toLowerCase();
  return {
    minVersion: 'TLSv1.2',
    SNICallback: (servername, done) => {
      if (servername.toLowerCase() === wanted) done(null, context);
      else done(new Error(`no certificate for ${servername}`));
    },
  };
}

/** `tls.connect` options naming `hostName` the way a client must: SNI for a name, none for an address. */
export function servernameFor(hostName: string): { servername?: string } {
  return isIP(hostName) ? {} : { servername: hostName };
}

function writeCaConfig(dir: string): string {
  const issued = path.join(dir, 'issued');
  rmSync(issued, { recursive: true, force: true });
  mkdirSync(issued, { recursive: true, mode: 0o700 });
  writeFileSync(path.join(dir, 'index.txt'), '');
  // A fresh serial number for every certificate, as a CA must never reuse one.
  writeFileSync(path.join(dir, 'serial'), `${randomBytes(16).toString('hex').replace(/^[89a-f]/, '7')}\n`);
  const file = path.join(dir, 'ca.cnf');
  writeFileSync(file, [
    '[ca]', 'default_ca = local',
    '[local]', `database = ${path.join(dir, 'index.txt')}`, `new_certs_dir = ${issued}`, `serial = ${path.join(dir, 'serial')}`, 'default_md = sha256',
    'policy = any', 'copy_extensions = copy', 'unique_subject = no',
    '[any]', 'commonName = supplied',
    '[server]', 'basicConstraints = critical,CA:FALSE', 'keyUsage = critical,digitalSignature', 'extendedKeyUsage = serverAuth',
    '[ca_cert]', 'basicConstraints = critical,CA:TRUE', 'keyUsage = critical,keyCertSign,cRLSign', 'subjectKeyIdentifier = hash', '',
  ].join('\n'));
  return file;
}

/** YYYYMMDDHHMMSSZ, as `openssl ca -startdate` takes it. */
function asn1Time(date: Date): string {
  return `${date.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
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
