import https, { type Agent } from 'node:https';
import { isIP } from 'node:net';
import { sharedSecureContext } from '../lib/tls-context.js';

export interface ServiceDate {
  date: string | undefined;
  sentAt: number;
  receivedAt: number;
}

/**
 * One HTTPS HEAD request to `host:port` for its Date header: IoT Hub and DPS both answer
 * any path (with 401 or 404), and every answer carries the service's time. TLS is verified
 * as for the agent's own connections; `ca` (the system's roots and the extra CA) through the shared context. `agent`: the proxy's
 * tunnel (agent/network/proxy-agent.ts) when one applies to this host.
 */
export function fetchServiceDate(host: string, port: number, ca: string[] | undefined, timeoutMs: number, agent?: Agent): Promise<ServiceDate> {
  return new Promise((resolve, reject) => {
    const sentAt = Date.now();
    const request = https.request({
      host, port, method: 'HEAD', path: '/', ...(ca === undefined ? {} : { secureContext: sharedSecureContext(ca) }), servername: isIP(host) ? undefined : host, timeout: timeoutMs, agent: agent ?? false,
      headers: { 'user-agent': 'iot-agent' },
    }, (response) => {
      response.resume();
      const date = response.headers.date;
      request.destroy();
      resolve({ date, sentAt, receivedAt: Date.now() });
    });
    request.on('timeout', () => request.destroy(new Error(`no answer from ${host}:${port} within ${timeoutMs} ms`)));
    request.on('error', reject);
    request.end();
  });
}
