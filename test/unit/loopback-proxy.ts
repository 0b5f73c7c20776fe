import http from 'node:http';
import https from 'node:https';
import net from 'node:net';

/**
 * Servers for the tests of the agent's proxy tunnel and of `check` through it: a CONNECT proxy
 * and HTTPS or silent endpoints, all in this process on 127.0.0.1. A test file calls
 * `closeListeners` after each test.
 */
const closers: (() => void)[] = [];

export function closeListeners(): void {
  for (const close of closers.splice(0)) close();
}

/** Listens (by default on a free port of 127.0.0.1) until `closeListeners`, which also drops its connections. */
export async function listen(server: net.Server, port = 0, host = '127.0.0.1'): Promise<number> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => sockets.add(socket));
  closers.push(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return (server.address() as net.AddressInfo).port;
}

/** A port nothing listens on (it did a moment ago). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Resolves once the client has closed all its connections to the proxy (`connectProxy`'s `open`); fails after two seconds. */
export async function allClosed(open: Set<net.Socket>): Promise<void> {
  for (let waited = 0; open.size > 0; waited += 20) {
    if (waited > 2_000) throw new Error(`${open.size} connection(s) to the proxy still open`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface SeenRequest { method: string; path: string; userAgent: string | undefined; servername: string | false }

export interface HttpsServerOptions {
  /** The Date header to send (undefined: none); Node's own when not given. */
  date?: () => string | undefined;
  port?: number;
  host?: string;
}

/** An HTTPS server that answers every request 204 and records how it was asked. */
export async function httpsServer({ key, cert }: { key: string; cert: string }, options: HttpsServerOptions = {}): Promise<{ port: number; seen: SeenRequest[] }> {
  const seen: SeenRequest[] = [];
  // The certificate alone: a server that also sent its CA would be told apart by the client (SELF_SIGNED_CERT_IN_CHAIN).
  const server = https.createServer({ key, cert }, (request, response) => {
    seen.push({ method: request.method ?? '', path: request.url ?? '', userAgent: request.headers['user-agent'], servername: (request.socket as unknown as { servername: string | false }).servername });
    if (options.date) {
      response.sendDate = false;
      const date = options.date();
      if (date !== undefined) response.setHeader('date', date);
    }
    response.statusCode = 204;
    response.end();
  });
  return { port: await listen(server, options.port, options.host), seen };
}

/** What the proxy does with a CONNECT: a status (200 tunnels to the upstream), these bytes and the end, or nothing at all. */
export type ConnectAnswer = number | { reply: string } | 'silent';

/**
 * A CONNECT proxy that answers each CONNECT with the next of `answers` (the last one repeats)
 * and tunnels each 200 to `upstream` on 127.0.0.1, whatever target was asked. Records the
 * targets and headers of the CONNECTs, and keeps the client connections that the client has not closed.
 */
export async function connectProxy(upstream: number, ...answers: ConnectAnswer[]): Promise<{ url: string; asked: string[]; headers: http.IncomingHttpHeaders[]; open: Set<net.Socket> }> {
  const asked: string[] = [];
  const headers: http.IncomingHttpHeaders[] = [];
  const open = new Set<net.Socket>();
  const server = http.createServer();
  server.on('connect', (request: http.IncomingMessage, socket: net.Socket) => {
    asked.push(request.url ?? '');
    headers.push(request.headers);
    open.add(socket);
    // Until the client hangs up: this proxy does not pass a half-close on to the upstream.
    for (const event of ['end', 'close']) socket.on(event, () => open.delete(socket));
    socket.on('error', () => undefined);
    const answer = answers.length > 1 ? answers.shift()! : answers[0]!;
    if (answer === 'silent') return;
    if (typeof answer === 'object') {
      socket.end(answer.reply);
      return;
    }
    if (answer !== 200) {
      socket.end(`HTTP/1.1 ${answer} No\r\n\r\n`);
      return;
    }
    const tunnel = net.connect(upstream, '127.0.0.1', () => {
      socket.write('HTTP/1.1 200 Connection established\r\n\r\n');
      tunnel.pipe(socket).pipe(tunnel);
    });
    tunnel.on('error', () => socket.destroy());
    // Once the upstream is gone, the client's bytes go nowhere, but its end must still be seen.
    tunnel.on('close', () => socket.resume());
  });
  return { url: `http://127.0.0.1:${await listen(server)}`, asked, headers, open };
}
