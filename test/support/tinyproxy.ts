import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { withPrivateNames } from './hosts.js';
import { freePort, randomLoopbackAddress, waitForListener } from './ports.js';

const TINYPROXY = '/usr/bin/tinyproxy';
/** The longest a test's proxy may live, should the test never stop it. */
const MAX_LIFETIME_SECONDS = 900;

export interface ProxyOptions {
  /** Where the config and the log go. */
  dir: string;
  /** Basic credentials the proxy requires; none: an open proxy. */
  user?: { name: string; password: string };
  /** The proxy's /etc/hosts (test/support/hosts.ts): how it resolves the cloud's DNS names. */
  hostsFile?: string;
  /** Ports CONNECT may reach (default 443 only, as corporate proxies allow). */
  connectPorts?: number[];
  address?: string;
  port?: number;
}

/**
 * A real HTTPS proxy from Debian (tinyproxy, package tinyproxy-bin: the executable alone,
 * no service), started as the test's own process on a loopback address with a generated
 * config: CONNECT to port 443 only, Basic credentials required, every CONNECT in its log.
 * It resolves the cloud's names through the same private hosts file as the agent (its
 * process tree gets it bind-mounted over /etc/hosts). It ends with stop(), or after
 * MAX_LIFETIME_SECONDS (run under `timeout`).
 *
 * tinyproxy 1.11.1 answers wrong credentials with 401 and missing ones with 407 (fixed in
 * later releases: tinyproxy issue #532, PR #549): both reach the agent as a refused CONNECT.
 */
export class TinyProxy {
  private constructor(readonly child: ChildProcess, readonly address: string, readonly port: number, readonly logFile: string,
    private readonly output: string[]) {}

  static async start(options: ProxyOptions): Promise<TinyProxy> {
    if (!existsSync(TINYPROXY)) throw new Error(`${TINYPROXY} is missing: install tinyproxy-bin (scripts/setup.sh)`);
    mkdirSync(options.dir, { recursive: true });
    const address = options.address ?? randomLoopbackAddress();
    const port = options.port ?? await freePort(address);
    const logFile = path.join(options.dir, 'tinyproxy.log');
    const configFile = path.join(options.dir, 'tinyproxy.conf');
    writeFileSync(logFile, '');
    writeFileSync(configFile, [
      `Port ${port}`,
      `Listen ${address}`,
      'Timeout 600',
      'MaxClients 100',
      `LogFile "${logFile}"`,
      'LogLevel Connect',
      'DisableViaHeader Yes',
      ...(options.connectPorts ?? [443]).map((p) => `ConnectPort ${p}`),
      ...(options.user ? [`BasicAuth ${options.user.name} ${options.user.password}`] : []),
      '',
    ].join('\n'));
    const { command, args } = withPrivateNames({ hosts: options.hostsFile }, '/usr/bin/timeout',
      [String(MAX_LIFETIME_SECONDS), TINYPROXY, '-d', '-c', configFile]);
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const output: string[] = [];
    child.stdout.on('data', (chunk: Buffer) => output.push(chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => output.push(chunk.toString()));
    const proxy = new TinyProxy(child, address, port, logFile, output);
    try {
      await waitForListener(address, port, 10_000);
    } catch (err) {
      proxy.stop();
      throw new Error(`tinyproxy did not start: ${output.join('')}`, { cause: err });
    }
    return proxy;
  }

  /** The proxy URL, with `user` credentials when given. */
  url(user?: { name: string; password: string }): string {
    const auth = user ? `${encodeURIComponent(user.name)}:${encodeURIComponent(user.password)}@` : '';
    return `http://${auth}${this.address}:${this.port}`;
  }

  /** The CONNECT requests in the proxy's log, as `host:port`, in order. */
  connects(): string[] {
    const log = readFileSync(this.logFile, 'utf8');
    return [...log.matchAll(/Request \(file descriptor \d+\): CONNECT (\S+) HTTP/g)].map((m) => m[1]!);
  }

  log(): string {
    return readFileSync(this.logFile, 'utf8') + this.output.join('');
  }

  stop(): void {
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
  }
}
