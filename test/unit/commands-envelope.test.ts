import { describe, expect, it } from 'vitest';
import { EnvelopeError, parseEnvelope } from '../../agent/commands/envelope.js';

function errorOf(body: Buffer | string): { field: string; reason: string; id?: string } {
  try {
    parseEnvelope(Buffer.isBuffer(body) ? body : Buffer.from(body));
  } catch (err) {
    if (err instanceof EnvelopeError) return { field: err.field, reason: err.reason, ...(err.id ? { id: err.id } : {}) };
    throw err;
  }
  throw new Error('parsed');
}

describe('C2D command envelopes', () => {
  it('parses { command, args, id }', () => {
    expect(parseEnvelope(Buffer.from('{"command":"getLogs","args":{"lines":5},"id":"op-1"}'))).toEqual({ command: 'getLogs', args: { lines: 5 }, id: 'op-1' });
    expect(parseEnvelope(Buffer.from('{"command":"ping","id":"a:b.c_d-e"}'))).toEqual({ command: 'ping', args: undefined, id: 'a:b.c_d-e' });
  });

  it.each([
    [Buffer.from([0xff, 0xfe, 0x7b]), 'body', 'not valid UTF-8'],
    ['{"command":', 'body', 'not JSON: expected {"command", "args", "id"}'],
    ['[1,2]', 'body', 'expected a JSON object {"command", "args", "id"}, got an array'],
    ['"ping"', 'body', 'expected a JSON object {"command", "args", "id"}, got a string of 4 characters'],
    ['{"command":"ping"}', 'id', 'is required (1 to 128 of A-Z a-z 0-9 . _ : -)'],
    ['{"command":"ping","id":7}', 'id', 'expected 1 to 128 of A-Z a-z 0-9 . _ : -, got the number 7'],
    ['{"command":"ping","id":"a/b"}', 'id', 'expected 1 to 128 of A-Z a-z 0-9 . _ : -, got a string of 3 characters'],
    ['{"command":7,"id":"x"}', 'command', 'expected a command name, got the number 7'],
    ['{"command":"a b","id":"x"}', 'command', 'expected 1 to 128 of A-Z a-z 0-9 _ . -'],
    ['{"command":"ping","id":"x","extra":1}', 'body', 'unknown key; expected only command, args, id'],
    [Buffer.alloc(70_000, 0x20), 'body', 'too large (70000 bytes; at most 65536)'],
  ])('refuses %s: %s %s', (body, field, reason) => {
    expect(errorOf(body)).toMatchObject({ field, reason });
  });

  it('keeps a valid id on a refused envelope, so its result can be correlated', () => {
    expect(errorOf('{"command":{},"id":"op-9"}')).toMatchObject({ field: 'command', id: 'op-9' });
  });

  it('survives deep nesting', () => {
    expect(errorOf(`{"command":"ping","id":"x","args":${'['.repeat(100_000)}`)).toMatchObject({ field: 'body' });
  });
});
