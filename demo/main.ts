/**
 * The demo (`bash scripts/demo.sh`): the real agent, end to end, on this machine. A software
 * TPM and the local stand-in for DPS and IoT Hub play the board's chip and Azure; the agent
 * is the same `iot-agent run` a board runs. Every step says what it does and what came back;
 * whatever the demo starts it stops again, also on Ctrl-C.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startCloud, type LocalCloud } from '../test/cloud/cloud.js';
import { provisioningServiceClient } from '../test/cloud/dps/sdk-clients.js';
import { serviceClients } from '../test/cloud/hub/service-sdk.js';
import { randomLoopbackAddress } from '../test/support/ports.js';
import { SwtpmInstance } from '../test/support/swtpm.js';
import { CLI_PATH, describeMethodAnswer, describeMethodFailure, indent, runCli, say, step, waitForReady } from './narrate.js';

const DEVICE_ID = 'demo-board-1';
const work = mkdtempSync(path.join(tmpdir(), 'iot-agent-demo-'));
let swtpm: SwtpmInstance | undefined;
let cloud: LocalCloud | undefined;
let agent: ChildProcess | undefined;

async function main(): Promise<void> {
  say('iot-agent demo: a board proves its identity with its TPM, gets its IoT Hub from DPS,');
  say('connects, and answers the cloud. Everything runs on this machine; nothing reaches Azure.\n');

  step(1, 'Start a software TPM (swtpm): the board\'s TPM 2.0 chip');
  swtpm = await SwtpmInstance.start();
  say(`swtpm listens on ${swtpm.host}:${swtpm.port}; the agent reaches it as ${swtpm.transport}`);

  step(2, 'Start the local cloud: a Device Provisioning Service (DPS) and an IoT Hub, with their own test CA');
  cloud = await startCloud({ dir: path.join(work, 'cloud'), dpsAddress: randomLoopbackAddress(), hubAddresses: [randomLoopbackAddress()], log: () => undefined });
  const description = cloud.describe();
  say(`DPS  https://${description.provisioningHost} (ID scope ${description.idScope})`);
  say(`Hub  ${description.hubHost} (MQTT over TLS on 8883)`);

  step(3, 'Read the board\'s identity: `iot-agent tpm info` (makes the endorsement key, EK, on first use)');
  const info = await runCli(['tpm', 'info', '--tpm', swtpm.transport, '--json']);
  if (info.code !== 0) throw new Error(`iot-agent tpm info failed: ${info.stderr.trim()}`);
  const tpm = JSON.parse(info.stdout) as { registrationId: string; endorsementKey: string };
  say(`registration id ${tpm.registrationId}`);
  say(`EK ${tpm.endorsementKey.slice(0, 48)}... (${Buffer.from(tpm.endorsementKey, 'base64').length} bytes)`);

  step(4, `Enroll the EK with DPS, as an operator would, through the Azure provisioning service SDK, as device "${DEVICE_ID}"`);
  const dpsService = provisioningServiceClient(description.provisioningServiceConnectionString, cloud.ca);
  await dpsService.createOrUpdateIndividualEnrollment({
    registrationId: tpm.registrationId, deviceId: DEVICE_ID, attestation: { type: 'tpm', tpm: { endorsementKey: tpm.endorsementKey } },
  } as never);
  say('enrolled: DPS will accept only a board that holds this EK');

  step(5, 'Run the agent: `iot-agent run`, the same program systemd starts on a board');
  const configPath = path.join(work, 'config.yaml');
  writeFileSync(configPath, [
    'provisioning:', `  idScope: ${description.idScope}`, `  globalEndpoint: ${description.provisioningHost}`,
    'tpm:', `  transport: ${swtpm.transport}`,
    'tls:', `  extraCaFile: ${description.caCertPath}`,
    `stateDir: ${path.join(work, 'state')}`, `runtimeDir: ${path.join(work, 'run')}`, '',
  ].join('\n'));
  say(`config ${configPath}:`);
  say(indent(`provisioning.idScope: ${description.idScope}\ntpm.transport: ${swtpm.transport}`));
  agent = spawn(process.execPath, [CLI_PATH, '--config', configPath, 'run'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NOTIFY_SOCKET: '' } });
  const started = Date.now();
  const status = await waitForReady(agent, configPath, 60_000);
  say(`the agent is READY after ${((Date.now() - started) / 1000).toFixed(1)} s: device ${String(status.deviceId)} on hub ${String(status.assignedHub)}`);
  say('(it proved its identity to DPS with the TPM, DPS assigned it the hub, and it connected over MQTT)');

  step(6, 'Call the device from the cloud: direct methods through the Azure IoT Hub service SDK (azure-iothub)');
  const { client, registry } = serviceClients(description.hubServiceConnectionString, cloud.ca);
  for (const methodName of ['ping', 'getSystemInfo']) {
    say(`invokeDeviceMethod("${DEVICE_ID}", "${methodName}")`);
    try {
      const answer: { result: unknown } = await client.invokeDeviceMethod(DEVICE_ID, { methodName, payload: {}, responseTimeoutInSeconds: 15 });
      say(indent(describeMethodAnswer(answer.result)));
    } catch (err) {
      say(indent(describeMethodFailure(methodName, err)));
    }
  }

  step(7, 'The device twin: what the agent reported about itself (registry.getTwin)');
  const { responseBody: twin } = await registry.getTwin(DEVICE_ID);
  const reported = { ...(twin.properties?.reported ?? {}) } as Record<string, unknown>;
  delete reported.$metadata;
  const keys = Object.keys(reported).filter((k) => k !== '$version');
  say(keys.length
    ? indent(JSON.stringify(reported, null, 2))
    : indent(`no reported properties yet (twin version ${typeof reported.$version === 'number' ? reported.$version : 1}): this build of the agent reports none`));

  step(8, 'What hardening would do on a board in the field: `iot-agent harden plan --profile strict` (changes nothing)');
  const plan = await runCli(['harden', 'plan', '--profile', 'strict']);
  if (plan.code !== 0) throw new Error(`harden plan failed: ${plan.stderr.trim()}`);
  say(indent(plan.stdout.trimEnd()));

  step(9, 'Clean up: stop the agent, the local cloud and swtpm; remove the demo\'s files');
  await cleanUp();
  say('done. On a board: apt install ./iot-agent_*.deb, set the ID scope, and the service does all of the above at boot.');
}

let cleaning: Promise<void> | undefined;
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    if (agent && agent.exitCode === null && agent.signalCode === null) {
      const exited = new Promise((resolve) => agent!.once('exit', resolve));
      agent.kill('SIGTERM');
      await exited;
    }
    await cloud?.stop().catch(() => undefined);
    await swtpm?.stop().catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`\ndemo: ${signal}, cleaning up\n`);
    void cleanUp().finally(() => process.exit(130));
  });
}

try {
  await main();
  process.exit(0);
} catch (err) {
  process.stderr.write(`\ndemo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  await cleanUp();
  process.exit(1);
}
