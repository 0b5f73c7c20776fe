/** A Node-style callback API (the Azure SDKs') as a promise. */
export function fromCallback<T = unknown>(call: (done: (err?: Error | null, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => call((err, value) => (err ? reject(err) : resolve(value as T))));
}
