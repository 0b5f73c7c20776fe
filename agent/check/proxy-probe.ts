import https from 'node:https';
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Proxy } from '../config/proxy-setting.js';
import { describeError } from '../lib/errors.js';
import { ProxyError, ProxyTunnel } from '../network/proxy-agent.js';
import { distinguishedName, type TlsOutcome } from './tls-probe.js';

/** What one probe through the proxy found: how the proxy took the CONNECT, then the TLS handshake inside the tunnel. */
export type TunnelOutcome =
  | { connect: 'accepted'; tls: TlsOutcome }
  | { connect: 'refused' | 'unreachable'; error: ProxyError }
  | { connect: 'timeout'; tls: TlsOutcome };

/**
 * One HTTPS HEAD request to `host:port` through the proxy (the agent's own tunnel, so the
 * same CONNECT the agent sends), verifying the server's chain and name as the agent does.
 * Any HTTP answer means the handshake inside the tunnel completed; the proxy's refusal of
 * the CONNECT (or no answer to it) is told apart from the endpoint's own failures.
 */
export function probeThroughProxy(proxy: Proxy, target: { host: string; port: number; ca: string[] | undefined; timeoutMs: number }): Promise<TunnelOutcome> {
  const tunnel = new ProxyTunnel(proxy);
  let tunnelled = false;
  tunnel.agent.on('proxyConnect', (connect: { statusCode: number }) => { tunnelled = connect.statusCode === 200; });
  return new Promise((resolve) => {
    const request = https.request({
      host: target.host, port: target.port, method: 'HEAD', path: '/', agent: tunnel.agent, ca: target.ca,
      servername: isIP(target.host) ? undefined : target.host, minVersion: 'TLSv1.2', rejectUnauthorized: true,
      headers: { 'user-agent': 'iot-agent check' },
    });
    // Once settled, again changes nothing: the first outcome stays.
    const finish = (outcome: TunnelOutcome) => {
      clearTimeout(timer);
      request.destroy();
      tunnel.close();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish({ connect: 'timeout', tls: { ok: false, code: 'ETIMEDOUT', detail: '', phase: tunnelled ? 'tls' : 'tcp', timedOut: true } }),
      target.timeoutMs);
    request.once('response', (response) => {
      response.resume();
      const refused = tunnel.refusal();
      if (refused) return finish({ connect: 'refused', error: refused });
      const socket = response.socket as TLSSocket;
      const cert = socket.getPeerCertificate();
      finish({
        connect: 'accepted',
        tls: {
          ok: true, address: `${proxy.display} → ${target.host}:${target.port}`, protocol: socket.getProtocol() ?? 'TLS',
          subject: distinguishedName(cert.subject), issuer: distinguishedName(cert.issuer), validTo: cert.valid_to,
        },
      });
    });
    request.once('error', (err: NodeJS.ErrnoException) => {
      const refused = tunnel.refusal();
      if (refused) return finish({ connect: 'refused', error: refused });
      if (!tunnelled) {
        // Before the proxy's 200 nothing has reached the endpoint: whatever went wrong is the proxy's.
        const unreachable = tunnel.explain(err);
        if (unreachable) return finish({ connect: 'unreachable', error: unreachable });
        return finish({ connect: 'refused', error: new ProxyError(
          `the proxy ${proxy.display} (${proxy.source}) did not answer the CONNECT to ${target.host}:${target.port}: ${describeError(err)}`, undefined,
          { cause: err, hint: 'the proxy closed the connection or answered with something other than HTTP: see the proxy\'s log' }) });
      }
      finish({ connect: 'accepted', tls: { ok: false, code: err.code ?? 'ERROR', detail: err.message, phase: 'tls', timedOut: false } });
    });
    request.end();
  });
}
