import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePortPair, waitForListener } from './ports.js';

const INSTALL_HINT = 'install it with scripts/setup.sh (Debian packages swtpm and swtpm-tools)';

export interface SwtpmOptions {
  /** Reuse a state directory: same directory, same TPM (same EK). A new one is made otherwise. */
  stateDir?: string;
  /** Start without not-need-init/startup-clear, as a freshly powered TPM that needs CMD_INIT. */
  uninitialised?: boolean;
}

/** A private swtpm on free loopback ports, for one test file. */
export class SwtpmInstance {
  private child: ChildProcess | undefined;
  private ownsStateDir: boolean;

  private constructor(
    readonly host: string,
    readonly port: number,
    readonly stateDir: string,
    private readonly options: SwtpmOptions,
  ) {
    this.ownsStateDir = options.stateDir === undefined;
  }

  static async start(options: SwtpmOptions = {}): Promise<SwtpmInstance> {
    requireSwtpm();
    const stateDir = options.stateDir ?? mkdtempSync(path.join(tmpdir(), 'iot-agent-swtpm-'));
    const instance = new SwtpmInstance('127.0.0.1', await freePortPair(), stateDir, options);
    await instance.launch();
    return instance;
  }

  get transport(): string {
    return `swtpm:host=${this.host},port=${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Stops swtpm and starts it again on the same ports and state: the same TPM after a power cycle. */
  async restart(): Promise<void> {
    await this.stopProcess();
    await this.launch();
  }

  /** Ends swtpm abruptly, as a crash would. */
  async kill(): Promise<void> {
    await this.stopProcess('SIGKILL');
  }

  async stop(): Promise<void> {
    await this.stopProcess();
    if (this.ownsStateDir) rmSync(this.stateDir, { recursive: true, force: true });
  }

  private async launch(): Promise<void> {
    const args = [
      'socket', '--tpm2',
      '--tpmstate', `dir=${this.stateDir}`,
      '--server', `type=tcp,port=${this.port},bindaddr=${this.host}`,
      '--ctrl', `type=tcp,port=${this.port + 1},bindaddr=${this.host}`,
    ];
    if (!this.options.uninitialised) args.push('--flags', 'not-need-init,startup-clear');
    const child = spawn('swtpm', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    const exited = new Promise<never>((_, reject) =>
      child.once('exit', (code) => reject(new Error(`swtpm exited with ${code}: ${stderr.trim()}`))));
    exited.catch(() => undefined);
    this.child = child;
    await Promise.race([waitForListener(this.host, this.port), exited]);
    await Promise.race([waitForListener(this.host, this.port + 1), exited]);
  }

  private async stopProcess(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  }
}

export function requireSwtpm(): void {
  const probe = spawnSync('swtpm', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) throw new Error(`swtpm is not installed: ${INSTALL_HINT}`);
}
