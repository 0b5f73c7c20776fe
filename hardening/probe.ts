import { AgentError, ExitCode } from '../agent/errors.js';
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
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s/]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) {
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
