import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { rootCertificates } from 'node:tls';

/**
 * The CAs a TLS check trusts: Node's root store (what the agent's own connections
 * trust) plus tls.extraCaFile. `ca` undefined means "Node's default", which also keeps
 * NODE_EXTRA_CA_CERTS in effect.
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
  const pems = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
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
  return { ok: true, ca: [...rootCertificates, ...pems], extraCaFile };
}
