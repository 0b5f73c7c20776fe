/**
 * A hardening request the bridge could not carry out, with the HTTP-like status a cloud
 * command answers with: 400 for a request that names no profile, 500 for a unit that failed.
 */
export class HardeningRequestError extends Error {
  constructor(readonly status: 400 | 500, message: string) {
    super(message);
    this.name = 'HardeningRequestError';
  }
}
