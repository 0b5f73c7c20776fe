import { createSecureContext, type SecureContext } from 'node:tls';

let last: { key: string; context: SecureContext } | undefined;

/**
 * One TLS context for a set of CAs (PEM), made again only when they change (a reloaded
 * config). Handed `ca` as a connection option, Node builds a context for every connection:
 * with the system's roots plus an extra CA (some 140 certificates) that is about 1 MB of
 * native memory, which glibc keeps (40 connects: +40 MB RSS; one shared context: +2 MB).
 */
export function sharedSecureContext(ca: string | readonly string[]): SecureContext {
  const key = typeof ca === 'string' ? ca : ca.join('\n');
  if (last?.key !== key) last = { key, context: createSecureContext({ ca: key }) };
  return last.context;
}
