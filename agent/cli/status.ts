import { loadConfig } from '../config.js';
import { DaemonAbsentError, requestDaemon } from '../daemon/control-socket.js';
import { readAssignment } from '../state/assignment-store.js';

/** `iot-agent status`: from the running daemon, or from the state file when it does not run. */
export async function status(options: { config?: string; json?: boolean }): Promise<number> {
  const config = await loadConfig(options.config);
  let report: Record<string, unknown>;
  try {
    report = {};
    for await (const line of requestDaemon(config.runtimeDir, { op: 'status' }, 10_000)) report = line;
    delete report.event;
    report.daemon = 'running';
  } catch (err) {
    if (!(err instanceof DaemonAbsentError)) throw err;
    const stored = await readAssignment(config.stateDir);
    const assignment = stored.status === 'valid' ? stored.assignment : undefined;
    report = {
      state: 'stopped',
      reason: stored.status === 'invalid' ? `state file unusable: ${stored.reason}` : stored.status === 'absent' ? 'not provisioned' : undefined,
      since: assignment?.assignedAt,
      daemon: 'not running',
      registrationId: assignment?.registrationId ?? config.provisioning.registrationId,
      deviceId: assignment?.deviceId,
      assignedHub: assignment?.assignedHub,
      idScope: assignment?.idScope ?? config.provisioning.idScope,
    };
  }
  if (options.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } else {
    const rows: [string, unknown][] = [
      ['State', report.reason ? `${String(report.state)} (${String(report.reason)})` : report.state],
      ['Since', report.since], ['Daemon', report.daemon], ['Registration id', report.registrationId],
      ['Device id', report.deviceId], ['Hub', report.assignedHub], ['ID scope', report.idScope],
    ];
    const width = Math.max(...rows.map(([k]) => k.length));
    process.stdout.write(rows.map(([k, v]) => `${k.padEnd(width)}  ${v === undefined ? '-' : String(v)}\n`).join(''));
  }
  return 0;
}
