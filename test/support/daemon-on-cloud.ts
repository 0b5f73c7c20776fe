import { appendFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { loadConfig } from '../../agent/config.js';
import type { DaemonState, DaemonStatus } from '../../agent/control/protocol.js';
import { Daemon, type DaemonOptions } from '../../agent/daemon/daemon.js';
import { Logger } from '../../agent/log/logger.js';
import { FAST_BACKOFF, type RuntimeOverrides, type TestTimings } from '../../agent/runtime-overrides.js';
import { startCloud, type CloudOptions, type LocalCloud } from '../cloud/cloud.js';
import type { AgentFiles } from './agent-process.js';
import { enrollBoard, type EnrolledBoard } from './enroll-board.js';
import { randomLoopbackAddress } from './ports.js';
import { SwtpmInstance } from './swtpm.js';

const PROVISIONING_HELPER = fileURLToPath(new URL('../../dist/agent/provisioning/child-main.js', import.meta.url));

/** What the daemon told systemd, in order: `READY …`, `STATUS …`, `STOPPING`, `WATCHDOG on|off`. */
export type Told = string[];

/** A Daemon in this process, with its log lines and what it told systemd. */
export interface RunningDaemon {
  readonly daemon: Daemon;
  readonly lines: string[];
  readonly told: Told;
  /** The watchdog's health check as the daemon handed it over (undefined before start). */
  readonly healthy: () => boolean;
  /** The log lines of `event` (`event=<name>` exactly). */
  readonly logged: (event: string) => string[];
  /** Resolves with the status once the daemon is in `state` (generous deadline: the suite runs two workers on two cores). */
  readonly reach: (state: DaemonState, timeoutMs?: number) => Promise<DaemonStatus>;
}

export interface BoardSettings {
  reprovision?: string;
  /** Further keys of the config's provisioning section, e.g. { hubUnreachableSeconds: 1 }. */
  provisioning?: Record<string, string | number>;
  /** YAML appended to the config (whole sections, e.g. `network:\n  hubProtocol: mqtt-ws`). */
  extra?: string;
}

/**
 * One board on the local cloud, all in this process: DPS and one hub on loopback addresses
 * of their own (by address: an in-process daemon cannot be given the private hosts file),
 * a real swtpm whose EK is enrolled for `deviceId` on that hub, and an agent config for it.
 * The daemons started here run with the tests' quick timings and a hardening site in a
 * temporary root, and are stopped with everything else by stopDaemonsOnCloud().
 */
export class DaemonOnCloud {
  private constructor(
    readonly dir: string,
    readonly cloud: LocalCloud,
    readonly swtpm: SwtpmInstance,
    readonly deviceId: string,
    readonly board: EnrolledBoard,
    readonly files: AgentFiles,
  ) {}

  static async start(options: BoardSettings & { deviceId?: string; cloud?: Pick<CloudOptions, 'hub' | 'dps' | 'port8883' | 'storage'> } = {}): Promise<DaemonOnCloud> {
    // Registration runs in a helper process from the build, also under mutation testing (dist/ is copied into Stryker's sandbox).
    if (!existsSync(PROVISIONING_HELPER)) throw new Error(`${PROVISIONING_HELPER} is missing: the daemon registers through the built helper; run npm run build first`);
    const deviceId = options.deviceId ?? 'board-70';
    const dir = mkdtempSync(path.join(tmpdir(), `iot-agent-daemon-${deviceId}-`));
    const [cloud, swtpm] = await Promise.all([
      startCloud({ dir: path.join(dir, 'cloud'), dpsAddress: randomLoopbackAddress(), hubAddresses: [randomLoopbackAddress()],
        allocation: 'static', retryAfterSeconds: 1, log: () => undefined, ...options.cloud }),
      SwtpmInstance.start(),
    ]);
    const fixture = new DaemonOnCloud(dir, cloud, swtpm, deviceId, await enrollBoard(cloud.dps, { deviceId, transport: swtpm.transport, hub: cloud.hubs[0]!.hostName }),
      { dir, configPath: '', stateDir: '', runtimeDir: '' });
    afterTest(() => fixture.stop());
    fixture.writeConfig(options);
    return fixture;
  }

  get hub() {
    return this.cloud.hubs[0]!;
  }

  get configPath(): string {
    return this.files.configPath;
  }

  /** (Re)writes the agent config; the state and runtime directories stay the same. */
  writeConfig(settings: BoardSettings = {}): void {
    const files = this.board.writeConfig(path.join(this.dir, 'agent'), { reprovision: settings.reprovision, provisioning: settings.provisioning });
    if (settings.extra) appendFileSync(files.configPath, `${settings.extra.trimEnd()}\n`);
    Object.assign(this.files, files);
  }

  /** A Daemon on this board's config (as read now), started. */
  startDaemon(options: DaemonTestOptions = {}): Promise<RunningDaemon> {
    return startTestDaemon(this.configPath, this.dir, options);
  }

  /** A daemon run until ready and stopped again: the board has its assignment (and history) on disk, as after a reboot. */
  async provisionOnce(options: DaemonTestOptions = {}): Promise<RunningDaemon> {
    const first = await this.startDaemon(options);
    await first.reach('ready');
    await first.daemon.stop();
    return first;
  }

  private async stop(): Promise<void> {
    await this.cloud.stop();
    await this.swtpm.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export type DaemonTestOptions = { timings?: TestTimings; overrides?: RuntimeOverrides; readyGraceMs?: number } & Partial<Pick<DaemonOptions, 'onRestartRequested' | 'clock'>>;

/**
 * A Daemon in this process on the config at `configPath` (as read now), started, with the
 * tests' quick timings, a hardening site under `dir`, and its log and systemd notifications
 * recorded. stopDaemonsOnCloud() stops it.
 */
export async function startTestDaemon(configPath: string, dir: string, options: DaemonTestOptions = {}): Promise<RunningDaemon> {
  const lines: string[] = [];
  const told: Told = [];
  let health: (() => boolean) | undefined;
  const log = new Logger({ journal: false, level: 'debug', write: (line) => lines.push(line.trimEnd()) });
  const daemon = new Daemon({
    config: await loadConfig(configPath), configPath, log, agentVersion: '9.9.9',
    readyGraceMs: options.readyGraceMs ?? 60_000, onRestartRequested: options.onRestartRequested ?? (() => undefined), clock: options.clock,
    overrides: {
      timings: { backoff: FAST_BACKOFF, reconnectSpreadMs: 0, minReprovisionSeconds: 0, keepAliveSeconds: 5, ...options.timings },
      hardeningSite: { root: path.join(dir, 'hardening-root'), netns: 'iotagent-test-nonexistent', backend: 'nft' },
      ...options.overrides,
    },
    notifier: {
      ready: (status) => told.push(`READY ${status}`),
      status: (status) => told.push(`STATUS ${status}`),
      stopping: () => told.push('STOPPING'),
      startWatchdog: (check) => { health = check; told.push('WATCHDOG on'); },
      stopWatchdog: () => told.push('WATCHDOG off'),
    },
  });
  daemons.push(daemon);
  await daemon.start();
  const logged = (event: string) => lines.filter((l) => l.split(' ').includes(`event=${event}`));
  return {
    daemon, lines, told, logged,
    healthy: () => health?.() ?? false,
    reach: async (state, timeoutMs = 45_000) => {
      await expect.poll(() => daemon.status().state, { timeout: timeoutMs, interval: 50, message: `the daemon never reached ${state}:\n${lines.slice(-10).join('\n')}` }).toBe(state);
      return daemon.status();
    },
  };
}

const daemons: Daemon[] = [];
const cleanups: (() => Promise<void>)[] = [];

/** Something a test started, to be stopped after the test's daemons by stopDaemonsOnCloud(). */
export function afterTest(cleanup: () => Promise<void>): void {
  cleanups.push(cleanup);
}

/** For afterEach: stops every daemon, then every cloud and swtpm the test started, and removes their files. */
export async function stopDaemonsOnCloud(): Promise<void> {
  for (const daemon of daemons.splice(0)) await daemon.stop().catch(() => undefined);
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
}
