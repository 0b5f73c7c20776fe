import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { describeError } from '../lib/errors.js';
import { proxySettings } from '../network/proxy.js';
import { readAssignment } from '../state/assignment-store.js';
import type { CollectContext, Collector } from './collector.js';
import { redactProxy } from './redact.js';
import type { BundleSources } from './sources.js';

const PROXY_VARIABLES = ['https_proxy', 'HTTPS_PROXY', 'http_proxy', 'HTTP_PROXY', 'all_proxy', 'ALL_PROXY', 'no_proxy', 'NO_PROXY'];
const CONNECT_TIMEOUT_MS = 5_000;

/** What an endpoint is to the agent: named in the bundle, never guessed from its port. */
type Role = 'proxy' | 'hub' | 'dps';
interface Target {
  role: Role;
  host: string;
  port: number;
}

/**
 * What matters for connectivity: addresses, routes, name servers, the proxy in force and the
 * proxy settings in the environment (credentials removed), and whether the proxy, the hub
 * (8883, and 443 for MQTT over WebSockets) and DPS (443) accept a TCP connection. TLS and
 * CONNECT through the proxy are `check`'s part.
 */
export function networkCollector(sources: BundleSources): Collector {
  return {
    name: 'network', reads: '/etc/resolv.conf, proxy variables, TCP connects to the hub and DPS', timeoutMs: 10_000,
    collect: async (context) => {
      const stored = await readAssignment(sources.config.stateDir);
      const hub = stored.status === 'valid' ? stored.assignment.assignedHub : undefined;
      let proxy: { url: string; source: string } | { error: string } | null = null;
      const proxyTarget: Target[] = [];
      try {
        const found = proxySettings(sources.config.network).proxy;
        if (found) {
          proxy = { url: found.display, source: found.source };
          proxyTarget.push({ role: 'proxy', host: found.host, port: found.port });
        }
      } catch (err) {
        proxy = { error: describeError(err) };
      }
      const hubTargets: Target[] = hub ? [{ role: 'hub', host: hub, port: 8883 }, { role: 'hub', host: hub, port: 443 }] : [];
      const targets = [...proxyTarget, ...hubTargets, { role: 'dps' as const, host: sources.config.provisioning.globalEndpoint, port: 443 }];
      const [addresses, routes4, routes6, resolvConf, reachability] = await Promise.all([
        json(context, ['ip', '-j', 'address', 'show']),
        json(context, ['ip', '-j', '-4', 'route', 'show', 'table', 'all']),
        json(context, ['ip', '-j', '-6', 'route', 'show', 'table', 'all']),
        readFile('/etc/resolv.conf', 'utf8').catch((err: NodeJS.ErrnoException) => `unreadable (${err.code ?? err.message})`),
        Promise.all(targets.map(tcpConnect)),
      ]);
      const proxyEnvironment = Object.fromEntries(PROXY_VARIABLES.filter((v) => process.env[v] !== undefined).map((v) => [v, redactProxy(process.env[v]!)]));
      return [
        { name: 'network/network.json', json: { addresses, routes: { ipv4: routes4, ipv6: routes6 }, proxy, proxyEnvironment, reachability, hubKnown: hub !== undefined } },
        { name: 'network/resolv.conf', text: resolvConf },
      ];
    },
  };
}

/** Time synchronisation as systemd sees it, and the offset to the service's clock when measured. */
export function timeCollector(sources: BundleSources): Collector {
  return {
    name: 'time', reads: 'timedatectl show, the daemon\'s measured clock offset', timeoutMs: 5_000,
    collect: async (context) => {
      const outcome = await context.exec(['timedatectl', 'show'], { timeoutMs: 4_000, maxBytes: 64 * 1024 });
      const timedatectl = outcome.exitCode === 0 && !outcome.error
        ? Object.fromEntries(outcome.stdout.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
        : { error: outcome.error ?? (outcome.stderr.trim().split('\n')[0] || `exit code ${outcome.exitCode}`) };
      return [{
        name: 'time.json',
        json: {
          systemTime: new Date().toISOString(), timedatectl,
          clockOffsetMs: sources.daemon?.status.clockOffsetMs ?? null,
          clockOffsetNote: sources.daemon ? 'service clock minus device clock; null: not measured yet' : 'measured by the running daemon only',
        },
      }];
    },
  };
}

async function json(context: CollectContext, argv: string[]): Promise<unknown> {
  const outcome = await context.exec(argv, { timeoutMs: 5_000, maxBytes: 1024 * 1024 });
  if (outcome.error || outcome.exitCode !== 0) return { error: outcome.error ?? `exit code ${outcome.exitCode}: ${outcome.stderr.trim().split('\n')[0] ?? ''}` };
  try {
    return JSON.parse(outcome.stdout);
  } catch {
    return { error: 'output is not JSON', text: outcome.stdout.slice(0, 64 * 1024) };
  }
}

function tcpConnect({ role, host, port }: Target): Promise<{ role: Role; target: string; reachable: boolean; ms: number; error?: string }> {
  const target = `${host}:${port}`;
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (error?: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ role, target, reachable: error === undefined, ms: Math.round(performance.now() - started), ...(error ? { error } : {}) });
    };
    const timer = setTimeout(() => done(`no TCP connection within ${CONNECT_TIMEOUT_MS} ms`), CONNECT_TIMEOUT_MS);
    socket.once('connect', () => done());
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
  });
}
