import { stat } from 'node:fs/promises';
import type { AgentConfig } from '../config.js';
import { assignmentPath, type StoredAssignment } from '../state/assignment-store.js';
import { fail, pass, warn, type CheckResult } from './result.js';

/** Whether the cached DPS assignment is usable, and whether it belongs to the configured DPS. */
export function describeAssignment(stored: StoredAssignment, config: AgentConfig): CheckResult {
  const file = assignmentPath(config.stateDir);
  switch (stored.status) {
    case 'absent':
      return warn('state', `no cached assignment at ${file}: not provisioned`,
        'the agent provisions with DPS at its first start (needs provisioning.idScope), or run `iot-agent provision`');
    case 'invalid':
      return fail('state', `${file} is not usable: ${stored.reason}`,
        config.provisioning.reprovision === 'never'
          ? 'provisioning.reprovision is never: remove the file and run `iot-agent provision`'
          : 'the agent discards it and re-provisions with DPS at its next start; DPS must be reachable');
  }
  const a = stored.assignment;
  const configured = config.provisioning;
  const fromOtherDps = (configured.idScope !== undefined && configured.idScope !== a.idScope)
    || configured.globalEndpoint !== a.globalEndpoint;
  if (fromOtherDps) {
    return warn('state', `the cached assignment (hub ${a.assignedHub}, device ${a.deviceId}) came from ID scope ${a.idScope} at ${a.globalEndpoint}, `
      + `but the config names ${configured.idScope ?? '(no ID scope)'} at ${configured.globalEndpoint}`,
      'if the DPS changed on purpose, re-provision with `iot-agent provision`; otherwise fix the config');
  }
  return pass('state', `provisioned: hub ${a.assignedHub}, device ${a.deviceId} (assigned ${a.assignedAt})`);
}

export type StateDirInfo =
  | { exists: true; isDirectory: boolean; mode: number; uid: number }
  | { exists: false }
  | { exists: 'unknown'; code: string };

export async function inspectStateDir(dir: string): Promise<StateDirInfo> {
  try {
    const s = await stat(dir);
    return { exists: true, isDirectory: s.isDirectory(), mode: s.mode & 0o7777, uid: s.uid };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    return code === 'ENOENT' ? { exists: false } : { exists: 'unknown', code };
  }
}

/** The assignment decides which hub the device trusts: only its owner may write there. */
export function describeStateDir(dir: string, info: StateDirInfo): CheckResult {
  if (info.exists === false) return pass('state-dir', `${dir} does not exist yet: the agent creates it owner-only (0700)`);
  if (info.exists === 'unknown') {
    return warn('state-dir', `cannot inspect ${dir} (${info.code})`, 'run check as root or as the user the agent runs as');
  }
  if (!info.isDirectory) {
    return fail('state-dir', `${dir} is not a directory: the agent cannot save its assignment`, 'remove it or point stateDir elsewhere');
  }
  const mode = info.mode.toString(8).padStart(4, '0');
  const fix = `chmod 0700 ${dir}`;
  if ((info.mode & 0o002) !== 0) {
    return warn('state-dir', `${dir} is world-writable (mode ${mode}): anyone on the device can replace the cached assignment`, fix);
  }
  if ((info.mode & 0o077) !== 0) {
    return warn('state-dir', `${dir} is open to other users (mode ${mode}); expected owner-only (0700)`, fix);
  }
  return pass('state-dir', `${dir} is owner-only (mode ${mode}, owner uid ${info.uid})`);
}
