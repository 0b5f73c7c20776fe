import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const savedPath = process.env.PATH;
const bins: string[] = [];

/**
 * Shell scripts first on PATH, standing in for system tools a collector runs (journalctl,
 * timedatectl) so that a test decides what they answer. Undone by `restorePath` (afterEach).
 */
export function standInPrograms(programs: Record<string, string>): string {
  const bin = mkdtempSync(path.join(tmpdir(), 'iot-agent-stand-ins-'));
  bins.push(bin);
  for (const [name, script] of Object.entries(programs)) {
    writeFileSync(path.join(bin, name), `#!/bin/sh\n${script}\n`);
    chmodSync(path.join(bin, name), 0o755);
  }
  process.env.PATH = `${bin}:${savedPath}`;
  return bin;
}

export function restorePath(): void {
  process.env.PATH = savedPath;
  for (const bin of bins.splice(0)) rmSync(bin, { recursive: true, force: true });
}
