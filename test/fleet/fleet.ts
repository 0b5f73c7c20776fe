import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { freemem, totalmem } from 'node:os';
import path from 'node:path';
import { startCloud, type LocalCloud } from '../cloud/cloud.js';
import { serviceClients } from '../cloud/hub/service-sdk.js';
import { AgentProcess } from '../support/agent-process.js';
import { enrollBoard } from '../support/enroll-board.js';
import { MssimBridge } from '../support/mssim-bridge.js';
import { randomLoopbackAddress } from '../support/ports.js';
import { SwtpmInstance } from '../support/swtpm.js';
import { TpmDeviceBridge } from '../support/tpm-device-bridge.js';

export type TransportKind = 'swtpm' | 'mssim' | 'device';
/** Boards started together, and how long a batch may take to be ready. */
const BATCH = 10;
const BATCH_READY_MS = 300_000;
const KINDS: readonly TransportKind[] = ['swtpm', 'mssim', 'device'];

/** One board of the fleet: a real agent with its own swtpm, state and transport. */
export interface Board {
  deviceId: string;
  registrationId: string;
  kind: TransportKind;
  swtpm: SwtpmInstance;
  bridge: MssimBridge | TpmDeviceBridge | undefined;
  agent: AgentProcess;
  /** The agent's state as its log says. */
  state: string;
  /** The hub it last connected to, as its log says. */
  hub: string | undefined;
}

/** One line of the drill's view, taken once a second. */
export interface FleetSample {
  at: number;
  connected: number;
  provisioning: number;
  degraded: number;
  refused: number;
  registrations: number;
  connects: number;
}

export interface FleetOptions {
  devices: number;
  dir: string;
  /** Extra IOT_AGENT_TEST_TIMINGS for every agent ('' = production timings). */
  timings?: string;
  log?: (line: string) => void;
}

/**
 * QA's fleet drill: N real agents, each with its own swtpm and state, enrolled in one
 * local cloud (two linked hubs), mixing the three TPM transports (swtpm, mssim through a
 * protocol bridge, `device:` through a pty bridge). The agents run with production timings
 * unless told otherwise, so what the drill shows is what a fleet does.
 */
export class Fleet {
  readonly boards: Board[] = [];
  private sampler: NodeJS.Timeout | undefined;
  readonly samples: FleetSample[] = [];

  private constructor(readonly cloud: LocalCloud, readonly service: ReturnType<typeof serviceClients>, private readonly options: FleetOptions) {}

  static async start(options: FleetOptions): Promise<Fleet> {
    mkdirSync(options.dir, { recursive: true });
    const cloud = await startCloud({
      dir: path.join(options.dir, 'cloud'), dpsAddress: randomLoopbackAddress(), hubAddresses: [randomLoopbackAddress(), randomLoopbackAddress()],
      allocation: 'static', retryAfterSeconds: 2, log: () => undefined,
    });
    const fleet = new Fleet(cloud, serviceClients(cloud.hubs[0]!.serviceConnectionString, cloud.ca), options);
    try {
      // A few at a time, each batch ready before the next starts: a first start creates an EK
      // in its swtpm, registers with DPS and starts node, and fifty of those at once on two
      // cores starve the TPMs past their command deadline.
      for (let i = 0; i < options.devices; i += BATCH) {
        await Promise.all(Array.from({ length: Math.min(BATCH, options.devices - i) }, (_, j) => fleet.addBoard(i + j)));
        await fleet.waitUntil('a batch of boards ready', (s) => s.connected === fleet.boards.length, BATCH_READY_MS);
      }
    } catch (err) {
      await fleet.stop();
      throw err;
    }
    return fleet;
  }

  get hub() {
    return this.cloud.hubs[0]!;
  }

  private async addBoard(index: number): Promise<void> {
    const deviceId = `fleet-${String(index).padStart(3, '0')}`;
    const kind = KINDS[index % KINDS.length]!;
    const swtpm = await SwtpmInstance.start();
    const bridge = kind === 'mssim' ? await MssimBridge.start({ tpm: { host: swtpm.host, port: swtpm.port } })
      : kind === 'device' ? await TpmDeviceBridge.start(swtpm) : undefined;
    const transport = bridge?.transport ?? swtpm.transport;
    // The EK through the board's own transport, as a technician's `tpm info` would read it.
    const enrolled = await enrollBoard(this.cloud.dps, { deviceId, transport, hub: this.hub.hostName });
    const files = enrolled.writeConfig(path.join(this.options.dir, deviceId), {
      // The drill's scenarios come minutes after the first registration, not hours.
      provisioning: { minReprovisionSeconds: 60 },
    });
    const agent = AgentProcess.start(files, this.options.timings ?? '', {
      testTimings: false,
      // A sandbox the hardening engine cannot leave: the drill never touches this machine's firewall.
      env: { IOT_AGENT_HARDENING_TEST: `netns=iotagent-fleet-none,root=${path.join(this.options.dir, deviceId, 'root')},backend=nft` },
    });
    const board: Board = { deviceId, registrationId: enrolled.registrationId, kind, swtpm, bridge, agent, state: 'starting', hub: undefined };
    agent.onLine((line) => {
      const m = / event=state\.changed .*?to=(\w+)(?: reason="connected to (\S+) as)?/.exec(line);
      if (!m) return;
      board.state = m[1]!;
      if (m[2]) board.hub = m[2];
    });
    this.boards.push(board);
  }

  /** One sample now: the agents' own states, and the cloud's counters. */
  sample(): FleetSample {
    const count = (state: string) => this.boards.filter((b) => b.state === state).length;
    const counters = this.cloud.hubs.map((h) => h.counters);
    return {
      at: Date.now(),
      connected: count('ready'),
      provisioning: count('provisioning'),
      degraded: count('degraded') + count('connecting'),
      refused: counters.reduce((n, c) => n + c.refused, 0),
      registrations: this.cloud.dps.counters.registrations,
      connects: counters.reduce((n, c) => n + c.connects, 0),
    };
  }

  /** Prints a line every second (and keeps it) until stopReporting(). */
  report(intervalMs = 1_000): void {
    const log = this.options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
    const t0 = Date.now();
    this.sampler = setInterval(() => {
      const s = this.sample();
      this.samples.push(s);
      log(`${((s.at - t0) / 1000).toFixed(0).padStart(4)} s  connected ${s.connected}/${this.boards.length}  provisioning ${s.provisioning}`
        + `  degraded ${s.degraded}  refused ${s.refused}  DPS registrations ${s.registrations}  connects ${s.connects}`);
    }, intervalMs);
  }

  stopReporting(): void {
    clearInterval(this.sampler);
  }

  async waitUntil(what: string, done: (s: FleetSample) => boolean, timeoutMs: number): Promise<number> {
    const t0 = Date.now();
    while (Date.now() - t0 < timeoutMs) {
      const dead = this.boards.find((b) => b.agent.ended);
      if (dead) throw new Error(`fleet: the agent of ${dead.deviceId} exited:\n${dead.agent.lines.slice(-10).join('\n')}`);
      if (done(this.sample())) return Date.now() - t0;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`fleet: ${what} not within ${timeoutMs / 1000} s: ${JSON.stringify(this.sample())}`);
  }

  /** RSS of each agent process (kB from /proc), and the machine's memory in use. */
  memory(): { perAgentMiB: number[]; machineUsedMiB: number } {
    const rss = (pid: number | undefined) => {
      if (pid === undefined) return 0;
      try {
        return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
      } catch {
        return 0;
      }
    };
    return { perAgentMiB: this.boards.map((b) => rss(b.agent.child.pid)), machineUsedMiB: (totalmem() - freemem()) / 1048576 };
  }

  async stop(): Promise<void> {
    this.stopReporting();
    await Promise.all(this.boards.map((b) => b.agent.stop()));
    for (const board of this.boards) {
      if (board.bridge instanceof TpmDeviceBridge) board.bridge.stop();
      else await board.bridge?.stop();
      await board.swtpm.stop();
    }
    await this.cloud.stop();
    rmSync(this.options.dir, { recursive: true, force: true });
  }
}
