import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { checkConfig } from '../check/config-check.js';
import { DEFAULT_CONFIG_PATH } from '../config.js';
import { REMEMBERED_IDS } from '../commands/executed-ids.js';
import { readAssignment } from '../state/assignment-store.js';
import { inspectQueue, queueFacts } from '../telemetry/disk-queue.js';
import { agentVersion } from '../version.js';
import { keysFromDefaults } from './config-keys.js';
import type { Collector } from './collector.js';
import type { BundleSources } from './sources.js';
import { requireCopy } from '../lib/require-copy.js';

/** Versions of the agent, Node, the OS and kernel, and the SDK packages that speak to Azure. */
export function versionsCollector(): Collector {
  return {
    name: 'versions', reads: 'package versions, /etc/os-release, uname', timeoutMs: 3_000,
    collect: async () => {
      const osRelease = await readFile('/etc/os-release', 'utf8').catch(() => '');
      const field = (key: string) => new RegExp(`^${key}="?([^"\\n]*)"?$`, 'm').exec(osRelease)?.[1];
      return [{
        name: 'versions.json',
        json: {
          agent: agentVersion(), node: process.versions.node, openssl: process.versions.openssl,
          os: field('PRETTY_NAME') ?? null, kernel: os.release(), kernelBuild: os.version(), arch: os.arch(), hostname: os.hostname(),
          packages: sdkVersions(),
        },
      }];
    },
  };
}

/**
 * Each package.json is a module copy (agent/lib/module-copies.ts): the package bundler inlines
 * it, so the .deb (which has no node_modules) reports the versions it was built with.
 */
function sdkVersions(): Record<string, string | null> {
  const versionOf = (load: () => unknown) => {
    try {
      return (load() as { version?: string }).version ?? null;
    } catch {
      return null;
    }
  };
  return {
    'azure-iot-device': versionOf(() => requireCopy(import.meta.url, 'azure-iot-device/package.json')),
    'azure-iot-device-mqtt': versionOf(() => requireCopy(import.meta.url, 'azure-iot-device-mqtt/package.json')),
    'azure-iot-common': versionOf(() => requireCopy(import.meta.url, 'azure-iot-common/package.json')),
    'azure-iot-provisioning-device': versionOf(() => requireCopy(import.meta.url, 'azure-iot-provisioning-device/package.json')),
    'azure-iot-provisioning-device-http': versionOf(() => requireCopy(import.meta.url, 'azure-iot-provisioning-device-http/package.json')),
    'azure-iot-security-tpm': versionOf(() => requireCopy(import.meta.url, 'azure-iot-security-tpm/package.json')),
    'tss.js': versionOf(() => requireCopy(import.meta.url, 'tss.js/package.json')),
  };
}

/** The config as the agent loads it, the file as written, and which keys came from the defaults. */
export function configCollector(sources: BundleSources): Collector {
  const file = sources.configPath ?? DEFAULT_CONFIG_PATH;
  return {
    name: 'config', reads: file, timeoutMs: 3_000,
    collect: async () => {
      const [{ result, config }, text] = await Promise.all([checkConfig(sources.configPath), readFile(file, 'utf8').catch(() => undefined)]);
      return [
        {
          name: 'config.json',
          json: { file, exists: text !== undefined, check: result, loaded: config, fromDefaults: keysFromDefaults(text) },
        },
        ...(text === undefined ? [] : [{ name: 'config.yaml', text }]),
      ];
    },
  };
}

/** What `status --json` says. */
export function statusCollector(sources: BundleSources): Collector {
  return {
    name: 'status', reads: sources.daemon ? 'the running daemon' : 'state files', timeoutMs: 5_000,
    collect: async () => [{ name: 'status.json', json: await sources.status() }],
  };
}

/** What `check --json` says. */
export function checkCollector(sources: BundleSources): Collector {
  return {
    name: 'check', reads: 'config, TPM, clock, state, DNS and TLS to DPS and hub (as iot-agent check)', timeoutMs: 15_000,
    collect: async () => [{ name: 'check.json', json: { checks: await sources.runChecks() } }],
  };
}

/** The TPM's public facts (as `tpm info`, without creating anything); a TPM never hands out private keys. */
export function tpmCollector(sources: BundleSources): Collector {
  return {
    // Reading four public areas and a property group takes well under a second on any TPM.
    name: 'tpm', reads: `TPM ${sources.config.tpm.transport}${sources.daemon ? ' through the running daemon' : ''}`, timeoutMs: 5_000,
    collect: async () => {
      const { report, via } = await sources.readTpm();
      return [{ name: 'tpm.json', json: { ...report, via: via === 'direct' ? 'direct' : `the running daemon (pid ${via.daemonPid})` } }];
    },
  };
}

/** The cached DPS assignment, the telemetry queue's counters and the remembered C2D command ids. */
export function stateCollector(sources: BundleSources): Collector {
  const { stateDir } = sources.config;
  return {
    name: 'state', reads: `${stateDir}: assignment.json, telemetry/, executed-commands.json`, timeoutMs: 5_000,
    collect: async () => {
      const [assignment, queue, executed] = await Promise.all([
        readAssignment(stateDir),
        sources.daemon?.status.telemetryQueue ?? inspectQueue(path.join(stateDir, 'telemetry')).then((q) => (q ? queueFacts(q) : null)),
        sources.daemon?.executedCommands ?? countExecuted(stateDir),
      ]);
      return [{
        name: 'state.json',
        json: { stateDir, assignment, telemetryQueue: queue, executedCommands: { count: executed, remembered: REMEMBERED_IDS } },
      }];
    },
  };
}

async function countExecuted(stateDir: string): Promise<number | string> {
  try {
    const doc = JSON.parse(await readFile(path.join(stateDir, 'executed-commands.json'), 'utf8')) as { entries?: unknown[] };
    return Array.isArray(doc.entries) ? doc.entries.length : 'not an executed-commands document';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 0 : `unreadable (${code ?? 'not JSON'})`;
  }
}
