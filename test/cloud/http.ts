import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestRefusals, SimHttpError } from './errors.js';

/**
 * What every HTTPS front of the local cloud (DPS, the hub's service and admin API, file
 * uploads) does alike: read a bounded request body, parse it as JSON, decode path segments,
 * answer JSON. Refusals are worded by the service that asks (errors.ts).
 */

/**
 * Reads the whole body, at most `limit` bytes. A longer one is refused (413) as soon as it is
 * known to be, from Content-Length or while it streams, without buffering the rest: the rest is
 * drained, so the client reads the answer instead of a reset.
 */
export function readBody(req: IncomingMessage, limit: number, refuse: RequestRefusals): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooLarge = () => {
      req.removeAllListeners('data');
      req.resume();
      reject(refuse.tooLarge(limit));
    };
    if (Number(req.headers['content-length'] ?? 0) > limit) {
      tooLarge();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        tooLarge();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Parses a request body as JSON; an empty or broken one is refused (400). */
export function parseJsonBody(body: Buffer, refuse: RequestRefusals): unknown {
  if (body.length === 0) throw refuse.malformed('Request body is empty');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw refuse.malformed('Request body is not valid JSON');
  }
}

export async function readJsonBody(req: IncomingMessage, limit: number, refuse: RequestRefusals): Promise<unknown> {
  return parseJsonBody(await readBody(req, limit, refuse), refuse);
}

/** A percent-encoded path segment, decoded; broken encoding is refused (400). */
export function decodeSegment(segment: string, refuse: RequestRefusals): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw refuse.malformed(`Path segment ${JSON.stringify(segment.slice(0, 40))} is not valid URL encoding`);
  }
}

export function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** A plain JSON object (not an array, not null), or undefined. */
export function asObject(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** The error in its service's shape, with its headers and the tracking id as `x-ms-request-id`. */
export function sendError(res: ServerResponse, error: SimHttpError, trackingId: string): void {
  sendJson(res, error.status, error.body(trackingId), { 'x-ms-request-id': trackingId, ...error.headers });
}
