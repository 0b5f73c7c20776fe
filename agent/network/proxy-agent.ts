import type { ClientRequest } from 'node:http';
import { isIP, type Socket } from 'node:net';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { AgentError, describeError } from '../lib/errors.js';
import { sharedSecureContext } from '../lib/tls-context.js';
import type { Proxy } from '../config/proxy-setting.js';

/**
 * The agent's HTTP CONNECT tunnels, through https-proxy-agent (the proxy-agents project,
 * also what Azure's own HTTP pipeline uses): one `https.Agent` per proxy for DPS, the hub
 * over WebSockets, the Date probes and file upload. TLS inside the tunnel is the agent's
 * own, verified end to end against its trust store. The agent remembers how the proxy
 * answered the last CONNECT, so that a refusal is named (407: credentials) instead of
 * surfacing as whatever the SDK makes of the proxy's error page.
 */
export class ProxyTunnel {
  readonly agent: VerifyingProxyAgent;
  /** The proxy's answer to the last CONNECT that was not 200, cleared by a 200. */
  lastRefusal: { statusCode: number; target: string } | undefined;

  constructor(readonly proxy: Proxy) {
    // keepAlive off: each SDK connection is its own tunnel, closed with it.
    this.agent = new VerifyingProxyAgent(proxy.url, { keepAlive: false });
    this.agent.on('proxyConnect', (connect: { statusCode: number }, req: { host?: string; getHeader?(name: string): number | string | string[] | undefined }) => {
      if (connect.statusCode === 200) this.lastRefusal = undefined;
      else this.lastRefusal = { statusCode: connect.statusCode, target: String(req.getHeader?.('host') ?? req.host ?? '?') };
    });
  }

  /** The proxy's refusal as an error, when the last CONNECT was refused; undefined otherwise. */
  refusal(): ProxyError | undefined {
    return this.lastRefusal && proxyRefusal(this.proxy, this.lastRefusal.statusCode, this.lastRefusal.target);
  }

  /**
   * What went wrong below the hub or DPS, in the proxy's terms when the proxy is why: its
   * refusal of the CONNECT, its silence after taking the connection, or no connection to the
   * proxy itself. undefined otherwise.
   */
  explain(err: unknown): ProxyError | undefined {
    const refused = this.refusal();
    if (refused) return refused;
    const chain = causes(err);
    const silent = chain.find((e) => e instanceof ProxyError);
    if (silent) return silent;
    // A failure the agent or the SDK's TPM client raised (the TPM's, while signing a token) is
    // not the proxy's, whatever code its cause carries: a swtpm socket refused is ECONNREFUSED too.
    if (chain.some(isOwnFailure)) return undefined;
    const code = codeOf(err);
    if (code && PROXY_UNREACHABLE.has(code)) {
      return new ProxyError(`the proxy ${this.proxy.display} (${this.proxy.source}) could not be reached (${code})`, undefined,
        { cause: err, hint: 'check the proxy\'s host and port, and that a firewall lets the board reach it' });
    }
    return undefined;
  }

  /**
   * Closes the connections to the proxy still waiting for its answer to a CONNECT: a request
   * given up before the proxy answered has no socket yet, so destroying it closes none of them.
   */
  close(): void {
    this.agent.abandonPending();
  }
}

/**
 * https-proxy-agent (7.0.6) starts TLS inside the tunnel without the target's host (only a
 * servername, which SNI allows for names alone): for a target given by address, Node then
 * checks the certificate against "localhost" and refuses a valid one. The check is put
 * back against the real target here; nothing is relaxed. The CAs a request names (`ca`)
 * become the one shared TLS context (lib/tls-context.ts) instead of a context per tunnel.
 */
class VerifyingProxyAgent extends HttpsProxyAgent<string> {
  /** One for each connection to the proxy that waits for its answer to the CONNECT. */
  private readonly pending = new Set<AbortController>();

  abandonPending(): void {
    for (const waiting of this.pending) waiting.abort();
  }

  override async connect(req: ClientRequest, opts: Parameters<HttpsProxyAgent<string>['connect']>[1]): Promise<Socket> {
    const host = opts.host;
    const verified = opts.secureEndpoint && host && isIP(host) !== 0 && !('checkServerIdentity' in opts)
      ? { ...opts, checkServerIdentity: (_name: string, cert: PeerCertificate) => checkServerIdentity(host, cert) } as typeof opts
      : opts;
    const ca = (verified as { ca?: unknown }).ca;
    const shared = opts.secureEndpoint && !('secureContext' in opts) && (typeof ca === 'string' || (Array.isArray(ca) && ca.every((c) => typeof c === 'string')))
      ? { ...verified, secureContext: sharedSecureContext(ca) } as typeof opts
      : verified;
    return this.untilAnswered(req, opts, () => super.connect(req, shared));
  }

  /**
   * https-proxy-agent waits for the proxy's answer to the CONNECT for as long as the proxy keeps
   * the connection open: neither the request's timeout (Node arms it on the socket, which the
   * request does not have yet) nor its abort reach that connection. It opens the connection
   * from `connectOpts` before it awaits anything, so a signal of this connection's own put
   * there closes it when the request is aborted, its timeout passes, or the tunnel is closed.
   */
  private async untilAnswered(req: ClientRequest, opts: { host?: string | null; port?: number | null; timeout?: number }, connect: () => Promise<Socket>): Promise<Socket> {
    const waiting = new AbortController();
    // Each connection puts its own signal there before the proxy's connection is opened.
    this.connectOpts = { ...this.connectOpts, signal: waiting.signal };
    const connecting = connect();
    this.pending.add(waiting);
    const abort = () => waiting.abort();
    req.once('abort', abort);
    let timedOut: ProxyError | undefined;
    const timer = opts.timeout === undefined ? undefined : setTimeout(() => {
      timedOut = new ProxyError(`the proxy ${this.proxy.origin} did not answer the CONNECT to ${opts.host}:${opts.port} within ${opts.timeout} ms`, undefined,
        { hint: 'the proxy took the connection but did not answer: see the proxy\'s log' });
      waiting.abort();
    }, opts.timeout);
    try {
      return await connecting;
    } catch (err) {
      throw timedOut ?? err;
    } finally {
      clearTimeout(timer);
      req.off('abort', abort);
      this.pending.delete(waiting);
    }
  }
}

export class ProxyError extends AgentError {
  static override readonly errorName: string = 'ProxyError';

  constructor(message: string, readonly statusCode: number | undefined, options: { cause?: unknown; hint?: string } = {}) {
    super(message, options);
  }
}

/** Errors of a connection to the proxy itself: every TCP connection goes there first. */
const PROXY_UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * The proxy's answer to a CONNECT in words (an answer without a status is not HTTP). 407 is
 * the proxy asking for (other) credentials; some proxies answer 401 instead (tinyproxy before
 * 1.11.2, tinyproxy issue #532): a 401 to a CONNECT can only come from the proxy, so it means
 * the same.
 */
export function proxyRefusal(proxy: Proxy, statusCode: number, target: string): ProxyError {
  const where = `the proxy ${proxy.display} (${proxy.source})`;
  // https-proxy-agent reads the status from the answer's first line: anything but HTTP gives NaN.
  if (!Number.isInteger(statusCode)) {
    return new ProxyError(`${where} answered the CONNECT to ${target} with something other than HTTP`, undefined, {
      hint: 'is an HTTP proxy listening there? Check the proxy\'s host and port',
    });
  }
  if (statusCode === 407 || statusCode === 401) {
    const words = proxy.username === undefined ? 'requires credentials' : 'refused the credentials: wrong user name or password';
    return new ProxyError(`${where} ${words} (${statusCode})`, statusCode, {
      hint: `put the proxy's user name and password in ${proxy.source} as http://user:password@host:port (percent-encoded)`,
    });
  }
  if (statusCode === 403) {
    return new ProxyError(`${where} does not allow a tunnel to ${target} (403)`, statusCode, {
      hint: 'the proxy must allow CONNECT to port 443 of DPS and of the hub; or list the host in network.noProxy',
    });
  }
  return new ProxyError(`${where} could not open a tunnel to ${target} (${statusCode})`, statusCode, {
    hint: 'the proxy could not reach the endpoint, or refused it: see the proxy\'s log',
  });
}

/** The error and those it wraps (`cause`, or the Azure SDKs' `innerError`), five at the most. */
function causes(err: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let e: unknown = err; e && chain.length < 5; e = (e as { cause?: unknown }).cause ?? (e as { innerError?: unknown }).innerError) chain.push(e);
  return chain;
}

function isOwnFailure(err: unknown): boolean {
  return err instanceof AgentError || (err instanceof Error && err.name === 'SecurityDeviceError');
}

function codeOf(err: unknown): string | undefined {
  const code = causes(err).map((e) => (e as { code?: unknown }).code).find((c) => typeof c === 'string');
  return typeof code === 'string' ? code : /\b(E[A-Z_]{4,})\b/.exec(describeError(err))?.[1];
}
