import { mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls, { rootCertificates, type PeerCertificate } from 'node:tls';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parseProxyUrl } from '../../agent/config/proxy-setting.js';
import { sharedSecureContext } from '../../agent/lib/tls-context.js';
import { ProxyError, ProxyTunnel, proxyRefusal } from '../../agent/network/proxy-agent.js';
import { IDENTITY_KEY_SLOTS } from '../../agent/tpm/key-slots.js';
import { TPM_HANDLE } from '../../agent/tpm/tss-lib.js';
import { TpmUnavailableError } from '../../agent/tpm/transport.js';
import { ensureServerCredentials, type ServerCredentials } from '../cloud/tls.js';
import { clientFor } from '../support/tpm.js';
import { allClosed, closedPort, closeListeners, connectProxy, httpsServer, listen } from './loopback-proxy.js';

/**
 * The agent's CONNECT tunnel against a real proxy and a real HTTPS server, both this process on
 * loopback. The server's certificate names the address 127.0.0.1 only (no "localhost"), which
 * is what a target given by address needs: the tunnel must check the certificate against the
 * address it was asked for.
 */
let dir: string | undefined;
let made: Promise<ServerCredentials> | undefined;
const credentials = () => (made ??= ensureServerCredentials(dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-proxy-agent-')), ['127.0.0.1']));
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

afterEach(closeListeners);

/** The HTTPS server with the 127.0.0.1 certificate. */
const server = async () => (await httpsServer(await credentials())).port;

type Outcome = { status: number; context?: unknown } | { code: string; message: string };

/**
 * One HTTPS GET through the tunnel; the status of the answer and the TLS context the
 * connection used (Node keeps it on the socket's native wrap), or the error's code.
 */
function get(tunnel: ProxyTunnel, options: https.RequestOptions & { secureContext?: tls.SecureContext }): Promise<Outcome> {
  return new Promise((resolve) => {
    const request = https.request({ port: 443, path: '/', agent: tunnel.agent, ...options }, (response) => {
      response.resume();
      const context = (response.socket as unknown as { ssl?: { _secureContext?: unknown } }).ssl?._secureContext;
      resolve({ status: response.statusCode ?? 0, context });
    });
    request.on('error', (err: NodeJS.ErrnoException) => resolve({ code: err.code ?? 'ERROR', message: err.message }));
    request.end();
  });
}

const tunnelTo = (url: string) => new ProxyTunnel(parseProxyUrl(url, 'network.proxy'));

describe('the proxy tunnel: TLS inside it, verified against the target', () => {
  it('reaches a target given by address whose certificate names that address, not "localhost"', async () => {
    const { ca } = await credentials();
    const { url, asked } = await connectProxy(await server(), 200);
    expect(await get(tunnelTo(url), { host: '127.0.0.1', port: 8443, ca: [ca] })).toMatchObject({ status: 204 });
    expect(asked).toEqual(['127.0.0.1:8443']);
  });

  it('refuses a certificate that does not name the address asked for, though the CA is trusted', async () => {
    const { ca } = await credentials();
    const { url } = await connectProxy(await server(), 200);
    const outcome = await get(tunnelTo(url), { host: '127.0.0.2', ca: [ca] });
    expect(outcome).toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    expect('message' in outcome && outcome.message).toContain('127.0.0.2');
  });

  it('refuses a server whose CA is not trusted', async () => {
    const { url } = await connectProxy(await server(), 200);
    expect(await get(tunnelTo(url), { host: '127.0.0.1', ca: [...rootCertificates] })).toMatchObject({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
  });

  it('connects with the one shared TLS context for CAs given as PEM text, one or a list, and leaves other forms to Node', async () => {
    const { ca } = await credentials();
    const { url } = await connectProxy(await server(), 200);
    const tunnel = tunnelTo(url);
    const contextOf = (outcome: Outcome) => ('context' in outcome ? outcome.context : undefined);
    // A context per connection costs about 1 MB of native memory that glibc keeps (lib/tls-context.ts).
    const shared = sharedSecureContext(ca);
    expect(contextOf(await get(tunnel, { host: '127.0.0.1', ca }))).toBe(shared);
    expect(contextOf(await get(tunnel, { host: '127.0.0.1', ca: [ca] }))).toBe(shared);
    for (const other of [Buffer.from(ca), [Buffer.from(ca)], [ca, Buffer.from(ca)]]) {
      const outcome = await get(tunnel, { host: '127.0.0.1', ca: other });
      expect(outcome).toMatchObject({ status: 204 });
      expect(contextOf(outcome)).not.toBe(shared);
      // No shared context was made for these CAs either: the one for `ca` is still the cached one.
      expect(sharedSecureContext(ca)).toBe(shared);
    }
  });

  it('asks the proxy for one tunnel per connection, closed with it', async () => {
    const { ca } = await credentials();
    const { url, headers, open } = await connectProxy(await server(), 200);
    expect(await get(tunnelTo(url), { host: '127.0.0.1', ca: [ca] })).toMatchObject({ status: 204 });
    expect(headers.map((h) => h['proxy-connection'])).toEqual(['close']);
    await allClosed(open);
  });

  it('keeps a caller\'s own identity check and TLS context', async () => {
    const { ca } = await credentials();
    const { url } = await connectProxy(await server(), 200);
    const tunnel = tunnelTo(url);
    const checked: string[] = [];
    const own = (name: string, cert: PeerCertificate) => { checked.push(`${name} ${String(cert.subject.CN)}`); return undefined; };
    // The caller accepts any name: its check, not the tunnel's, decides.
    expect(await get(tunnel, { host: '127.0.0.2', ca: [ca], checkServerIdentity: own })).toMatchObject({ status: 204 });
    expect(checked).toHaveLength(1);
    expect(checked[0]).toMatch(/ 127\.0\.0\.1$/);
    // A context that trusts the test CA wins over a `ca` that does not.
    const secureContext = tls.createSecureContext({ ca });
    const outcome = await get(tunnel, { host: '127.0.0.1', ca: [...rootCertificates], secureContext });
    expect(outcome).toMatchObject({ status: 204 });
    expect('context' in outcome && outcome.context).toBe(secureContext);
  });

  it('checks a target given by name against that name', async () => {
    const { ca } = await credentials();
    const { url } = await connectProxy(await server(), 200);
    expect(await get(tunnelTo(url), { host: 'localhost', ca: [ca] })).toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });
});

describe('the proxy tunnel: how the proxy answered', () => {
  it('remembers a refused CONNECT with its status and target, and forgets it after a CONNECT the proxy took', async () => {
    const { ca } = await credentials();
    const { url } = await connectProxy(await server(), 403, 200);
    const tunnel = tunnelTo(url);
    expect(tunnel.refusal()).toBeUndefined();
    expect(await get(tunnel, { host: '127.0.0.1', port: 8443, ca: [ca] })).toMatchObject({ status: 403 });
    expect(tunnel.lastRefusal).toEqual({ statusCode: 403, target: '127.0.0.1:8443' });
    const refused = tunnel.refusal();
    expect(refused).toBeInstanceOf(ProxyError);
    expect(refused).toMatchObject({ statusCode: 403, message: `the proxy ${url} (network.proxy) does not allow a tunnel to 127.0.0.1:8443 (403)` });
    expect(tunnel.explain(new Error('socket hang up'))).toEqual(refused);
    expect(await get(tunnel, { host: '127.0.0.1', ca: [ca] })).toMatchObject({ status: 204 });
    expect(tunnel.lastRefusal).toBeUndefined();
    expect(tunnel.refusal()).toBeUndefined();
  });

  it('names the target by the request\'s host when the request sends no Host header', async () => {
    const { url } = await connectProxy(0, 502);
    const tunnel = tunnelTo(url);
    await get(tunnel, { host: '127.0.0.1', setHost: false });
    expect(tunnel.lastRefusal).toEqual({ statusCode: 502, target: '127.0.0.1' });
    expect(tunnel.refusal()?.message).toBe(`the proxy ${url} (network.proxy) could not open a tunnel to 127.0.0.1 (502)`);
  });

  it('names an answer to the CONNECT that is not HTTP as such, not as a status', async () => {
    const { url } = await connectProxy(0, { reply: 'SSH-2.0-OpenSSH_9.2\r\n\r\n' });
    const tunnel = tunnelTo(url);
    await get(tunnel, { host: '127.0.0.1' });
    expect(tunnel.refusal()).toEqual(new ProxyError(`the proxy ${url} (network.proxy) answered the CONNECT to 127.0.0.1 with something other than HTTP`, undefined, {
      hint: 'is an HTTP proxy listening there? Check the proxy\'s host and port',
    }));
    expect(proxyRefusal(parseProxyUrl(url, 'x'), 200.5, 'hub.example').message).toContain('with something other than HTTP');
  });

  it('names a proxy nobody listens on as unreachable, with the connection\'s error as the cause', async () => {
    const port = await closedPort();
    const tunnel = tunnelTo(`http://127.0.0.1:${port}`);
    const outcome = await get(tunnel, { host: '127.0.0.1' });
    expect(outcome).toMatchObject({ code: 'ECONNREFUSED' });
    const err = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const explained = tunnel.explain(err);
    expect(explained).toBeInstanceOf(ProxyError);
    expect(explained).toMatchObject({
      message: `the proxy http://127.0.0.1:${port} (network.proxy) could not be reached (ECONNREFUSED)`, statusCode: undefined,
      hint: 'check the proxy\'s host and port, and that a firewall lets the board reach it',
    });
    expect(explained?.cause).toBe(err);
  });
});

describe('the proxy tunnel: a proxy that takes the connection and never answers the CONNECT', () => {
  /** A request through the tunnel to 127.0.0.1, once the proxy has its CONNECT. */
  async function waiting(options: https.RequestOptions = {}) {
    const { url, asked, open } = await connectProxy(0, 'silent');
    const tunnel = tunnelTo(url);
    const request = https.request({ host: '127.0.0.1', port: 443, agent: tunnel.agent, ...options });
    const failed = new Promise<Error>((resolve) => request.on('error', resolve));
    request.end();
    while (asked.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    return { url, open, tunnel, request, failed };
  }

  it('gives up when the request\'s timeout passes, naming the proxy, and closes the connection to it', async () => {
    const t0 = performance.now();
    const { url, open, tunnel, failed } = await waiting({ timeout: 200 });
    const err = await failed;
    expect(err).toBeInstanceOf(ProxyError);
    expect(err).toMatchObject({
      message: `the proxy ${url} did not answer the CONNECT to 127.0.0.1:443 within 200 ms`, statusCode: undefined,
      hint: 'the proxy took the connection but did not answer: see the proxy\'s log',
    });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(190);
    await allClosed(open);
    // However an SDK wraps it, the tunnel names the proxy's silence as the cause.
    expect(tunnel.explain(new Error('open failed', { cause: err }))).toBe(err);
    expect(tunnel.explain({ innerError: err })).toBe(err);
  });

  it('closes the connection to the proxy when the request is aborted (as ws aborts a handshake)', async () => {
    const { open, request, failed } = await waiting();
    // What ws does when it gives up on a handshake (mqtt.js's connect timeout, through the hub's WebSocket).
    request.abort();
    await allClosed(open);
    expect(await failed).toMatchObject({ code: 'ABORT_ERR' });
  });

  it('leaves the connection of a destroyed request to the proxy until the tunnel is closed', async () => {
    const { open, tunnel, request } = await waiting();
    request.destroy();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(open.size).toBe(1);
    tunnel.close();
    await allClosed(open);
  });

  it('opens the next tunnel as usual after a CONNECT it gave up on', async () => {
    const { ca } = await credentials();
    const { url } = await connectProxy(await server(), 'silent', 200);
    const tunnel = tunnelTo(url);
    expect(await get(tunnel, { host: '127.0.0.1', timeout: 200 })).toMatchObject({ message: `the proxy ${url} did not answer the CONNECT to 127.0.0.1:443 within 200 ms` });
    expect(await get(tunnel, { host: '127.0.0.1', ca: [ca] })).toMatchObject({ status: 204 });
  });

  it('leaves a tunnel the proxy opened alone: neither the request\'s timeout nor closing the tunnel cuts it', async () => {
    const { key, cert, ca } = await credentials();
    const slow = https.createServer({ key, cert }, (_request, response) => setTimeout(() => response.end(), 400));
    const { url } = await connectProxy(await listen(slow), 200);
    const tunnel = tunnelTo(url);
    // Answers after the request's timeout; the tunnel (its CONNECTs still waiting) is closed while the server takes its time.
    slow.once('request', () => tunnel.close());
    expect(await get(tunnel, { host: '127.0.0.1', ca: [ca], timeout: 200 })).toMatchObject({ status: 200 });
  });
});

describe('the proxy tunnel: which errors are the proxy\'s', () => {
  const tunnel = () => tunnelTo('http://u:Secret1@proxy.example:3128');
  const coded = (code: unknown, extra: Record<string, unknown> = {}) => Object.assign(new Error('x'), { code }, extra);

  it.each(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH'])('takes %s as no connection to the proxy', (code) => {
    expect(tunnel().explain(coded(code))?.message).toBe(`the proxy http://***@proxy.example:3128 (network.proxy) could not be reached (${code})`);
  });

  it('leaves errors of the endpoint behind the proxy alone', () => {
    for (const code of ['ECONNRESET', 'EPIPE', 'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID']) expect(tunnel().explain(coded(code))).toBeUndefined();
    expect(tunnel().explain(new Error('socket hang up'))).toBeUndefined();
    expect(tunnel().explain(undefined)).toBeUndefined();
  });

  it('finds the code in the errors an SDK wraps around the connection\'s, up to five deep', () => {
    const inner = coded('ENOTFOUND');
    expect(tunnel().explain(new Error('outer', { cause: inner }))?.message).toContain('could not be reached (ENOTFOUND)');
    expect(tunnel().explain({ innerError: inner })?.message).toContain('(ENOTFOUND)');
    expect(tunnel().explain({ cause: { cause: { cause: { cause: inner } } } })?.message).toContain('(ENOTFOUND)');
    // The first code found decides, even when it is not the proxy's.
    expect(tunnel().explain(coded('ECONNRESET', { cause: inner }))).toBeUndefined();
    // A code that is not a string is no code: the search goes on below it.
    expect(tunnel().explain(coded(-111, { cause: inner }))?.message).toContain('(ENOTFOUND)');
  });

  it('never blames the proxy for the TPM, whose refused socket carries the same code', async () => {
    const tpm = clientFor(`swtpm:host=127.0.0.1,port=${await closedPort()}`);
    const tpmFailure = await tpm.readPublic(new TPM_HANDLE(IDENTITY_KEY_SLOTS[0])).then(() => undefined, (err: unknown) => err);
    await tpm.close();
    expect(tpmFailure).toBeInstanceOf(TpmUnavailableError);
    expect((tpmFailure as Error).cause).toMatchObject({ code: 'ECONNREFUSED' });
    // As the hub client hands it over after signing a token failed: bare, or wrapped by the SDK.
    expect(tunnel().explain(tpmFailure)).toBeUndefined();
    expect(tunnel().explain(new Error('open failed', { cause: tpmFailure }))).toBeUndefined();
    expect(tunnel().explain({ innerError: tpmFailure })).toBeUndefined();
    const sdkTpmFailure = Object.assign(new Error('Could not get TPM capabilities'), { name: 'SecurityDeviceError', cause: coded('ECONNREFUSED') });
    expect(tunnel().explain(sdkTpmFailure)).toBeUndefined();
    // The same code from the proxy's own socket is still the proxy's.
    expect(tunnel().explain(new Error('open failed', { cause: coded('ECONNREFUSED') }))?.message).toContain('could not be reached (ECONNREFUSED)');
  });

  it('stops looking below five levels, and then reads the code from the words', () => {
    const deep = { cause: { cause: { cause: { cause: { cause: coded('ECONNREFUSED') } } } } };
    expect(tunnel().explain(deep)).toBeUndefined();
    expect(tunnel().explain(new Error('getaddrinfo EAI_AGAIN proxy.example'))?.message).toContain('could not be reached (EAI_AGAIN)');
    expect(tunnel().explain(new Error('failed: xEAI_AGAIN'))).toBeUndefined();
    expect(tunnel().explain(new Error('failed: EAI'))).toBeUndefined();
  });

  it('says what to do about each refusal', () => {
    const hint = (url: string, status: number) => proxyRefusal(parseProxyUrl(url, 'https_proxy'), status, 'hub.example').hint;
    const credentials = 'put the proxy\'s user name and password in https_proxy as http://user:password@host:port (percent-encoded)';
    expect(hint('http://proxy.example:3128', 407)).toBe(credentials);
    expect(hint('http://u:p@proxy.example:3128', 401)).toBe(credentials);
    expect(hint('http://proxy.example:3128', 403)).toBe('the proxy must allow CONNECT to port 443 of DPS and of the hub; or list the host in network.noProxy');
    expect(hint('http://proxy.example:3128', 502)).toBe('the proxy could not reach the endpoint, or refused it: see the proxy\'s log');
  });

  it('is a ProxyError by name, with the proxy\'s status code when it answered', () => {
    const err = new ProxyError('m', 407, { hint: 'h' });
    expect([err.name, err.statusCode, err.hint, ProxyError.errorName]).toEqual(['ProxyError', 407, 'h', 'ProxyError']);
  });
});
