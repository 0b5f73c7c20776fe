import { AgentError, ExitCode } from '../lib/errors.js';
import { isMapping, shown } from '../lib/validate.js';
import type { SerializedError } from './serialized-error.js';

/**
 * What a helper process sends its parent over Node's IPC channel (JSON): any number of
 * progress events, then one outcome. The parent sends one request, whose shape belongs to
 * the helper.
 */
export type ChildMessage =
  | { kind: 'progress'; event: unknown }
  | { kind: 'done'; result: unknown }
  | { kind: 'failed'; error: SerializedError };

/** A message that does not follow the protocol, on either side. */
export class ChildMessageError extends AgentError {
  static override readonly errorName: string = 'ChildMessageError';

  constructor(message: string) {
    super(message, { exitCode: ExitCode.usage });
  }
}

export function parseChildMessage(message: unknown): ChildMessage {
  const record = jsonObject(message, 'the message');
  switch (record.kind) {
    case 'progress':
      return { kind: 'progress', event: record.event };
    case 'done':
      return { kind: 'done', result: record.result };
    case 'failed':
      return { kind: 'failed', error: jsonObject(record.error, 'the error') as unknown as SerializedError };
    default:
      throw new ChildMessageError(`unknown message kind ${shown(record.kind)}`);
  }
}

/** Building blocks for the helpers' own request and result checks. */
export function jsonObject(value: unknown, what: string): Record<string, unknown> {
  if (!isMapping(value)) throw new ChildMessageError(`${what} is not a JSON object`);
  return value;
}

export function onlyKeys(record: Record<string, unknown>, allowed: readonly string[], what: string): void {
  const unknown = Object.keys(record).find((key) => !allowed.includes(key));
  if (unknown !== undefined) throw new ChildMessageError(`unknown field ${JSON.stringify(unknown)} in ${what}`);
}

export function text(value: unknown, key: string, maxLength: number): string {
  if (typeof value !== 'string' || value.length === 0) throw new ChildMessageError(`${key} ${shown(value)} is not a non-empty string`);
  if (value.length > maxLength) throw new ChildMessageError(`${key} is longer than ${maxLength} characters`);
  return value;
}
