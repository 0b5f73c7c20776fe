import { AgentError, ExitCode } from '../agent/lib/errors.js';
import { retryUntilDeadline, type DeadlineLoop } from '../agent/lib/deadline.js';
import type { CommandRunner } from '../agent/lib/exec.js';
import { isHostName } from '../agent/lib/host-name.js';

/** A hub or DPS endpoint that must stay reachable after a remote change. */
export interface HostPort {
  host: string;
  port: number;
}

export interface ProbeResult {
  target: string;
  ok: boolean;
  /** Why it failed, or the TLS protocol when it succeeded. */
  detail: string;
}

export function parseHostPort(text: string): HostPort {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s/]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 1 && port <= 65535) || !isHostName(m[1] ?? m[2]!)) {
    throw new AgentError(`invalid host:port ${JSON.stringify(text)}`, {
      hint: 'give the hub or DPS endpoint as host:port, e.g. myhub.azure-devices.net:8883 or [fd00::1]:443', exitCode: ExitCode.usage,
    });
  }
  return { host: m[1] ?? m[2]!, port };
}

export const formatHostPort = (t: HostPort) => (t.host.includes(':') ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`);

/**
 * The HTTPS proxy the agent reaches its endpoints through (network.proxy in the config,
 * as root reads it): the probes take the same path. `direct` names the targets that go
 * around it (network.noProxy).
 */
export interface ProbeProxy {
  host: string;
  port: number;
  /** `Basic …` for Proxy-Authorization; handed to the probe on its standard input, never in argv. */
  authorization?: string;
  direct(target: HostPort): boolean;
}

// Run by the same node binary, through the engine's runner, so the handshake happens in
// the network namespace the rules were applied to. Reachability is proven by a completed
// TLS handshake (inside a CONNECT tunnel when a proxy is given on stdin; the proxy itself
// by a TCP connection); the certificate is checked by the hub session, not here.
const PROBE_SCRIPT = `
const tls = require('node:tls');
const net = require('node:net');
const [host, port, ms] = process.argv.slice(1);
let input = '';
process.stdin.on('data', (d) => { input += d; });
process.stdin.on('end', () => {
  const via = input ? JSON.parse(input) : null;
  let s;
  const done = (ok, detail) => { process.stdout.write(JSON.stringify({ ok, detail })); if (s) s.destroy(); process.exit(0); };
  setTimeout(() => done(false, 'no ' + (via && via.tcpOnly ? 'TCP connection' : 'TLS handshake') + ' within ' + ms + ' ms'), Number(ms));
  const handshake = (socket) => {
    s = tls.connect({ socket, host, port: Number(port), servername: net.isIP(host) ? undefined : host, rejectUnauthorized: false });
    s.once('secureConnect', () => done(true, 'TLS handshake completed (' + s.getProtocol() + ')' + (via ? ' through the proxy' : '')));
    s.once('error', (e) => done(false, e.code || e.message));
  };
  if (!via) return handshake(undefined);
  const c = net.connect({ host: via.host, port: via.port });
  s = c;
  c.once('error', (e) => done(false, 'proxy ' + via.host + ':' + via.port + ': ' + (e.code || e.message)));
  if (via.tcpOnly) return c.once('connect', () => done(true, 'TCP connection to the proxy'));
  const target = (net.isIPv6(host) ? '[' + host + ']' : host) + ':' + port;
  c.once('connect', () => c.write('CONNECT ' + target + ' HTTP/1.1\\r\\nHost: ' + target + '\\r\\n'
    + (via.authorization ? 'Proxy-Authorization: ' + via.authorization + '\\r\\n' : '') + '\\r\\n'));
  let head = Buffer.alloc(0);
  const onData = (chunk) => {
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\\r\\n\\r\\n');
    if (end === -1) return;
    c.off('data', onData);
    const status = Number(/^HTTP\\/1\\.[01] (\\d{3})/.exec(head.toString('latin1'))?.[1]);
    if (status !== 200) return done(false, 'the proxy answered the CONNECT with ' + (status || 'no HTTP status'));
    handshake(c);
  };
  c.on('data', onData);
});
`;

/** Tries one TLS handshake with each target, in parallel, through `proxy` where it applies. */
export async function probeTargets(runner: CommandRunner, targets: readonly HostPort[], timeoutMs: number, proxy?: ProbeProxy): Promise<ProbeResult[]> {
  return Promise.all(targets.map(async (t) => {
    const target = formatHostPort(t);
    const isProxy = proxy !== undefined && proxy.host.toLowerCase() === t.host.toLowerCase() && proxy.port === t.port;
    const via = proxy && (isProxy || !proxy.direct(t))
      ? JSON.stringify({ host: proxy.host, port: proxy.port, authorization: proxy.authorization, tcpOnly: isProxy }) : '';
    try {
      const { stdout } = await runner.run([process.execPath, '-e', PROBE_SCRIPT, t.host, String(t.port), String(Math.max(100, timeoutMs))],
        { timeoutMs: timeoutMs + 5_000, input: via });
      const parsed = JSON.parse(stdout) as { ok: boolean; detail: string };
      return { target, ok: parsed.ok, detail: parsed.detail };
    } catch (err) {
      return { target, ok: false, detail: err instanceof Error ? err.message : String(err) };
    }
  }));
}

export type Probe = (targets: readonly HostPort[], timeoutMs: number) => Promise<ProbeResult[]>;

export interface ProbeLoop extends DeadlineLoop {
  probe: Probe;
  targets: readonly HostPort[];
}

const PROBE_TIMEOUT_MS = 3_000;

/**
 * The one probe loop (the confirm step of a transaction and the boot guard): every target
 * probed at once, again every interval until all answer or the deadline passes.
 */
export async function probeUntilReachable(loop: ProbeLoop): Promise<{ ok: boolean; probes: ProbeResult[]; rounds: number }> {
  const { done, value, rounds } = await retryUntilDeadline(loop, async (msLeft) => {
    const probes = await loop.probe(loop.targets, Math.min(PROBE_TIMEOUT_MS, Math.max(msLeft, 200)));
    return { done: probes.every((p) => p.ok), value: probes };
  });
  return { ok: done, probes: value, rounds };
}

/** `host:port: why` for each target that did not answer. */
export function describeFailures(probes: readonly ProbeResult[]): string {
  return probes.filter((p) => !p.ok).map((p) => `${p.target}: ${p.detail}`).join('; ');
}
