import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ensureServerCredentials } from '../cloud/tls.js';

const run = promisify(execFile);
const SETUP_HINT = 'run scripts/setup.sh as root to install the test tools';
/** Debian's python3, which has python3-scapy (a pyenv python on PATH would not). */
export const PYTHON = '/usr/bin/python3';

/** Fails loudly (never skips) when a tool a hardening test needs is missing, or when not root. */
export function requireHardeningTools(tools: readonly string[]): void {
  if (process.getuid?.() !== 0) throw new Error('hardening integration tests need root (network namespaces, iptables)');
  const missing = tools.filter((t) => !['/usr/sbin', '/usr/bin', '/sbin', '/bin'].some((d) => existsSync(`${d}/${t}`)));
  if (missing.length) throw new Error(`missing ${missing.join(', ')}: ${SETUP_HINT}`);
}

/**
 * Two network namespaces of a test's own, joined by one veth pair that carries the only
 * addresses: `device` (10.200.N.1/29, where the profile is applied) and `peer` (.2 and .3,
 * where packets come from). Nothing is created in the host namespace.
 */
export class NetnsPair {
  readonly device: string;
  readonly peer: string;
  readonly deviceAddress: string;
  readonly peerAddress: string;
  readonly peerAddress2: string;
  private readonly children = new Set<ChildProcess>();
  private readonly onExit = () => this.destroySync();

  private constructor(tag: string, subnet: number) {
    this.device = `iotagent-${tag}-d`;
    this.peer = `iotagent-${tag}-p`;
    this.deviceAddress = `10.200.${subnet}.1`;
    this.peerAddress = `10.200.${subnet}.2`;
    this.peerAddress2 = `10.200.${subnet}.3`;
  }

  static async create(): Promise<NetnsPair> {
    requireHardeningTools(['ip']);
    const pair = new NetnsPair(randomBytes(4).toString('hex'), randomBytes(1)[0]!);
    process.once('exit', pair.onExit);
    try {
      await ip(['netns', 'add', pair.device]);
      await ip(['netns', 'add', pair.peer]);
      await ip(['-n', pair.device, 'link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'veth1', 'netns', pair.peer]);
      await ip(['-n', pair.device, 'addr', 'add', `${pair.deviceAddress}/29`, 'dev', 'veth0']);
      await ip(['-n', pair.peer, 'addr', 'add', `${pair.peerAddress}/29`, 'dev', 'veth1']);
      await ip(['-n', pair.peer, 'addr', 'add', `${pair.peerAddress2}/29`, 'dev', 'veth1']);
      for (const [ns, dev] of [[pair.device, 'veth0'], [pair.peer, 'veth1']] as const) {
        await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
        await ip(['-n', ns, 'link', 'set', dev, 'up']);
      }
    } catch (err) {
      await pair.destroy();
      throw err;
    }
    return pair;
  }

  prefix(ns: string): string[] {
    return ['ip', 'netns', 'exec', ns];
  }

  /** Runs a command inside a namespace; resolves with its output whatever its exit code. */
  async exec(ns: string, argv: readonly string[], timeoutMs = 20_000): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await run('ip', ['netns', 'exec', ns, ...argv], { timeout: timeoutMs, maxBuffer: 8 << 20 });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number | string; stdout?: string; stderr?: string };
      if (e.code === 'ENOENT') throw new Error(`${argv[0]} is missing: ${SETUP_HINT}`, { cause: err });
      return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  }

  /** Starts a long-running process inside a namespace; it is killed by `destroy()`. */
  spawn(ns: string, argv: readonly string[]): ChildProcess {
    // stdin stays open: some servers (openssl s_server) stop at end of input.
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** A TCP listener on `port` in the device namespace that accepts and closes connections. */
  async listenTcp(port: number): Promise<ChildProcess> {
    const script = [
      'import socket, sys',
      's = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
      `s.bind(("0.0.0.0", ${port})); s.listen(512); print("ready", flush=True)`,
      'while True:',
      '    c, _ = s.accept(); c.close()',
    ].join('\n');
    return this.waitReady(this.spawn(this.device, [PYTHON, '-c', script]), 'ready');
  }

  /**
   * Tries a TCP connection from the peer (optionally from a given source address): "connected",
   * "timeout", "refused", or the text of any other OS error.
   */
  async tcpConnect(port: number, options: { from?: string; timeoutSeconds?: number } = {}): Promise<string> {
    const source = options.from ? `("${options.from}", 0)` : 'None';
    const script = [
      'import socket',
      'try:',
      `    socket.create_connection(("${this.deviceAddress}", ${port}), timeout=${options.timeoutSeconds ?? 3}, source_address=${source}).close(); print("connected")`,
      'except socket.timeout: print("timeout")',
      'except ConnectionRefusedError: print("refused")',
      'except OSError as e: print(e)',
    ].join('\n');
    return (await this.exec(this.peer, [PYTHON, '-c', script])).stdout.trim();
  }

  /**
   * A TLS server (openssl s_server) on one of the peer's addresses, standing in for a hub
   * or DPS, with a certificate from a test CA kept in `tlsDir`.
   */
  async serveTls(tlsDir: string, port: number, address = this.peerAddress): Promise<ChildProcess> {
    await ensureServerCredentials(tlsDir, [this.peerAddress, this.peerAddress2]);
    return this.waitReady(this.spawn(this.peer, ['openssl', 's_server', '-accept', `${address}:${port}`,
      '-cert', path.join(tlsDir, 'server.pem'), '-key', path.join(tlsDir, 'server.key')]), 'ACCEPT');
  }

  async waitReady(child: ChildProcess, marker: string, timeoutMs = 10_000): Promise<ChildProcess> {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`no "${marker}" within ${timeoutMs} ms: ${out}`)), timeoutMs);
      const onData = (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes(marker)) { clearTimeout(timer); resolve(); }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`exited with ${code}: ${out}`)); });
    });
    return child;
  }

  async destroy(): Promise<void> {
    for (const child of this.children) child.kill('SIGKILL');
    this.children.clear();
    for (const ns of [this.device, this.peer]) await ip(['netns', 'del', ns]).catch(() => undefined);
    process.removeListener('exit', this.onExit);
  }

  private destroySync(): void {
    for (const child of this.children) child.kill('SIGKILL');
    for (const ns of [this.device, this.peer]) spawnSync('ip', ['netns', 'del', ns]);
  }
}

async function ip(args: string[]): Promise<void> {
  try {
    await run('ip', args);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

/** Packet counters of the agent's named rules (`iot-agent:NAME` → packets), from `iptables-save -c`. */
export async function ruleCounters(pair: NetnsPair, saveTool: string): Promise<Map<string, number>> {
  const { stdout, stderr, code } = await pair.exec(pair.device, [saveTool, '-c', '-t', 'filter']);
  if (code !== 0) throw new Error(`${saveTool} failed: ${stderr}`);
  const counters = new Map<string, number>();
  for (const line of stdout.split('\n')) {
    const m = /^\[(\d+):\d+\] -A IOT-AGENT-IN .*--comment "?iot-agent:([\w.-]+)"?/.exec(line);
    if (m) counters.set(m[2]!, (counters.get(m[2]!) ?? 0) + Number(m[1]));
  }
  return counters;
}

/** `iptables-save` of the filter table without the date comments and counters: what "exactly the same" means. */
export async function filterTable(pair: NetnsPair, saveTool: string): Promise<string> {
  const { stdout, stderr, code } = await pair.exec(pair.device, [saveTool, '-t', 'filter']);
  if (code !== 0) throw new Error(`${saveTool} failed: ${stderr}`);
  return stdout.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/, '[0:0]')).join('\n');
}

/** Sends `count` TCP packets with the given hping3 flags from the peer to the device; returns when done. */
export async function sendTcpFlags(pair: NetnsPair, flags: readonly string[], port: number, count: number): Promise<void> {
  const result = await pair.exec(pair.peer, ['hping3', ...flags, '-p', String(port), '-c', String(count), '-i', 'u2000', pair.deviceAddress], 20_000);
  if (!/packets transmitted/.test(result.stdout + result.stderr)) throw new Error(`hping3 did not run: ${result.stderr}`);
}
