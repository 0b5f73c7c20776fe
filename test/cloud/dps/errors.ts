import { parseSas, SasError, type SasToken } from '../sas.js';

/**
 * DPS's error replies: an HTTP status and a JSON body
 * `{"errorCode": <6 digits>, "trackingId", "message", "timestampUtc"}`.
 * 401002 is what DPS answers to any registration it will not authorise, and to a bad
 * service token; 404201 to a missing enrollment (both seen in DPS replies in the wild).
 * The others follow the same "status × 1000 + n" pattern as IoT Hub's codes.
 */
export class DpsError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export const unauthorized = (message: string) => new DpsError(401, 401002, message);

/** A SAS token from an Authorization header, or the 401 DPS gives for a malformed one. */
export function parseSasOrRefuse(authorization: string): SasToken {
  try {
    return parseSas(authorization);
  } catch (err) {
    if (err instanceof SasError) throw unauthorized(`malformed SAS token: ${err.message}`);
    throw err;
  }
}

export const badRequest = (message: string) => new DpsError(400, 400004, message);
export const notFound = (message: string) => new DpsError(404, 404201, message);
export const methodNotAllowed = (message: string) => new DpsError(405, 405001, message);
export const preconditionFailed = (message: string) => new DpsError(412, 412002, message);
export const payloadTooLarge = (message: string) => new DpsError(413, 413001, message);
export const unsupportedMediaType = (message: string) => new DpsError(415, 415001, message);
export const throttled = (retryAfterSeconds: number) =>
  new DpsError(429, 429001, 'The request was throttled: too many requests', { 'retry-after': String(retryAfterSeconds) });
export const unavailable = () => new DpsError(503, 503001, 'The service is unavailable; try again later');

export function errorBody(error: DpsError, trackingId: string): Record<string, unknown> {
  return { errorCode: error.errorCode, trackingId, message: error.message, timestampUtc: new Date().toISOString() };
}
