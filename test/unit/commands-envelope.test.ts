import { describe, expect, it } from 'vitest';
import { EnvelopeError, MAX_ENVELOPE_BYTES, parseEnvelope } from '../../agent/commands/envelope.js';

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

  it('takes an envelope of exactly 64 KiB', () => {
    const head = '{"command":"ping","id":"big","args":"';
    const body = Buffer.from(`${head}${'x'.repeat(MAX_ENVELOPE_BYTES - head.length - 2)}"}`);
    expect(body.length).toBe(MAX_ENVELOPE_BYTES);
    expect(parseEnvelope(body)).toMatchObject({ command: 'ping', id: 'big' });
    expect(errorOf(Buffer.concat([body, Buffer.from(' ')]))).toMatchObject({ field: 'body', reason: 'too large (65537 bytes; at most 65536)' });
  });

  it('takes ids and command names of 1 to 128 allowed characters, and no more', () => {
    const id = `A-z_0.9:${'i'.repeat(120)}`;
    const command = `Az_0.9-${'c'.repeat(121)}`;
    expect(parseEnvelope(Buffer.from(JSON.stringify({ command, id })))).toEqual({ command, args: undefined, id });
    expect(parseEnvelope(Buffer.from('{"command":"p","id":"1"}'))).toEqual({ command: 'p', args: undefined, id: '1' });
    expect(errorOf(JSON.stringify({ command: 'ping', id: `${id}x` }))).toMatchObject({ field: 'id' });
    expect(errorOf(JSON.stringify({ command: `${command}x`, id: 'x' }))).toMatchObject({ field: 'command', id: 'x' });
    expect(errorOf('{"command":"ping","id":""}')).toMatchObject({ field: 'id' });
    expect(errorOf('{"command":"","id":"x"}')).toMatchObject({ field: 'command' });
  });

  it.each([['a leading', ' x'], ['a trailing', 'x\n'], ['an inner', 'a/b']])('refuses an id with %s character outside the set', (_where, id) => {
    expect(errorOf(JSON.stringify({ command: 'ping', id }))).toMatchObject({ field: 'id' });
  });

  it.each([['a leading', '/ping'], ['a trailing', 'ping:'], ['a colon', 'a:b']])('refuses a command name with %s character outside the set', (_where, command) => {
    expect(errorOf(JSON.stringify({ command, id: 'x' }))).toMatchObject({ field: 'command', reason: 'expected 1 to 128 of A-Z a-z 0-9 _ . -', id: 'x' });
  });

  it('keeps the id of an envelope refused for an unknown key, and has none for a refused id', () => {
    expect(errorOf('{"command":"ping","id":"op-3","extra":1}')).toEqual({ field: 'body', reason: 'unknown key; expected only command, args, id', id: 'op-3' });
    expect(errorOf('{"command":"ping","id":"a b"}')).not.toHaveProperty('id');
    expect(errorOf('null')).toEqual({ field: 'body', reason: 'expected a JSON object {"command", "args", "id"}, got null' });
  });

  it('passes any JSON arguments on for the command\'s own schema to judge', () => {
    expect(parseEnvelope(Buffer.from('{"args":[1,{"a":null}],"id":"x","command":"ping"}'))).toEqual({ command: 'ping', args: [1, { a: null }], id: 'x' });
  });

  it('says what is wrong in its message too', () => {
    expect(() => parseEnvelope(Buffer.from('{"command":"ping"}'))).toThrow('id: is required (1 to 128 of A-Z a-z 0-9 . _ : -)');
  });
});
