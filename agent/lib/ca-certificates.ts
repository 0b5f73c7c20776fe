import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';

/** The PEM certificate blocks in a text, in order, each exactly as written. */
export function pemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** Node's default trust: its root store and, as Node itself reads it at start-up, NODE_EXTRA_CA_CERTS. */
export function systemCertificates(): string[] {
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (!extra) return [...rootCertificates];
  try {
    return [...rootCertificates, ...pemCertificates(readFileSync(extra, 'utf8'))];
  } catch {
    return [...rootCertificates]; // Node only warns about an unreadable file, and so do its connections
  }
}
