import type { ProvisionStep } from '../provisioning/flow.js';
import type { HubProtocol } from '../retry/hub-protocol.js';
import type { Reading } from '../tpm/tpm-report.js';
import { DAEMON_STATES, type ControlEvent, type ControlOp, type ControlReply, type ControlRequest, type DaemonStatus } from './protocol.js';
import { arrayOf, boolean, integer, literal, nullable, number, object, oneOf, optional, string, WireError, type Shape } from './shape.js';
import { isMapping, NOT_JSON, parseJson } from '../lib/validate.js';

/**
 * The control socket's lines as closed schemas, one per request and reply: what the server
 * accepts and what the client believes. A line that does not fit is refused with the field
 * at fault, never half-read (a daemon and a CLI of different versions meet here after an
 * upgrade that has not restarted the daemon yet).
 */

/** Every member of the union T, listed: a list that misses one, or names another, does not compile. */
function allOf<T extends string>() {
  return <const L extends readonly T[]>(list: L & ([Exclude<T, L[number]>] extends [never] ? unknown : never)): L => list;
}

// Listed here, not imported: a CLI command that asks the daemon must load fast, and provisioning/flow.ts loads the Azure SDK.
const STEPS = allOf<ProvisionStep>()(['tpm', 'challenge', 'activated', 'assigned', 'connected']);
const PROTOCOLS = allOf<HubProtocol>()(['mqtt', 'mqtt-ws']);

const step = oneOf(STEPS);

const daemonStatus = {
  state: oneOf(DAEMON_STATES),
  reason: optional(string),
  since: string,
  pid: integer,
  registrationId: optional(string),
  deviceId: optional(string),
  assignedHub: optional(string),
  idScope: optional(string),
  hubProtocol: nullable(oneOf(PROTOCOLS)),
  hubProtocolReason: nullable(string),
  proxy: nullable(string),
  lastError: nullable(object({ message: string, at: string })),
  consecutiveFailures: integer,
  nextRetryAt: nullable(string),
  dpsHeldOffUntil: nullable(string),
  operatorMustAct: boolean,
  telemetryQueue: nullable(object({ depth: integer, dropped: integer, oldestAgeSeconds: nullable(integer) })),
  clockOffsetMs: nullable(number),
};
const statusShape: Shape<DaemonStatus> = object(daemonStatus);

/** A TPM reading: its value, or why it failed. */
function reading<T>(value: Shape<T>): Shape<Reading<T>> {
  const ok = object({ ok: literal(true), value });
  const failed = object({ ok: literal(false), error: string, refused: boolean, hint: optional(string) });
  return (input, at) => {
    const flag = (input as { ok?: unknown } | null)?.ok;
    if (flag === true) return ok(input, at);
    if (flag === false) return failed(input, at);
    throw new WireError(`${at}.ok`, 'true or false', flag);
  };
}

const tpmReport = {
  transport: string,
  endorsementKey: reading(nullable(string)),
  storageRootKey: reading(nullable(string)),
  identityKey: reading(nullable(object({ type: string }))),
  facts: reading(object({
    manufacturer: string, manufacturerName: string, vendorString: string, firmwareVersion: string, specLevel: string, family: string, revision: string,
  })),
};

const snapshot = { status: statusShape, logLevel: string, recentLog: arrayOf(string), executedCommands: nullable(integer) };

// Typed by the protocol: a field map that misses a field of DaemonStatus, TpmReport or DaemonSnapshot does not compile.
const REPLIES: { [E in ControlEvent]: Shape<Extract<ControlReply, { event: E }>> } = {
  status: object({ event: literal('status'), ...daemonStatus }),
  step: object({ event: literal('step'), step, message: string }),
  done: object({ event: literal('done'), ...daemonStatus }),
  tpm: object({ event: literal('tpm'), pid: integer, ...tpmReport }),
  support: object({ event: literal('support'), ...snapshot }),
  error: object({ event: literal('error'), message: string, step: optional(step) }),
};

const REQUESTS: { [O in ControlOp]: Shape<Extract<ControlRequest, { op: O }>> } = {
  status: object({ op: literal('status') }),
  tpm: object({ op: literal('tpm') }),
  support: object({ op: literal('support') }),
  provision: (value, at) => {
    const { force } = object({ op: literal('provision'), force: optional(boolean) })(value, at);
    return { op: 'provision', force: force === true };
  },
};

/** A request, or a message saying what is wrong with it. */
export function parseRequest(line: string): ControlRequest | string {
  return parseLine<ControlRequest>(line, 'request', 'op', REQUESTS);
}

/** A reply line from the daemon, or a message saying what is wrong with it. */
export function parseReply(line: string): ControlReply | string {
  return parseLine<ControlReply>(line, 'reply', 'event', REPLIES);
}

function parseLine<T>(line: string, what: string, tag: string, shapes: Record<string, Shape<T>>): T | string {
  const value = parseJson(line);
  if (value === NOT_JSON) return `${what} is not JSON`;
  if (!isMapping(value)) return `${what} is not a JSON object`;
  const kind = value[tag];
  const shape = typeof kind === 'string' && Object.hasOwn(shapes, kind) ? shapes[kind] : undefined;
  if (!shape) return `unknown ${tag} ${JSON.stringify(kind)}: expected one of ${Object.keys(shapes).join(', ')}`;
  try {
    return shape(value, kind as string);
  } catch (err) {
    if (err instanceof WireError) return `${what} ${err.message}`;
    throw err;
  }
}
