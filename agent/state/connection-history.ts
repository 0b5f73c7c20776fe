import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { PolicyHistory } from '../retry/connection-policy.js';
import { writeFileAtomic } from '../lib/atomic-file.js';

const FILE = 'connection-history.json';
const KIND = 'iot-agent/connection-history';

/**
 * What the connection policy must remember across restarts: when DPS last completed a
 * registration. Without it a board restarted by its watchdog would re-provision at every
 * start. An unreadable file is an empty history (the worst case is one registration).
 */
export async function readConnectionHistory(stateDir: string): Promise<PolicyHistory> {
  try {
    // JSON null throws here and lands in the catch; any other value that is no object has no kind.
    const doc = JSON.parse(await readFile(path.join(stateDir, FILE), 'utf8')) as { kind?: unknown; lastRegistrationAt?: unknown };
    if (doc.kind !== KIND) return {};
    const at = Date.parse(String(doc.lastRegistrationAt));
    return Number.isNaN(at) ? {} : { lastRegistrationAt: at };
  } catch {
    return {};
  }
}

export async function writeConnectionHistory(stateDir: string, history: PolicyHistory): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const doc = {
    kind: KIND,
    ...(history.lastRegistrationAt === undefined ? {} : { lastRegistrationAt: new Date(history.lastRegistrationAt).toISOString() }),
  };
  await writeFileAtomic(path.join(stateDir, FILE), `${JSON.stringify(doc)}\n`, 0o600);
}
