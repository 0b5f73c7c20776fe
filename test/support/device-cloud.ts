import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startCloud, type CloudOptions, type LocalCloud } from '../cloud/cloud.js';
import type { D2cMessage } from '../cloud/hub/d2c-log.js';
import { serviceClients } from '../cloud/hub/service-sdk.js';
import { AgentProcess, type AgentFiles } from './agent-process.js';
import { enrollBoard, type BoardIdentity } from './enroll-board.js';
import { invokeMethod, type MethodAnswer as DirectMethodAnswer } from './direct-method.js';
import { cloudHostNames, lookupWith, writeHostsFile } from './hosts.js';
import { parseObject } from './json.js';
import { randomLoopbackAddress } from './ports.js';
import { SwtpmInstance } from './swtpm.js';

/** What the agent's commands answer: an object payload, whose fields tests read. */
export type MethodAnswer = DirectMethodAnswer<Record<string, unknown>>;

/** A command-result message (D2C) as the agent sends it; fields beyond these stay unchecked. */
export interface CommandResultMessage {
  status: number;
  phase: string;
  command: string;
  payload: unknown;
  [field: string]: unknown;
}

/**
 * One enrolled device on the local cloud with a real swtpm, an agent config with
 * telemetry settings, and the unmodified azure-iothub service clients as the caller.
 * DPS and the hub have DNS names, as on Azure (certificates for the names, SNI required):
 * the agent resolves them through a private hosts file (test/support/hosts.ts), the
 * service clients here through a lookup.
 */
export class DeviceCloud {
  readonly agents: AgentProcess[] = [];
  private constructor(
    readonly dir: string,
    readonly cloud: LocalCloud,
    readonly swtpm: SwtpmInstance,
    readonly deviceId: string,
    /** What the device's enrollment holds, for a test that enrolls it again otherwise. */
    readonly identity: BoardIdentity,
    readonly files: AgentFiles,
    readonly service: ReturnType<typeof serviceClients>,
  ) {}

  /**
   * `hardening`: the namespace and root the agent's hardening engine must use. Without
   * one, the engine is pointed at a temporary root and a namespace that does not exist:
   * an agent under test never reads or changes this machine's firewall or /etc.
   */
  static async start(options: {
    deviceId: string; telemetry?: { intervalSeconds?: number; queueLimit?: number; maxMessagesPerSecond?: number };
    hardening?: { netns: string; root: string; confirm: string };
    /** Blob storage (Azurite) behind the hub's file upload endpoints. */
    storage?: boolean;
    /** Hub limits and knobs, DPS knobs. */
    cloud?: Pick<CloudOptions, 'hub' | 'dps'>;
    /**
     * false: DPS and the hub by their addresses, without DNS names, for callers in the test
     * process that cannot be given a lookup (the verifier's service clients, say).
     */
    names?: boolean;
    /** The agent config's network section, as YAML lines under `network:` (e.g. `  hubProtocol: mqtt-ws`). */
    network?: string;
  }): Promise<DeviceCloud> {
    const dir = mkdtempSync(path.join(tmpdir(), `iot-agent-${options.deviceId}-`));
    const hardening = options.hardening ?? { netns: 'iotagent-test-nonexistent', root: path.join(dir, 'hardening-root'), confirm: '127.0.0.1:9' };
    process.env.IOT_AGENT_HARDENING_TEST = `netns=${hardening.netns},root=${hardening.root},backend=nft,confirm=${hardening.confirm}`;
    const dpsAddress = randomLoopbackAddress();
    const hubAddress = randomLoopbackAddress();
    const named = options.names !== false;
    const hostNames = named ? cloudHostNames() : undefined;
    const hosts: Record<string, string> = hostNames ? { [hostNames.dps]: dpsAddress, [hostNames.hubs[0]!]: hubAddress } : {};
    const [cloud, swtpm] = await Promise.all([
      startCloud({ dir: path.join(dir, 'cloud'), dpsAddress, hubAddresses: [hubAddress], hostNames,
        allocation: 'static', retryAfterSeconds: 1, log: () => undefined, storage: options.storage, ...options.cloud }),
      SwtpmInstance.start(),
    ]);
    const board = await enrollBoard(cloud.dps, { deviceId: options.deviceId, transport: swtpm.transport, hub: cloud.hubs[0]!.hostName });
    const files: AgentFiles = {
      ...board.writeConfig(path.join(dir, 'agent')),
      ...(named ? { hostsFile: writeHostsFile(path.join(dir, 'hosts'), hosts) } : {}),
    };
    const t = options.telemetry ?? {};
    appendFileSync(files.configPath, `telemetry:\n  intervalSeconds: ${t.intervalSeconds ?? 3600}\n  queueLimit: ${t.queueLimit ?? 10000}\n`
      + (t.maxMessagesPerSecond ? `  maxMessagesPerSecond: ${t.maxMessagesPerSecond}\n` : '')
      + (options.network ? `network:\n${options.network.trimEnd()}\n` : ''));
    const service = serviceClients(cloud.hubs[0]!.serviceConnectionString, cloud.ca, named ? lookupWith(hosts) : undefined);
    return new DeviceCloud(dir, cloud, swtpm, options.deviceId, { registrationId: board.registrationId, endorsementKey: board.endorsementKey }, files, service);
  }

  get hub() {
    return this.cloud.hubs[0]!;
  }

  startAgent(timings?: string, env?: NodeJS.ProcessEnv): AgentProcess {
    const agent = AgentProcess.start(this.files, timings, { env });
    this.agents.push(agent);
    return agent;
  }

  /** A direct method through azure-iothub's Client.invokeDeviceMethod. */
  async invoke(methodName: string, payload?: unknown, responseTimeoutInSeconds = 10): Promise<MethodAnswer> {
    const answer = await invokeMethod(this.service.client, this.deviceId,
      { methodName, payload, responseTimeoutInSeconds, connectTimeoutInSeconds: 10 });
    return answer as MethodAnswer;
  }

  /** A C2D message with raw bytes or a JSON envelope. */
  sendC2d(data: Buffer | string | object, messageId?: string): Promise<string> {
    const body = Buffer.isBuffer(data) || typeof data === 'string' ? data : JSON.stringify(data);
    return this.hub.sendC2d(this.deviceId, { data: body, ...(messageId ? { messageId } : {}) });
  }

  d2c(kind?: string, since?: number): D2cMessage[] {
    return this.hub.d2c({ deviceId: this.deviceId, since }).filter((m) => kind === undefined || m.properties['iot-agent-message'] === kind);
  }

  /** Command results (D2C, iot-agent-message=command-result): all of them, or those for one correlation id. */
  results(correlationId?: string): CommandResultMessage[] {
    return this.d2c('command-result').filter((m) => correlationId === undefined || m.systemProperties.cid === correlationId)
      .map((m) => commandResult(m.body.toString('utf8')));
  }

  async waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
      await new Promise((r) => setTimeout(r, 100));
    }
    const agent = this.agents.at(-1);
    throw new Error(`${what}: not within ${timeoutMs} ms${agent ? `\n${agent.lines.slice(-15).join('\n')}` : ''}`);
  }

  async reported(): Promise<Record<string, unknown>> {
    const { responseBody } = await this.service.registry.getTwin(this.deviceId);
    return (responseBody as unknown as { properties: { reported: Record<string, unknown> } }).properties.reported;
  }

  async stopAgents(): Promise<void> {
    await Promise.all(this.agents.splice(0).map((a) => a.stop()));
  }

  async stop(): Promise<void> {
    for (const agent of this.agents.splice(0)) agent.kill();
    await this.cloud.stop();
    await this.swtpm.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function commandResult(text: string): CommandResultMessage {
  const body = parseObject(text, 'a command-result message');
  const { status, phase, command } = body;
  if (typeof status !== 'number' || typeof phase !== 'string' || typeof command !== 'string') {
    throw new Error(`a command-result message without a numeric status, a phase and a command: ${text}`);
  }
  return { ...body, status, phase, command, payload: body.payload };
}
