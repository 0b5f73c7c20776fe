import { rootCertificates } from 'node:tls';

/**
 * The CAs a TLS connection of the agent trusts: the system's roots plus the extra PEM
 * (tls.extraCaFile). Node's `ca` option replaces the roots, so they are listed again;
 * undefined keeps Node's defaults (and NODE_EXTRA_CA_CERTS).
 */
export function trustedCas(extraPem: string | undefined): string[] | undefined {
  return extraPem === undefined ? undefined : [...rootCertificates, extraPem];
}
