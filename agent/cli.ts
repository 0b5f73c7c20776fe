#!/usr/bin/env node
import { Command, CommanderError, type OptionValues } from 'commander';
import { runAction } from './cli/run-action.js';
import type { OverrideOptions } from './runtime-overrides.js';
import { agentVersion } from './version.js';

// Each command loads its implementation on use: start-up is felt on slow boards, and
// the Azure SDK alone costs hundreds of milliseconds to load.

const version = agentVersion();

/**
 * The environment's overrides (IOT_AGENT_TPM and the test knobs), parsed here once for the
 * command that runs and handed to it: no module below reads those variables.
 */
const overrides = async (options?: OverrideOptions) => (await import('./runtime-overrides.js')).runtimeOverrides(process.env, options);

/** A command's action: its module loads on use and is given the options, the global ones included. */
const lazy = (load: (options: OptionValues, command: Command) => Promise<number | void>) =>
  (_options: unknown, command: Command) => runAction(() => load(command.optsWithGlobals(), command));

const program = new Command('iot-agent')
  .description('Device agent for Linux IoT boards: hardening, TPM identity, Azure IoT Hub provisioning and commands')
  .version(version)
  .option('--config <path>', 'config file (default /etc/iot-agent/config.yaml)')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

program
  .command('check')
  .description('is this device ready? config, TPM, identity key, clock, DNS and TLS to DPS and hub, state; exit 1 if any fails')
  .option('--json', 'print one JSON object: {"checks":[{"id","status","message","hint"?}]}')
  .action(lazy(async (options) => (await import('./cli/check.js')).check(options, await overrides({ tpmAsGiven: true }))));

program
  .command('run')
  .description('run the agent: provision with DPS when needed, keep the IoT Hub session healthy (systemd starts this)')
  .action(lazy(async (options) => (await import('./cli/run.js')).run(options, await overrides())));

program
  .command('provision')
  .description('register with DPS now, through the running daemon or directly, showing each step')
  .option('--force', 'register again even when a valid assignment is cached (the daemon always re-registers)')
  .option('--json', 'print one JSON object at the end')
  .action(lazy(async (options) => (await import('./cli/provision.js')).provision(options, await overrides())));

program
  .command('status')
  .description("the agent's state, registration id, device id and hub, whether or not the daemon runs")
  .option('--json', 'print one JSON object')
  .action(lazy(async (options) => (await import('./cli/status.js')).status(options)));

program
  .command('support-bundle')
  .description('everything support needs in one .tar.gz (status, check, TPM facts, config, journal, hardening, network), secrets removed')
  .option('--output <dir>', 'where to write iot-agent-support-<hostname>-<UTC time>.tar.gz (default: the current directory)')
  .option('--since <duration>', 'journal entries from this long ago: 24h, 90m, 2d (default 24h)')
  .option('--json', 'print one JSON object: {"path","bytes","durationMs","daemon","collectors"}')
  .action(lazy(async (options) => (await import('./cli/support-bundle.js')).supportBundle(options, await overrides({ tpmAsGiven: true }))));

const tpm = program.command('tpm').description("inspect the board's TPM 2.0");
tpm
  .command('info')
  .description('show the registration id, EK and SRK (what a DPS enrollment needs), identity key and TPM facts')
  .option('--tpm <transport>', 'TPM transport: device:/dev/tpmrm0, swtpm:host=H,port=P or mssim:host=H,port=P (env IOT_AGENT_TPM)')
  .option('--registration-id <id>', 'use this registration id instead of the one derived from the EK')
  .option('--json', 'print one JSON object')
  .action(lazy(async (options, command) => (await import('./cli/tpm-info.js')).tpmInfo(options,
    await overrides({ tpmAsGiven: command.opts<{ tpm?: string }>().tpm !== undefined }))));

const harden = program.command('harden').description('hardening profiles: firewall, IPv6, USB and network sysctls');
const collect = (value: string, previous: string[]) => [...previous, value];
const hardenOptions = (command: Command) => command
  .option('--json', 'print one JSON object')
  .option('--root <dir>', 'root for /etc and /sys (a prepared tree for tests)', '/')
  .option('--state-dir <dir>', 'snapshots and records (default <root>/var/lib/iot-agent-hardening)')
  .option('--backend <auto|nft|legacy>', 'iptables implementation', 'auto')
  .option('--netns <name>', 'run firewall and sysctl commands inside this network namespace (QA)');
const measureHelp = 'measure what is left in force into this TPM (default: tpm.transport of the config; with --root, none unless given)';
const hardenCommand = (name: string, description: string) => hardenOptions(harden
  .command(name)
  .description(description)
  .option('--profile <name|path>', 'built-in (baseline, strict), site profile in /etc/iot-agent/profiles, or a YAML file'));
hardenCommand('plan', 'print exactly what apply would do; changes nothing')
  .action(lazy(async (options) => (await import('./cli/harden.js')).hardenPlan(options)));
hardenCommand('apply', 'apply a profile atomically, keeping a snapshot to roll back to')
  .option('--confirm-timeout <seconds>', 'roll back by itself unless every --confirm-host answers a TLS handshake in time')
  .option('--confirm-host <host:port>', 'hub or DPS endpoint that must stay reachable (repeatable)', collect, [])
  .option('--request <file>', 'the agent\'s request (iot-agent-harden-apply@.service): confirm targets and timeout, checked as a closed schema')
  .option('--boot', 'boot path: re-apply the recorded profile, or the last known good one after an interrupted change')
  .option('--tpm <transport>', measureHelp)
  .action(lazy(async (options) => (await import('./cli/harden.js')).hardenApply(options)));
hardenCommand('verify', 'compare the live state with the applied profile; exit 1 on drift')
  .action(lazy(async (options) => (await import('./cli/harden.js')).hardenVerify(options)));
hardenCommand('rollback', 'restore the state from before the last apply')
  .option('--tpm <transport>', measureHelp)
  .action(lazy(async (options) => (await import('./cli/harden.js')).hardenRollback(options)));
hardenOptions(harden
  .command('guard')
  .description('after boot: keep a newly applied profile once the hub answers, or revert to the last known good one after the grace time')
  .option('--grace <seconds>', 'how long the hub may stay unreachable (default: hardening.bootGraceSeconds in the config, 300)')
  .option('--confirm-host <host:port>', 'endpoint that must answer instead of the configured hub or DPS (repeatable)', collect, [])
  .option('--tpm <transport>', measureHelp))
  .action(lazy(async (options) => (await import('./cli/harden.js')).hardenGuard(options)));

try {
  await program.parseAsync();
} catch (err) {
  // Usage errors were already printed by commander; --help and --version end here too.
  process.exit(err instanceof CommanderError && err.exitCode === 0 ? 0 : 2);
}
