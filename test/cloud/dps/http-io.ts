import type { IncomingMessage, ServerResponse } from 'node:http';
import { badRequest, payloadTooLarge, unsupportedMediaType } from './errors.js';

/** Request bodies larger than this are refused before they are read (DPS's TPM bodies are ~1 KiB). */
export const BODY_LIMIT = 64 * 1024;

/** Reads the whole body, refusing more than `limit` bytes (413) without buffering them. */
export async function readBody(req: IncomingMessage, limit = BODY_LIMIT): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    req.resume();
    throw payloadTooLarge(`request body of ${declared} bytes exceeds ${limit}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      req.resume();
      throw payloadTooLarge(`request body exceeds ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Parses a JSON request body: the content type must be JSON (415) and the text valid JSON (400). */
export async function readJson(req: IncomingMessage, limit = BODY_LIMIT): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    req.resume();
    throw unsupportedMediaType(`content type ${JSON.stringify(type)} is not application/json`);
  }
  const body = await readBody(req, limit);
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw badRequest('the request body is not valid JSON');
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** A plain JSON object (not an array, not null), or undefined. */
export function asObject(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}
