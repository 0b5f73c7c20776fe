import { readFile } from 'node:fs/promises';
import os from 'node:os';

/**
 * The small, stable description of the device in the twin's reported properties, from
 * Node's os module and /etc/os-release: read once per process, with nothing loaded for it.
 */
export async function readSystemSummary(osRelease = '/etc/os-release'): Promise<Record<string, unknown>> {
  const release = parseOsRelease(await readFile(osRelease, 'utf8').catch(() => ''));
  const cpus = os.cpus();
  const name = release.NAME ?? release.ID;
  return {
    os: name ? [name, release.VERSION_ID].filter(Boolean).join(' ') : os.type(),
    kernel: os.release(),
    arch: os.arch(),
    hostname: os.hostname(),
    cpu: cpus[0]?.model.trim() || null,
    cores: cpus.length,
    memoryBytes: os.totalmem(),
  };
}

/**
 * os-release(5): one KEY=value per line, the value possibly in single or double quotes
 * (with backslash escapes inside double quotes); comments and blank lines ignored. Lines
 * that are none of these are skipped, never fatal.
 */
export function parseOsRelease(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!match) continue;
    const value = unquote(match[2]!);
    if (value !== undefined) fields[match[1]!] = value;
  }
  return fields;
}

function unquote(raw: string): string | undefined {
  if (raw.startsWith('"')) {
    if (raw.length < 2 || !raw.endsWith('"')) return undefined;
    return raw.slice(1, -1).replace(/\\(["\\$`])/g, '$1');
  }
  if (raw.startsWith("'")) return raw.length >= 2 && raw.endsWith("'") ? raw.slice(1, -1) : undefined;
  return /^[^\s"'`\\$]*$/.test(raw) ? raw : undefined;
}
