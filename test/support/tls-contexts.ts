import tls from 'node:tls';

/**
 * Counts the TLS contexts Node builds while `work` runs: tls.connect calls
 * tls.createSecureContext through the module object for every connection not handed one.
 */
export async function tlsContextsBuilt(work: () => Promise<void>): Promise<number> {
  let count = 0;
  const original = tls.createSecureContext;
  tls.createSecureContext = (options) => {
    count++;
    return original(options);
  };
  try {
    await work();
  } finally {
    tls.createSecureContext = original;
  }
  return count;
}
