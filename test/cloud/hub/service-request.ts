import https from 'node:https';
import { createSas } from '../sas.js';
import { servernameFor } from '../tls.js';

/**
 * A plain HTTPS call to the hub's service or admin API with a service SAS, for
 * callers that are not azure-iothub (the admin API, tests of malformed requests).
 */
export interface ServiceResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export function serviceRequest(target: { address: string; hostName: string; ca: string; serviceConnectionString: string; httpsPort?: number },
  method: string, path: string, body?: string | Buffer, options: { authorization?: string; headers?: Record<string, string> } = {}): Promise<ServiceResponse> {
  const fields = new Map(target.serviceConnectionString.split(';').map((part) => {
    const eq = part.indexOf('=');
    return [part.slice(0, eq), part.slice(eq + 1)] as [string, string];
  }));
  const authorization = options.authorization ?? createSas(Buffer.from(fields.get('SharedAccessKey') ?? '', 'base64'),
    target.hostName, Math.floor(Date.now() / 1000) + 600, fields.get('SharedAccessKeyName'));
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: target.address, port: target.httpsPort ?? 443, method, path, ca: target.ca, ...servernameFor(target.hostName),
      headers: { Authorization: authorization, 'Content-Type': 'application/json; charset=utf-8', ...options.headers },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
