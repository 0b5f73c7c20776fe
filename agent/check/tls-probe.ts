import type { LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { connect, type DetailedPeerCertificate } from 'node:tls';

export interface TlsTarget {
  host: string;
  port: number;
  /** The addresses the DNS check found: the probe connects to them without a second lookup. */
  addresses: LookupAddress[];
  /** undefined: Node's default CAs. */
  ca: string[] | undefined;
  timeoutMs: number;
}

export type TlsOutcome =
  | { ok: true; address: string; protocol: string; subject: string; issuer: string; validTo: string }
  | { ok: false; code: string; detail: string; phase: 'tcp' | 'tls'; timedOut: boolean };

/**
 * One real TLS handshake that verifies the chain and the host name, as the agent's own
 * connections do. Never disables verification: a check that passes where the agent
 * would fail is worse than no check.
 */
export function probeTls(target: TlsTarget): Promise<TlsOutcome> {
  return new Promise((resolve) => {
    let phase: 'tcp' | 'tls' = 'tcp';
    const socket = connect({
      host: target.host,
      port: target.port,
      // SNI carries names only (RFC 6066); the certificate is checked against the host either way.
      servername: isIP(target.host) ? undefined : target.host,
      lookup: fixedLookup(target.addresses),
      ca: target.ca,
      minVersion: 'TLSv1.2', // IoT Hub and DPS refuse older versions
      rejectUnauthorized: true,
    });
    const finish = (outcome: TlsOutcome) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish({ ok: false, code: 'ETIMEDOUT', detail: '', phase, timedOut: true }), target.timeoutMs);
    socket.once('connect', () => { phase = 'tls'; });
    socket.once('secureConnect', () => {
      const cert = socket.getPeerCertificate(false) as DetailedPeerCertificate;
      finish({
        ok: true,
        address: `${socket.remoteAddress ?? '?'}:${target.port}`,
        protocol: socket.getProtocol() ?? 'TLS',
        subject: distinguishedName(cert.subject),
        issuer: distinguishedName(cert.issuer),
        validTo: cert.valid_to,
      });
    });
    // A connection that ends before the handshake completed is an error too (ECONNRESET): no 'close' comes without one.
    socket.once('error', (err: NodeJS.ErrnoException) =>
      finish({ ok: false, code: err.code ?? 'ERROR', detail: err.message, phase, timedOut: false }));
  });
}

/** Hands the DNS check's answer to the connection, in getaddrinfo's order. */
function fixedLookup(addresses: LookupAddress[]): LookupFunction {
  return ((_host: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (options.all) callback(null, addresses);
    else callback(null, addresses[0]?.address, addresses[0]?.family);
  }) as LookupFunction;
}

/** A certificate's subject or issuer as the check shows it: its common name, else its other attributes; "?" when empty. */
export function distinguishedName(certificateName: object): string {
  const name = certificateName as Record<string, string | string[]>;
  const cn = name.CN;
  if (cn !== undefined) return `CN=${Array.isArray(cn) ? cn.join('+') : cn}`;
  return Object.entries(name).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`).join(', ') || '?';
}
