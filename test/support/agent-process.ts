import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CLI_PATH, runCli, type CliResult } from './cli.js';
import { withPrivateNames } from './hosts.js';
import { parseObject } from './json.js';

export interface AgentFiles {
  dir: string;
  configPath: string;
  stateDir: string;
  runtimeDir: string;
  /** The agent's /etc/hosts when the cloud has DNS names (test/support/hosts.ts). */
  hostsFile?: string;
}

/** A config file for an agent under test, with its own state and runtime directories in `dir`. */
export function writeAgentConfig(dir: string, settings: {
  idScope: string; globalEndpoint: string; transport: string; caFile: string; reprovision?: string; registrationId?: string;
  /** Further keys of the provisioning section, e.g. { minReprovisionSeconds: 60 }. */
  provisioning?: Record<string, string | number>;
}): AgentFiles {
  const stateDir = path.join(dir, 'state');
  const runtimeDir = path.join(dir, 'run');
  mkdirSync(dir, { recursive: true });
  const configPath = path.join(dir, 'config.yaml');
  writeFileSync(configPath, [
    'provisioning:',
    `  idScope: ${settings.idScope}`,
    `  globalEndpoint: ${settings.globalEndpoint}`,
    ...(settings.registrationId ? [`  registrationId: ${settings.registrationId}`] : []),
    `  reprovision: ${settings.reprovision ?? 'onErrorOnly'}`,
    ...Object.entries(settings.provisioning ?? {}).map(([key, value]) => `  ${key}: ${value}`),
    'tpm:',
    `  transport: ${settings.transport}`,
    'tls:',
    `  extraCaFile: ${settings.caFile}`,
    `stateDir: ${stateDir}`,
    `runtimeDir: ${runtimeDir}`,
    'log:',
    '  level: debug',
    '',
  ].join('\n'));
  return { dir, configPath, stateDir, runtimeDir };
}

/**
 * Test defaults for IOT_AGENT_TEST_TIMINGS: a 5 s keep-alive, fast backoff, no reconnect
 * spread, no re-provisioning rate limit, and a telemetry-interval second of 100 ms (so that
 * tests keep the interval's 10 s floor and still see health messages every second).
 */
export const TEST_TIMINGS = 'keepAlive=5,backoff=fast,spread=0,minReprovision=0,telemetrySecondMs=100';

export interface AgentStartOptions {
  env?: NodeJS.ProcessEnv;
  /** A resolv.conf for the agent's process tree (test/support/hosts.ts): where names not in its hosts file are looked up. */
  resolvConf?: string;
  /** false: only the `timings` given, without the tests' quick defaults (production timings otherwise). */
  testTimings?: false;
}

/** `iot-agent run` as systemd would start it, with its log lines collected. */
export class AgentProcess {
  readonly lines: string[] = [];
  private readonly listeners: ((line: string) => void)[] = [];
  private closed = false;
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(readonly child: ChildProcess, readonly files: AgentFiles) {
    let partial = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      partial += chunk.toString();
      const parts = partial.split('\n');
      partial = parts.pop()!;
      this.lines.push(...parts);
      for (const line of parts) for (const listener of this.listeners) listener(line);
    });
    // 'close' comes after the last stderr bytes, so the log is whole when the exit is seen.
    this.exited = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
    this.exited.then(() => { this.closed = true; }, () => undefined);
  }

  /**
   * `timings`: IOT_AGENT_TEST_TIMINGS keys over the test defaults, e.g. `tokenLifetime=4`.
   * The agent runs with the files' private hosts file (and `resolvConf`) when it has one.
   */
  static start(files: AgentFiles, timings = '', options: AgentStartOptions = {}): AgentProcess {
    const argv = [CLI_PATH, '--config', files.configPath, 'run'];
    const { command, args } = withPrivateNames({ hosts: files.hostsFile, resolvConf: options.resolvConf }, process.execPath, argv);
    const testTimings = options.testTimings === false ? timings : `${TEST_TIMINGS},${timings}`;
    const child = spawn(command, args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, IOT_AGENT_TEST_TIMINGS: testTimings, IOT_AGENT_TPM: '', NOTIFY_SOCKET: '', ...options.env },
    });
    return new AgentProcess(child, files);
  }

  /** Whether the process has ended. */
  get ended(): boolean {
    return this.closed;
  }

  /** Calls `listener` with each log line from now on. */
  onLine(listener: (line: string) => void): void {
    this.listeners.push(listener);
  }

  status(): Promise<CliResult> {
    return agentStatus(this.files);
  }

  /** `iot-agent status --json`, parsed: the daemon's status as an object whose fields tests narrow. */
  async statusObject(): Promise<Record<string, unknown>> {
    return parseObject((await this.status()).stdout, 'iot-agent status --json');
  }

  /** Polls `iot-agent status` until `state` is reached. */
  async waitForState(state: string, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      if (this.closed) throw new Error(`agent exited with ${this.child.exitCode}:\n${this.lines.slice(-15).join('\n')}`);
      const result = await this.status();
      if (result.code === 0) {
        last = JSON.parse(result.stdout);
        if ((last as { state?: string }).state === state) return last as Record<string, unknown>;
      }
      await new Promise((r) => setTimeout(r, 150));
    }
    throw new Error(`agent not ${state} within ${timeoutMs} ms; last status ${JSON.stringify(last)}\n${this.lines.slice(-15).join('\n')}`);
  }

  /** Waits for a log line containing `text`. */
  async waitForLog(text: string, timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const line = this.lines.find((l) => l.includes(text));
      if (line) return line;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no log line with ${JSON.stringify(text)} within ${timeoutMs} ms:\n${this.lines.slice(-15).join('\n')}`);
  }

  /** SIGTERM and the time until the process has exited. */
  async stop(): Promise<{ code: number | null; ms: number }> {
    const t0 = performance.now();
    if (this.child.exitCode === null) this.child.kill('SIGTERM');
    const { code } = await this.exited;
    return { code, ms: performance.now() - t0 };
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

/** `iot-agent status --json` for the agent configured in `files`, running or not. */
export function agentStatus(files: AgentFiles): Promise<CliResult> {
  return runCli(['--config', files.configPath, 'status', '--json']);
}
