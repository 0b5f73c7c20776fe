import path from 'node:path';
import { AgentError } from '../lib/errors.js';
import type { ProvisionStep } from '../provisioning/flow.js';
import type { HubProtocol } from '../retry/hub-protocol.js';
import type { QueueFacts } from '../telemetry/disk-queue.js';
import type { TpmReport } from '../tpm/tpm-report.js';

/**
 * The daemon's local control socket: newline-delimited JSON, one request per connection.
 * `{"op":"status"}` answers one line; `{"op":"provision","force":true}` answers with one
 * line per step as it happens (`{"event":"step",...}`) and a last line `{"event":"done",...}`
 * or `{"event":"error",...}`; `{"op":"tpm"}` answers what the daemon's TPM holds (for
 * `check` and `tpm info`, which must not open a second connection to a TPM that serves
 * one), `{"op":"support"}` the daemon's live state for a support bundle. Owner-only
 * permissions: only root and the agent's user reach it. Both ends check every line as a
 * closed schema (agent/control/wire.ts).
 */
export const SOCKET_NAME = 'control.sock';

/** A Unix socket's path holds 108 bytes with its final NUL; Node binds and connects to a longer one cut short, elsewhere. */
const MAX_SOCKET_PATH_BYTES = 107;

export function controlSocketPath(runtimeDir: string): string {
  const file = path.join(runtimeDir, SOCKET_NAME);
  if (Buffer.byteLength(file) > MAX_SOCKET_PATH_BYTES) {
    throw new AgentError(`the control socket ${file} is longer than the ${MAX_SOCKET_PATH_BYTES} bytes a Unix socket's path can hold`, {
      hint: 'choose a shorter runtimeDir in the config',
    });
  }
  return file;
}

export const DAEMON_STATES = ['starting', 'provisioning', 'connecting', 'ready', 'degraded', 'stopping'] as const;
export type DaemonState = (typeof DAEMON_STATES)[number];

export interface DaemonStatus {
  state: DaemonState;
  reason: string | undefined;
  since: string;
  pid: number;
  registrationId: string | undefined;
  deviceId: string | undefined;
  assignedHub: string | undefined;
  idScope: string | undefined;
  /** How the hub session travels (connected, or being tried): MQTT on 8883 or MQTT over WebSockets on 443; null before the first attempt. */
  hubProtocol: HubProtocol | null;
  /** Why that protocol (network.hubProtocol, a proxy, what auto learnt). */
  hubProtocolReason: string | null;
  /** The HTTPS proxy in force, without credentials (`http://***@host:port`), and where it is set; null: none. */
  proxy: string | null;
  /** The last failure, with its time (kept after recovery, for the record). */
  lastError: { message: string; at: string } | null;
  /** Failures since the last connection to the hub. */
  consecutiveFailures: number;
  /** When the next attempt (connect, DPS or the flow) is due (ISO 8601), null when nothing waits. */
  nextRetryAt: string | null;
  /** DPS is not asked again before this (rate limit, Retry-After, operator hold). */
  dpsHeldOffUntil: string | null;
  /** DPS will not assign this device until an operator acts (disabled, failed, refused). */
  operatorMustAct: boolean;
  /** The telemetry disk queue: undelivered messages, drops, and the oldest message's age. */
  telemetryQueue: QueueFacts | null;
  /** The service's clock minus this device's, in ms, from DPS's and the hub's Date headers; null until measured. */
  clockOffsetMs: number | null;
}

/** The daemon's live state for a support bundle. */
export interface DaemonSnapshot {
  status: DaemonStatus;
  logLevel: string;
  /** The in-memory ring of recent log lines, oldest first. */
  recentLog: string[];
  /** C2D command ids remembered as executed. */
  executedCommands: number | null;
}

export type ControlRequest =
  | { op: 'status' }
  | { op: 'provision'; force: boolean }
  | { op: 'tpm' }
  | { op: 'support' };
export type ControlOp = ControlRequest['op'];

export type ControlReply =
  | ({ event: 'status' } & DaemonStatus)
  | { event: 'step'; step: ProvisionStep; message: string }
  | ({ event: 'done' } & DaemonStatus)
  | ({ event: 'tpm'; pid: number } & TpmReport)
  | ({ event: 'support' } & DaemonSnapshot)
  | { event: 'error'; message: string; step?: ProvisionStep };
export type ControlEvent = ControlReply['event'];
