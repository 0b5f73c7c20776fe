import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { agentVersion } from '../version.js';
import { writeArchive } from './archive.js';
import { checkCollector, configCollector, stateCollector, statusCollector, tpmCollector, versionsCollector } from './collect-agent.js';
import { hardeningCollector } from './collect-hardening.js';
import { daemonLogCollector, journalCollector } from './collect-logs.js';
import { networkCollector, timeCollector } from './collect-system.js';
import { runCollector, type Collector, type ManifestEntry } from './collector.js';
import { redactText, redactValue } from './redact.js';
import type { BundleSources } from './sources.js';

export interface Manifest {
  kind: 'iot-agent/support-bundle';
  schema: 1;
  name: string;
  createdAt: string;
  hostname: string;
  agentVersion: string;
  builtBy: BundleSources['builtBy'];
  daemon: 'running' | 'not running';
  since: string;
  durationMs: number;
  redaction: string;
  collectors: ManifestEntry[];
}

export interface BundleResult {
  path: string;
  bytes: number;
  manifest: Manifest;
}

const REDACTION = 'SAS tokens, their signatures, the values of SharedAccessKey and AccountKey, PEM private keys, credentials in URLs '
  + '(user:pass@), bearer tokens, and values of secret-sounding keys (password, secret, token, …key) are replaced by [redacted]';

export function collectorsFor(sources: BundleSources): Collector[] {
  return [
    versionsCollector(), configCollector(sources), statusCollector(sources), checkCollector(sources), tpmCollector(sources),
    stateCollector(sources), journalCollector(sources), daemonLogCollector(sources), hardeningCollector(sources),
    networkCollector(sources), timeCollector(sources),
  ];
}

/** `iot-agent-support-<hostname>-<UTC time>`, e.g. iot-agent-support-board-17-20260315T101500Z. */
export function bundleName(hostname: string, now: Date): string {
  const host = hostname.replace(/[^A-Za-z0-9.-]/g, '_').slice(0, 64) || 'unknown';
  return `iot-agent-support-${host}-${now.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '')}`;
}

/**
 * Builds a support bundle in `outputDir`: every collector runs at once, each within its own
 * deadline, so the whole takes as long as the slowest deadline (15 s) plus packing. Every
 * file is redacted before it is written; the manifest says what each collector read or ran,
 * how long it took, and whether it failed, timed out or found nothing to read.
 */
export async function buildBundle(sources: BundleSources, outputDir: string, now = new Date()): Promise<BundleResult> {
  const started = performance.now();
  const name = bundleName(os.hostname(), now);
  await mkdir(outputDir, { recursive: true, mode: 0o700 });
  const work = await mkdtemp(path.join(os.tmpdir(), 'iot-agent-support-'));
  try {
    const folder = path.join(work, name);
    await mkdir(folder, { mode: 0o700 });
    const results = await Promise.all(collectorsFor(sources).map(runCollector));
    for (const { files } of results) {
      for (const file of files) {
        // JSON is redacted as values (its strings as text), so the file stays valid JSON.
        const content = 'json' in file ? `${JSON.stringify(redactValue(file.json), null, 2)}\n` : redactText(file.text);
        await writePrivate(path.join(folder, file.name), content);
      }
    }
    // Redacted once: the same manifest goes into the archive and back to the caller, whose
    // summary shows collectors' errors on a terminal or in a command's response.
    const manifest = redactValue({
      kind: 'iot-agent/support-bundle', schema: 1, name, createdAt: now.toISOString(), hostname: os.hostname(), agentVersion: agentVersion(),
      builtBy: sources.builtBy, daemon: sources.daemon ? 'running' : 'not running', since: sources.since.toISOString(),
      durationMs: Math.round(performance.now() - started), redaction: REDACTION, collectors: results.map((r) => r.entry),
    } satisfies Manifest) as Manifest;
    await writePrivate(path.join(folder, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    const file = path.join(outputDir, `${name}.tar.gz`);
    await writeArchive(work, name, file);
    return { path: path.resolve(file), bytes: (await stat(file)).size, manifest };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function writePrivate(file: string, content: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file, content, { mode: 0o600 });
}
