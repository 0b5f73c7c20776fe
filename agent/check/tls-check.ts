import { fail, pass, seconds, type CheckId, type CheckResult } from './result.js';
import type { TlsOutcome } from './tls-probe.js';

export interface TlsContext {
  id: CheckId;
  /** "DPS" or "hub", for the message. */
  role: string;
  host: string;
  port: number;
  extraCaFile: string | undefined;
  timeoutMs: number;
}

/** OpenSSL's verdicts that all mean: nothing we trust issued this chain. */
const UNKNOWN_CA = new Set([
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT',
]);

/** Words for a TLS probe's outcome: what happened, and what a technician can do about it. */
export function describeTls(context: TlsContext, outcome: TlsOutcome): CheckResult {
  const { id, role, host, port } = context;
  const where = `${role} ${host}:${port}`;
  if (outcome.ok) {
    // The address shows which of a name's addresses answered; for an IP literal it says nothing new.
    const via = outcome.address === `${host}:${port}` ? outcome.protocol : `${outcome.address}, ${outcome.protocol}`;
    return pass(id, `TLS handshake with ${where} (${via}): `
      + `certificate ${outcome.subject} issued by ${outcome.issuer}, valid until ${outcome.validTo}`);
  }
  const { code } = outcome;
  const firewall = `a firewall must let TCP port ${port} out`;
  if (outcome.timedOut) {
    return outcome.phase === 'tcp'
      ? fail(id, `${where}: no TCP connection within ${seconds(context.timeoutMs)} (packets dropped?)`,
        `check the network link; ${firewall}`)
      : fail(id, `${where}: TCP connected, but the TLS handshake did not finish within ${seconds(context.timeoutMs)}`,
        'something on the path accepts connections but does not speak TLS: a proxy, captive portal or another service on this port');
  }
  if (UNKNOWN_CA.has(code)) {
    const trusted = context.extraCaFile ? `the system CAs nor tls.extraCaFile (${context.extraCaFile})` : 'the system CAs';
    return fail(id, `${where}: certificate signed by an unknown CA (${code}): not trusted by ${trusted}`,
      context.extraCaFile
        ? 'is tls.extraCaFile the CA that issued this server\'s certificate? A TLS-inspecting proxy on the path also causes this'
        : 'is tls.extraCaFile set? A private CA (or a TLS-inspecting proxy\'s) must be listed there');
  }
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return fail(id, `${where}: the server's certificate has expired (${code})`, 'if the clock check fails, fix the clock first; otherwise the server must renew its certificate');
    case 'CERT_NOT_YET_VALID':
      return fail(id, `${where}: the server's certificate is not valid yet (${code})`, 'the device clock is probably behind: see the clock check and enable NTP');
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return fail(id, `${where}: the certificate is not for ${host} (${outcome.detail})`,
        'the configured name is wrong, or another server (a proxy?) answers at this address');
    case 'ECONNREFUSED':
      return fail(id, `${where}: connection refused: nothing listens there, or a firewall rejects it`, `the service is down, the name points elsewhere, or a firewall rejects the connection; ${firewall}`);
    case 'ECONNRESET':
    case 'EPIPE':
      return fail(id, `${where}: the connection was ${outcome.phase === 'tcp' ? 'reset' : 'closed during the TLS handshake'} (${code})`,
        `a firewall or proxy may block TLS on port ${port}`);
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return fail(id, `${where}: no route to the host (${code})`, 'check the network link, the default route and the interface address');
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'EPROTO':
      return fail(id, `${where}: the server does not speak TLS 1.2 or later (${code})`, 'another service answers on this port, or a proxy is in the way');
    default:
      return fail(id, `${where}: TLS handshake failed (${code}${outcome.detail ? `: ${outcome.detail}` : ''})`,
        code.startsWith('CERT_') || code.includes('CERT') ? 'the server certificate was rejected; check the clock and tls.extraCaFile' : firewall);
  }
}
