import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { pemCertificates, systemCertificates } from '../lib/ca-certificates.js';

/**
 * The CAs every TLS connection of the agent trusts, the same in the daemon, `provision` and
 * `check`: the system's (Node's root store, plus NODE_EXTRA_CA_CERTS when set) and, when
 * the config names one, tls.extraCaFile on top. Node's `ca` option replaces the default
 * roots (and with them NODE_EXTRA_CA_CERTS) instead of adding to them, so with an extra
 * file the whole list is spelled out; without one, `ca` stays undefined and Node's default
 * applies. A corporate CA or a TLS-inspecting proxy's then works next to endpoints that
 * chain to public roots (DigiCert Global Root G2, Microsoft RSA Root 2017).
 */
export type Trust =
  | { ok: true; ca: string[] | undefined; extraCaFile: string | undefined }
  | { ok: false; problem: string; hint: string };

export async function loadTrust(extraCaFile: string | undefined): Promise<Trust> {
  if (extraCaFile === undefined) return { ok: true, ca: undefined, extraCaFile };
  let text: string;
  try {
    text = await readFile(extraCaFile, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    return { ok: false, problem: `tls.extraCaFile ${extraCaFile} cannot be read (${code})`, hint: 'fix tls.extraCaFile in the config or install the CA file' };
  }
  const pems = pemCertificates(text);
  if (pems.length === 0) {
    return { ok: false, problem: `tls.extraCaFile ${extraCaFile} holds no PEM certificate`, hint: 'the file must hold one or more "BEGIN CERTIFICATE" blocks' };
  }
  for (const pem of pems) {
    try {
      new X509Certificate(pem);
    } catch {
      return { ok: false, problem: `tls.extraCaFile ${extraCaFile} holds a damaged certificate`, hint: 'replace the file with a good copy of the CA certificate' };
    }
  }
  return { ok: true, ca: [...systemCertificates(), ...pems], extraCaFile };
}

/** The trust as one PEM bundle, for the SDKs' `ca` options; undefined means Node's default. */
export function caBundle(trust: Trust & { ok: true }): string | undefined {
  return trust.ca?.join('\n');
}
