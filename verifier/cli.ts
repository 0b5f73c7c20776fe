#!/usr/bin/env node
import { homedir } from 'node:os';
import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { ATTESTATION_PCR_RANGE, DEFAULT_ATTESTATION_PCR } from '../agent/config.js';
import { ExitCode, exitCodeOf, oneLine } from '../agent/lib/errors.js';
import { agentVersion } from '../agent/version.js';

/**
 * `iot-agent-verify`: proves, with the board's TPM, which hardening profile it has loaded
 * since boot. Talks to the board through IoT Hub only (azure-iothub). Exit 0 when every
 * check passes, 1 when one fails (or the board cannot be asked), 2 for a usage error.
 */
const program = new Command('iot-agent-verify')
  .description("verify a board's TPM-measured hardening through IoT Hub: bind its attestation key once, then check a fresh quote")
  .version(agentVersion())
  .requiredOption('--device <id>', 'the device id in IoT Hub')
  .option('--hub-connection-string <cs>', 'IoT Hub service connection string (env IOTHUB_CONNECTION_STRING)')
  .option('--ek <file>', "the enrolled EK, to bind: base64 TPM2B_PUBLIC or `iot-agent tpm info --json` output")
  .option('--dps-connection-string <cs>', 'read the enrolled EK from the DPS individual enrollment instead (env DPS_CONNECTION_STRING)')
  .option('--registration-id <id>', "the DPS enrollment's registration id (default: the device's reported one, else the device id)")
  .option('--pcr <n>', "the hardening PCR of the fleet's config, attestation.pcr", pcrNumber, DEFAULT_ATTESTATION_PCR)
  .option('--golden <file>', 'also check PCRs 0-7 against these known-good values')
  .option('--write-golden <file>', "after a passing verification, write the board's PCRs 0-7 as a golden file")
  .option('--bindings <dir>', 'where bound attestation keys are kept (default $XDG_STATE_HOME/iot-agent-verify)')
  .option('--rebind', 'bind the attestation key again (after the board got a new one)')
  .option('--timeout <seconds>', 'how long the board may take to answer a direct method', seconds, 30)
  .option('--json', 'print one JSON object: {"deviceId","ok","checks":[{"id","status","message"}],"posture",...}')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

interface Options {
  device: string;
  hubConnectionString?: string;
  ek?: string;
  dpsConnectionString?: string;
  registrationId?: string;
  pcr: number;
  golden?: string;
  writeGolden?: string;
  bindings?: string;
  rebind?: boolean;
  timeout: number;
  json?: boolean;
}

async function main(options: Options): Promise<number> {
  // Loaded here: --help and usage errors stay fast without the Azure SDK.
  const lib = await import('./index.js');
  const hub = options.hubConnectionString ?? process.env.IOTHUB_CONNECTION_STRING;
  if (!hub) throw new lib.VerifierError('no IoT Hub connection string', { usage: true, hint: 'give --hub-connection-string or set IOTHUB_CONNECTION_STRING' });
  const clients = lib.serviceClientsFrom(hub);
  const hubHost = /HostName=([^;]+)/i.exec(hub)?.[1] ?? 'hub';
  const channel = lib.hubChannel(clients, options.device, options.timeout);
  const dps = options.dpsConnectionString ?? process.env.DPS_CONNECTION_STRING;
  const endorsementKey = options.ek !== undefined
    ? () => lib.endorsementKeyFromFile(options.ek!)
    : dps ? async () => {
      const { ProvisioningServiceClient } = await import('azure-iot-provisioning-service');
      const reported = await channel.reported();
      const registrationId = options.registrationId ?? (typeof reported.registrationId === 'string' ? reported.registrationId : options.device);
      return lib.endorsementKeyFromDps(ProvisioningServiceClient.fromConnectionString(dps), registrationId, options.device);
    } : undefined;
  const verdict = await lib.verifyDevice({
    channel,
    bindings: new lib.FileBindingStore(options.bindings ?? defaultBindingsDir(), hubHost),
    ...(endorsementKey ? { endorsementKey } : {}),
    rebind: options.rebind === true,
    hardeningPcr: options.pcr,
    ...(options.golden ? { golden: await lib.readGolden(options.golden) } : {}),
  });
  if (options.writeGolden && verdict.ok && verdict.pcrValues) await lib.writeGolden(options.writeGolden, verdict.pcrValues);
  process.stdout.write(options.json ? `${JSON.stringify(lib.verdictJson(verdict))}\n` : lib.formatVerdict(verdict));
  return verdict.ok ? ExitCode.ok : ExitCode.failure;
}

function defaultBindingsDir(): string {
  return path.join(process.env.XDG_STATE_HOME || path.join(homedir(), '.local', 'state'), 'iot-agent-verify');
}

function pcrNumber(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < ATTESTATION_PCR_RANGE.min || n > ATTESTATION_PCR_RANGE.max) {
    throw new InvalidArgumentError(`expected a PCR from ${ATTESTATION_PCR_RANGE.min} to ${ATTESTATION_PCR_RANGE.max}`);
  }
  return n;
}

function seconds(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 5 || n > 300) throw new InvalidArgumentError('expected whole seconds from 5 to 300');
  return n;
}

let code: number;
try {
  program.parse();
  code = await main(program.opts<Options>());
} catch (err) {
  if (err instanceof CommanderError) {
    code = err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
  } else {
    process.stderr.write(`iot-agent-verify: ${oneLine(err)}\n`);
    code = exitCodeOf(err);
  }
}
process.exit(code);
