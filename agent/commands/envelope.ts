import { isMapping, kindOf, NOT_JSON, parseJson } from '../lib/validate.js';

/** A C2D command: `{ "command", "args", "id" }` as UTF-8 JSON. */
export interface Envelope {
  command: string;
  args: unknown;
  id: string;
}

export const MAX_ENVELOPE_BYTES = 64 * 1024;
const ID = /^[A-Za-z0-9._:-]{1,128}$/;
const NAME = /^[A-Za-z0-9_.-]{1,128}$/;

export class EnvelopeError extends Error {
  constructor(readonly field: string, readonly reason: string, readonly id?: string) {
    super(`${field}: ${reason}`);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses a C2D message body; anything but a well-formed envelope is an EnvelopeError. */
export function parseEnvelope(body: Buffer): Envelope {
  if (body.length > MAX_ENVELOPE_BYTES) throw new EnvelopeError('body', `too large (${body.length} bytes; at most ${MAX_ENVELOPE_BYTES})`);
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new EnvelopeError('body', 'not valid UTF-8');
  }
  const value = parseJson(text);
  if (value === NOT_JSON) throw new EnvelopeError('body', 'not JSON: expected {"command", "args", "id"}');
  if (!isMapping(value)) throw new EnvelopeError('body', `expected a JSON object {"command", "args", "id"}, got ${kindOf(value)}`);
  const { command, args, id } = value;
  const goodId = typeof id === 'string' && ID.test(id) ? id : undefined;
  if (id === undefined) throw new EnvelopeError('id', 'is required (1 to 128 of A-Z a-z 0-9 . _ : -)');
  if (!goodId) throw new EnvelopeError('id', `expected 1 to 128 of A-Z a-z 0-9 . _ : -, got ${kindOf(id)}`);
  if (typeof command !== 'string') throw new EnvelopeError('command', `expected a command name, got ${kindOf(command)}`, goodId);
  if (!NAME.test(command)) throw new EnvelopeError('command', 'expected 1 to 128 of A-Z a-z 0-9 _ . -', goodId);
  for (const key of Object.keys(value)) {
    if (!['command', 'args', 'id'].includes(key)) throw new EnvelopeError('body', 'unknown key; expected only command, args, id', goodId);
  }
  return { command, args, id: goodId };
}
