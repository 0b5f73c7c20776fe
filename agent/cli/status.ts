import { statusReport, type StatusReport } from '../control/status-report.js';
import { loadConfig } from '../config.js';

/** `iot-agent status`: from the running daemon, or from the state files when it does not run. */
export async function status(options: { config?: string; json?: boolean }): Promise<number> {
  const report = await statusReport(await loadConfig(options.config));
  process.stdout.write(options.json ? `${JSON.stringify(report)}\n` : formatStatus(report));
  return 0;
}

const PROTOCOLS: Record<string, string> = { mqtt: 'MQTT over TLS (port 8883)', 'mqtt-ws': 'MQTT over WebSockets (port 443)' };

export function formatStatus(report: StatusReport, now = new Date()): string {
  const running = report.daemon === 'running';
  const queue = report.telemetryQueue;
  const rows: [string, string | undefined][] = [
    ['State', report.reason ? `${report.state} (${report.reason})` : report.state],
    ['Since', report.since],
    ['Daemon', running ? `running (pid ${report.pid})` : 'not running'],
    ['Registration id', report.registrationId],
    ['Device id', report.deviceId],
    ['Hub', report.assignedHub],
    ['ID scope', report.idScope],
    ['Hub protocol', report.hubProtocol === null ? undefined
      : `${PROTOCOLS[report.hubProtocol] ?? report.hubProtocol}${report.hubProtocolReason ? ` (${report.hubProtocolReason})` : ''}`],
    ['Proxy', report.proxy ?? (running ? 'none' : undefined)],
    ['Last error', report.lastError ? `${report.lastError.message} (${report.lastError.at}, ${ago(report.lastError.at, now)})` : running ? 'none' : undefined],
    ['Failures in a row', report.consecutiveFailures === null ? undefined : String(report.consecutiveFailures)],
    ['Next retry', report.nextRetryAt ? `${report.nextRetryAt} (${until(report.nextRetryAt, now)})` : running ? 'none pending' : undefined],
    ['Telemetry queue', queue ? `${queue.depth} waiting${queue.oldestAgeSeconds === null ? '' : `, oldest ${duration(queue.oldestAgeSeconds)} old`}, ${queue.dropped} dropped` : undefined],
    ['DPS', dpsRow(report, now)],
    ['Clock offset', report.clockOffsetMs === null ? (running ? 'not measured yet' : undefined) : clockRow(report.clockOffsetMs)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v ?? '-'}\n`).join('');
}

function dpsRow(report: StatusReport, now: Date): string | undefined {
  if (report.daemon !== 'running') return undefined;
  const parts = [
    ...(report.operatorMustAct ? ['will not assign this device until an operator acts'] : []),
    ...(report.dpsHeldOffUntil ? [`not asked again before ${report.dpsHeldOffUntil} (${until(report.dpsHeldOffUntil, now)})`] : []),
  ];
  return parts.length ? parts.join('; ') : 'may be asked when needed';
}

/** The measured offset; beyond five minutes the agent signs tokens with the service's time. */
function clockRow(offsetMs: number): string {
  const seconds = Math.round(offsetMs / 1000);
  if (Math.abs(offsetMs) <= 5 * 60_000) return `${seconds} s (service minus device; within 5 min, the local clock is used)`;
  return `${seconds} s (the service is ${seconds < 0 ? 'behind' : 'ahead of'} this device; tokens are signed with its time)`;
}

function ago(iso: string, now: Date): string {
  return `${duration(Math.max(0, Math.round((now.getTime() - Date.parse(iso)) / 1000)))} ago`;
}

function until(iso: string, now: Date): string {
  return `in ${duration(Math.max(0, Math.round((Date.parse(iso) - now.getTime()) / 1000)))}`;
}

/** 42 s, 5 min, 3 h 10 min, 2 d 4 h. */
export function duration(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h${minutes % 60 ? ` ${minutes % 60} min` : ''}`;
  return `${Math.floor(hours / 24)} d${hours % 24 ? ` ${hours % 24} h` : ''}`;
}
