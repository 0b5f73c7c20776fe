import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { EventLog } from '../../agent/attestation/event-log.js';
import { DEFAULT_STATE_DIR } from '../../hardening/engine.js';
import { EVENT_LOG_FILE } from '../../agent/attestation/hardening-measure.js';
import { endorsementKeyFromDps, FileBindingStore, hubChannel, verifyDevice, type DeviceChannel, type DeviceVerdict, type VerifyDeviceOptions } from '../../verifier/index.js';
import { provisioningServiceClient } from '../cloud/dps/sdk-clients.js';
import type { AgentProcess } from './agent-process.js';
import { runCli, type CliResult } from './cli.js';
import { DeviceCloud } from './device-cloud.js';
import { NetnsPair, requireHardeningTools } from './netns.js';

/**
 * A board as attestation sees it: the local cloud and a real swtpm (DeviceCloud), hardening
 * applied for real inside a network namespace and a root directory of the test's own (never
 * this machine's firewall or /etc), the boot step run by the real CLI before the agent
 * starts (as iot-agent-hardening.service does), and the verifier library over the
 * unmodified azure-iothub clients.
 */
export class AttestedBoard {
  agent: AgentProcess | undefined;

  private constructor(
    readonly dc: DeviceCloud,
    readonly pair: NetnsPair,
    readonly root: string,
    readonly bindingsDir: string,
  ) {}

  static async start(deviceId: string): Promise<AttestedBoard> {
    requireHardeningTools(['ip', 'iptables-nft-save', 'iptables-nft-restore', 'openssl', 'sysctl', 'swtpm']);
    const pair = await NetnsPair.create();
    const root = mkdtempSync(path.join(tmpdir(), `iot-agent-${deviceId}-root-`));
    try {
      await pair.serveTls(path.join(root, 'tls'), 8883);
      mkdirSync(path.join(root, 'etc'), { recursive: true });
      // By address: the verifier's own service clients run in the test process, where the cloud's names do not resolve.
      const dc = await DeviceCloud.start({ deviceId, names: false, hardening: { netns: pair.device, root, confirm: `${pair.peerAddress}:8883` } });
      return new AttestedBoard(dc, pair, root, mkdtempSync(path.join(tmpdir(), `iot-agent-${deviceId}-bindings-`)));
    } catch (err) {
      await pair.destroy();
      rmSync(root, { recursive: true, force: true });
      throw err;
    }
  }

  get eventLogPath(): string {
    return path.join(this.root, DEFAULT_STATE_DIR, EVENT_LOG_FILE);
  }

  eventLog(): EventLog {
    return JSON.parse(readFileSync(this.eventLogPath, 'utf8')) as EventLog;
  }

  writeEventLog(log: EventLog): void {
    writeFileSync(this.eventLogPath, `${JSON.stringify(log)}\n`);
  }

  /** What iot-agent-hardening.service runs at boot, measuring into the board's swtpm (the agent must not hold it). */
  bootApply(profile = 'baseline'): Promise<CliResult> {
    return this.harden(['apply', '--boot', '--profile', profile]);
  }

  /** A root `iot-agent harden …` on this board. */
  harden(args: string[]): Promise<CliResult> {
    return runCli(['--config', this.dc.files.configPath, 'harden', ...args, '--root', this.root, '--netns', this.pair.device,
      '--backend', 'nft', '--tpm', this.dc.swtpm.transport, '--json'], {}, 60_000);
  }

  async startAgent(): Promise<AgentProcess> {
    this.agent = this.dc.startAgent();
    await this.agent.waitForState('ready');
    return this.agent;
  }

  async stopAgent(): Promise<void> {
    await this.dc.stopAgents();
    this.agent = undefined;
  }

  /** The agent's own channel through the hub, as the verifier uses it. */
  channel(): DeviceChannel {
    return hubChannel(this.dc.service, this.dc.deviceId, 20);
  }

  /** The EK of the board's DPS enrollment, through the provisioning service SDK: what an operator trusts. */
  async enrolledEk(): Promise<Buffer> {
    const registrationId = await this.dc.waitFor('the reported registration id', async () => (await this.dc.reported()).registrationId as string | undefined);
    const dps = provisioningServiceClient(this.dc.cloud.dps.serviceConnectionString, this.dc.cloud.ca);
    return endorsementKeyFromDps(dps, registrationId, this.dc.deviceId);
  }

  verify(options: Partial<VerifyDeviceOptions> = {}): Promise<DeviceVerdict> {
    return verifyDevice({
      channel: this.channel(),
      bindings: new FileBindingStore(this.bindingsDir, this.dc.hub.hostName),
      endorsementKey: () => this.enrolledEk(),
      hardeningPcr: 13,
      ...options,
    });
  }

  async stop(): Promise<void> {
    await this.dc?.stop();
    await this.pair?.destroy();
    rmSync(this.root, { recursive: true, force: true });
    rmSync(this.bindingsDir, { recursive: true, force: true });
  }
}

/** The check statuses by id, for assertions that name each. */
export function statuses(verdict: DeviceVerdict): Record<string, string> {
  return Object.fromEntries(verdict.checks.map((c) => [c.id, c.status]));
}

export function messageOf(verdict: DeviceVerdict, id: string): string {
  return verdict.checks.find((c) => c.id === id)?.message ?? '';
}
