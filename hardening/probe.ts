import { AgentError, ExitCode } from '../agent/errors.js';
import { isHostName } from '../agent/lib/host-name.js';
import type { CommandRunner } from './runner.js';

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

// Run by the same node binary, through the engine's runner, so the handshake happens in
// the network namespace the rules were applied to. Reachability is proven by a completed
// TLS handshake; the certificate is checked by the hub session, not here.
const PROBE_SCRIPT = `
const tls = require('node:tls');
const [host, port, ms] = process.argv.slice(1);
const net = require('node:net');
const s = tls.connect({ host, port: Number(port), servername: net.isIP(host) ? undefined : host, rejectUnauthorized: false, timeout: Number(ms) });
const done = (ok, detail) => { process.stdout.write(JSON.stringify({ ok, detail })); s.destroy(); process.exit(0); };
s.once('secureConnect', () => done(true, 'TLS handshake completed (' + s.getProtocol() + ')'));
s.once('timeout', () => done(false, 'no TLS handshake within ' + ms + ' ms'));
s.once('error', (e) => done(false, e.code || e.message));
`;

/** Tries one TLS handshake with each target, in parallel. */
export async function probeTargets(runner: CommandRunner, targets: readonly HostPort[], timeoutMs: number): Promise<ProbeResult[]> {
  return Promise.all(targets.map(async (t) => {
    const target = formatHostPort(t);
    try {
      const { stdout } = await runner.run([process.execPath, '-e', PROBE_SCRIPT, t.host, String(t.port), String(Math.max(100, timeoutMs))],
        { timeoutMs: timeoutMs + 5_000 });
      const parsed = JSON.parse(stdout) as { ok: boolean; detail: string };
      return { target, ok: parsed.ok, detail: parsed.detail };
    } catch (err) {
      return { target, ok: false, detail: err instanceof Error ? err.message : String(err) };
    }
  }));
}

export type Probe = (targets: readonly HostPort[], timeoutMs: number) => Promise<ProbeResult[]>;

export interface ProbeLoop {
  probe: Probe;
  targets: readonly HostPort[];
  /** Until when (ms since the epoch) to keep trying. */
  deadline: number;
  intervalMs: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

const PROBE_TIMEOUT_MS = 3_000;

/**
 * The one probe loop (the confirm step of a transaction and the boot guard): every target
 * probed at once, again every interval until all answer or the deadline passes. Bounded in
 * rounds too, so a clock that stands still cannot keep it going.
 */
export async function probeUntilReachable(loop: ProbeLoop): Promise<{ ok: boolean; probes: ProbeResult[]; rounds: number }> {
  const now = loop.now ?? Date.now;
  const sleep = loop.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const maxRounds = Math.ceil(Math.max(0, loop.deadline - now()) / Math.max(loop.intervalMs, 1)) + 2;
  let probes: ProbeResult[] = [];
  let rounds = 0;
  while (rounds < maxRounds) {
    rounds++;
    probes = await loop.probe(loop.targets, Math.min(PROBE_TIMEOUT_MS, Math.max(loop.deadline - now(), 200)));
    if (probes.every((p) => p.ok)) return { ok: true, probes, rounds };
    const left = loop.deadline - now();
    if (left <= 0) break;
    await sleep(Math.min(loop.intervalMs, left));
  }
  return { ok: false, probes, rounds };
}

/** `host:port: why` for each target that did not answer. */
export function describeFailures(probes: readonly ProbeResult[]): string {
  return probes.filter((p) => !p.ok).map((p) => `${p.target}: ${p.detail}`).join('; ');
}
