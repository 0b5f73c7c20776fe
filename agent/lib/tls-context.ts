import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { pemCertificates } from './ca-certificates.js';

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
let roots: ReadonlySet<string> | undefined;

/**
 * Parsing the system's roots again takes 25-75 ms of a board's event loop (jitless node),
 * all at once. Node's default context holds the root store it parsed once per process; a
 * context from it with the other CAs added costs about 1 ms. That way is taken only when
 * `bundle` names every root, so that the context trusts what `bundle` names and nothing
 * more. Node 20 puts NODE_EXTRA_CA_CERTS in its process-wide store only, not in the copy a
 * context makes to add a CA, so those are added here like any other (a board's unit sets
 * none). `addCACert` is the native context's method that Node's own `ca` option calls for
 * each CA; without it (another Node), the full parse.
 */
function contextFor(bundle: string): SecureContext {
  roots ??= new Set(rootCertificates);
  const pems = new Set(pemCertificates(bundle));
  const namesEveryRoot = [...roots].every((root) => pems.has(root));
  const context = namesEveryRoot ? createSecureContext() : undefined;
  const native = (context as { context?: Partial<CaAdder> } | undefined)?.context;
  if (!context || typeof native?.addCACert !== 'function') return createSecureContext({ ca: bundle });
  for (const pem of pems) if (!roots.has(pem)) native.addCACert(pem);
  return context;
}

/**
 * Has Node parse its root store now. It does so once per process, on the first TLS
 * context that trusts the system's roots, in one go: 25-35 ms (jitless). Called at
 * start-up, before the daemon has anything to serve, it is no longer a stall in the middle
 * of the first hub connect (Node does the same at start-up when NODE_EXTRA_CA_CERTS is set).
 */
export function loadRootStore(): void {
  createSecureContext();
}
