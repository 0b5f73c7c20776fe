import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { pemCertificates, systemCertificates } from './ca-certificates.js';

let last: { key: string; context: SecureContext } | undefined;

/**
 * One TLS context for a set of CAs (PEM), made again only when they change (a reloaded
 * config). Handed `ca` as a connection option, Node builds a context for every connection:
 * with the system's roots plus an extra CA (some 140 certificates) that is about 1 MB of
 * native memory, which glibc keeps (40 connects: +40 MB RSS; one shared context: +2 MB).
 */
export function sharedSecureContext(ca: string | readonly string[]): SecureContext {
  const key = typeof ca === 'string' ? ca : ca.join('\n');
  if (last?.key !== key) last = { key, context: contextFor(key) };
  return last.context;
}

type CaAdder = { addCACert(pem: string): void };
let defaults: { roots: ReadonlySet<string>; all: ReadonlySet<string> } | undefined;

/**
 * Parsing the system's roots again takes 25-75 ms of a board's event loop (jitless node),
 * all at once. Node's default context holds the store it made once per process, of its
 * roots and NODE_EXTRA_CA_CERTS; a context from it with the other CAs added costs about
 * 1 ms. That way is taken only when `bundle` names every root, so that the context trusts
 * what `bundle` names and nothing more (but NODE_EXTRA_CA_CERTS, which Node's default
 * trusts for the whole process and check/trust.ts puts in every bundle). `addCACert` is
 * the native context's method that Node's own `ca` option calls for each CA; without it
 * (another Node), the full parse.
 */
function contextFor(bundle: string): SecureContext {
  defaults ??= { roots: new Set(rootCertificates), all: new Set(systemCertificates()) };
  const pems = new Set(pemCertificates(bundle));
  const namesEveryRoot = [...defaults.roots].every((root) => pems.has(root));
  const context = namesEveryRoot ? createSecureContext() : undefined;
  const native = (context as { context?: Partial<CaAdder> } | undefined)?.context;
  if (!context || typeof native?.addCACert !== 'function') return createSecureContext({ ca: bundle });
  for (const pem of pems) if (!defaults.all.has(pem)) native.addCACert(pem);
  return context;
}
