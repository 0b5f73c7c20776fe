import { describe, expect, it } from 'vitest';
import {
  clip, editDistance, isMapping, kindOf, nearestName, NETNS_NAME, NOT_JSON, parseJson, PROFILE_LABEL, PROFILE_NAME, quoted, shown, yamlKindOf,
} from '../../agent/lib/validate.js';

describe('names every layer agrees on', () => {
  it.each(['strict', 'board-2', 'site_profile', 'A', '9lives', 'x'.repeat(64)])('%j is a profile name', (name) => {
    expect(PROFILE_NAME.test(name)).toBe(true);
  });

  it.each(['', '-strict', '_x', '.', '..', '../etc/passwd', 'a/b', 'strict.yaml', 'has space', 'x'.repeat(65), 'strict\n', 'é'])(
    '%j is not a profile name (never a path, an option or a file name)', (name) => {
      expect(PROFILE_NAME.test(name)).toBe(false);
    });

  it('lets a profile call itself by a name with dots, which never names a file', () => {
    expect(PROFILE_LABEL.test('site.v2')).toBe(true);
    expect(PROFILE_NAME.test('site.v2')).toBe(false);
    expect(PROFILE_LABEL.test('.hidden')).toBe(false);
    expect(PROFILE_LABEL.test('a/b')).toBe(false);
  });

  it.each([['iot-test-1', true], ['ns.a_b', true], ['', false], ['-n', false], ['a/b', false], ['../x', false], ['a b', false], ['x'.repeat(65), false]])(
    'netns name %j: %s', (name, ok) => {
      expect(NETNS_NAME.test(name)).toBe(ok);
    });
});

describe('describing a value in an error', () => {
  it.each([
    [null, 'null'], [[1], 'an array'], [{}, 'an object'], [7, 'the number 7'], [2.5, 'the number 2.5'],
    [1 / 3, 'the number 0.3333333333333333'], ['secret', 'a string of 6 characters'], [true, 'a boolean'], [undefined, 'a undefined'],
  ])('a value from the cloud, %j, by its kind and never its text: %s', (value, text) => {
    expect(kindOf(value)).toBe(text);
  });

  it('clips untrusted text to printable characters and a length', () => {
    expect(clip('ping')).toBe('ping');
    expect(clip('a\nb\u0000c')).toBe('a?b?c');
    expect(clip('x'.repeat(100))).toBe(`${'x'.repeat(61)}...`);
    expect(clip('abcdef', 5)).toBe('ab...');
    expect(clip('abcde', 5)).toBe('abcde');
    expect(clip('')).toBe('');
  });

  it('shows a local file\'s value as JSON, cut short', () => {
    expect(shown('info')).toBe('"info"');
    expect(shown(5)).toBe('5');
    expect(shown(undefined)).toBe('undefined');
    expect([shown(NaN), shown(Infinity), shown(-Infinity), shown(null)]).toEqual(['NaN', 'Infinity', '-Infinity', 'null']);
    expect(shown('x'.repeat(100))).toBe(`"${'x'.repeat(56)}...`);
    expect(shown('x'.repeat(100))).toHaveLength(60);
    expect(shown('x'.repeat(58))).toHaveLength(60);
  });

  it.each([[null, 'nothing'], [undefined, 'nothing'], [[1], 'a list'], [{ a: 1 }, 'a mapping'], [5, 'number 5'], ['tcp', 'string "tcp"'], [false, 'boolean false']])(
    'a YAML value %j in YAML\'s words: %s', (value, text) => {
      expect(yamlKindOf(value)).toBe(text);
    });

  it('quotes and escapes a value, never flooding a line', () => {
    expect(quoted('a"b\n')).toBe('"a\\"b\\n"');
    expect(quoted(42)).toBe('"42"');
    expect(quoted('x'.repeat(100), 10)).toBe(`"${'x'.repeat(10)}…"`);
  });
});

describe('the name that was probably meant', () => {
  const known = ['provisioning', 'telemetry', 'log'];

  it('finds a name that differs by case or by up to two edits', () => {
    expect(nearestName('Telemetry', known)).toBe('telemetry');
    expect(nearestName('provisoning', known)).toBe('provisioning');
    expect(nearestName('telemtry', known)).toBe('telemetry');
    expect(nearestName('lg', known)).toBe('log');
    expect(nearestName('logs', known)).toBe('log');
  });

  it('finds none further away', () => {
    expect(nearestName('network', known)).toBeUndefined();
    expect(nearestName('tele', known)).toBeUndefined();
  });

  it.each([['', '', 0], ['a', '', 1], ['', 'abc', 3], ['kitten', 'sitting', 3], ['flaw', 'lawn', 2], ['abc', 'abc', 0], ['abc', 'acb', 2]])(
    'counts the edits from %j to %j: %i', (a, b, n) => {
      expect(editDistance(a, b)).toBe(n);
      expect(editDistance(b, a)).toBe(n);
    });
});

describe('reading JSON text', () => {
  it.each([['{"a":1}', { a: 1 }], ['[1,2]', [1, 2]], ['null', null], [' 7 ', 7], ['"x"', 'x']])('gives the value of %j', (text, value) => {
    expect(parseJson(text)).toEqual(value);
  });

  it.each(['', ' ', '{', '{"a":1', "{'a':1}", 'undefined', 'NaN', '{"a":1}\n{"b":2}'])('gives NOT_JSON for %j, never a throw', (text) => {
    expect(parseJson(text)).toBe(NOT_JSON);
  });

  it('tells a mapping from every other JSON or YAML value', () => {
    expect(isMapping({})).toBe(true);
    expect(isMapping({ a: [1] })).toBe(true);
    for (const other of [null, undefined, [], [{}], 'a', 1, true, NOT_JSON]) expect(isMapping(other)).toBe(false);
  });
});
