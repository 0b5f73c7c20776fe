import type { IncomingMessage } from 'node:http';
import { errors } from './hub-error.js';

/** Reads a request body up to `limit` bytes; a longer one is refused (413) without reading it all. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > limit) {
      reject(errors.tooLarge(limit));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(errors.tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Parses a JSON body; an empty or broken one is IoT Hub's 400 IotHubFormatError. */
export function parseJsonBody(body: Buffer): unknown {
  if (body.length === 0) throw errors.badFormat('Request body is empty');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw errors.badFormat('Request body is not valid JSON');
  }
}
