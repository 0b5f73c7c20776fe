import { describe, expect, it, vi } from 'vitest';
import { AgentError } from '../../agent/lib/errors.js';
import { formatLine, LEVELS, Logger, MAX_KEPT_CHARS } from '../../agent/log/logger.js';

function capture(options: ConstructorParameters<typeof Logger>[0] = {}) {
  const lines: string[] = [];
  const logger = new Logger({ journal: false, now: () => new Date('2026-11-26T00:00:00Z'), write: (l) => lines.push(l), ...options });
  return { logger, lines };
}

describe('structured log lines', () => {
  it('writes one logfmt line per event with time, level and event', () => {
    const { logger, lines } = capture();
    logger.info('state.changed', { from: 'connecting', to: 'ready' });
    expect(lines).toEqual(['time=2026-11-26T00:00:00.000Z level=info event=state.changed from=connecting to=ready\n']);
  });

  it('quotes values with spaces, quotes or equals signs and folds newlines', () => {
    expect(formatLine({ a: 'two words', b: 'x="y"', c: 'line1\nline2', d: '', e: 3, f: null, g: undefined }))
      .toBe('a="two words" b="x=\\"y\\"" c="line1 line2" d="" e=3 f=null');
  });

  it('renders errors with their cause chain and objects as JSON', () => {
    const err = new Error('provisioning failed', { cause: new Error('ECONNREFUSED') });
    expect(formatLine({ err, hub: { host: 'h' } })).toBe(String.raw`err="provisioning failed: ECONNREFUSED" hub="{\"host\":\"h\"}"`);
  });

  it('gives an agent error\'s hint with it: the journal says what to do, not only what failed', () => {
    const err = new AgentError('tls.extraCaFile /etc/ca.pem cannot be read (ENOENT)', { hint: 'install the CA file' });
    expect(formatLine({ err })).toBe('err="tls.extraCaFile /etc/ca.pem cannot be read (ENOENT) (hint: install the CA file)"');
  });

  it('filters by level, and children share level and memory', () => {
    const { logger, lines } = capture({ level: 'warn' });
    const child = logger.child({ component: 'hub' });
    child.info('hidden');
    child.warn('shown');
    logger.setLevel('debug');
    child.debug('now shown');
    expect(lines.map((l) => l.split(' ').slice(1).join(' ').trim())).toEqual([
      'level=warn event=shown component=hub',
      'level=debug event="now shown" component=hub',
    ]);
    expect(logger.recent(1)[0]).toContain('now shown');
  });

  it('prefixes the syslog priority for journald', () => {
    const { logger, lines } = capture({ journal: true });
    logger.error('boom');
    logger.debug('quiet');
    logger.warn('careful');
    expect(lines.map((l) => l.slice(0, 3))).toEqual(['<3>', '<4>']);
  });

  it('keeps a bounded number of recent lines', () => {
    const { logger } = capture({ keep: 3 });
    for (let i = 0; i < 10; i++) logger.info('n', { i });
    expect(logger.recent(100).map((l) => l.split('i=')[1])).toEqual(['7', '8', '9']);
  });

  it('uses journald\'s priorities for its levels', () => {
    expect(LEVELS).toEqual({ debug: 7, info: 6, warn: 4, error: 3 });
  });

  it('writes at info and above unless told otherwise', () => {
    const { logger, lines } = capture();
    logger.debug('hidden');
    logger.info('info');
    logger.warn('warn');
    logger.error('error');
    expect(logger.currentLevel()).toBe('info');
    expect(lines.map((l) => /event=(\S+)/.exec(l)?.[1])).toEqual(['info', 'warn', 'error']);
  });

  it('writes only errors at level error, and everything at debug', () => {
    const { logger, lines } = capture({ level: 'error' });
    logger.warn('w');
    logger.error('e');
    logger.setLevel('debug');
    logger.debug('d');
    expect(lines.map((l) => /event=(\S+)/.exec(l)?.[1])).toEqual(['e', 'd']);
    expect(logger.currentLevel()).toBe('debug');
  });

  it('prefixes lines for journald when JOURNAL_STREAM says stderr goes to the journal', () => {
    const saved = process.env.JOURNAL_STREAM;
    try {
      process.env.JOURNAL_STREAM = '8:12345';
      const journal: string[] = [];
      new Logger({ write: (l) => journal.push(l) }).info('x');
      delete process.env.JOURNAL_STREAM;
      const plain: string[] = [];
      new Logger({ write: (l) => plain.push(l) }).info('x');
      expect(journal[0]).toMatch(/^<6>time=/);
      expect(plain[0]).toMatch(/^time=/);
    } finally {
      if (saved === undefined) delete process.env.JOURNAL_STREAM;
      else process.env.JOURNAL_STREAM = saved;
    }
  });

  it('keeps the last 1000 lines unless told otherwise, and fewer when fewer were written', () => {
    const { logger } = capture();
    expect(logger.recent(5)).toEqual([]);
    for (let i = 0; i < 1005; i++) logger.info('n', { i });
    const all = logger.recent(5000);
    expect(all).toHaveLength(1000);
    expect(all[0]).toContain('i=5');
    expect(logger.recent(2).map((l) => l.split('i=')[1])).toEqual(['1003', '1004']);
    expect(logger.recent(0)).toEqual([]);
  });

  it('keeps recent lines without the journald prefix or the newline', () => {
    const { logger } = capture({ journal: true });
    logger.warn('careful');
    expect(logger.recent(1)).toEqual(['time=2026-11-26T00:00:00.000Z level=warn event=careful']);
  });

  it('adds the fields of every ancestor, the nearest winning, and lets an event\'s own fields win over them', () => {
    const { logger, lines } = capture();
    const grandchild = logger.child({ component: 'hub', deviceId: 'd1' }).child({ component: 'twin' });
    grandchild.info('sent', { deviceId: 'd2' });
    logger.info('plain');
    expect(lines).toEqual([
      'time=2026-11-26T00:00:00.000Z level=info event=sent component=twin deviceId=d2\n',
      'time=2026-11-26T00:00:00.000Z level=info event=plain\n',
    ]);
    expect(grandchild.recent(2)).toEqual(logger.recent(2));
  });

  it('sets the level for the whole family from any child', () => {
    const { logger, lines } = capture();
    const child = logger.child({ c: 1 });
    child.setLevel('warn');
    logger.info('hidden');
    expect(logger.currentLevel()).toBe('warn');
    expect(child.currentLevel()).toBe('warn');
    expect(lines).toEqual([]);
  });

  it('writes to stderr unless told otherwise', () => {
    const written: string[] = [];
    const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => { written.push(chunk.toString()); return true; });
    try {
      new Logger({ journal: false, now: () => new Date('2026-11-26T00:00:00Z') }).error('to.stderr');
    } finally {
      write.mockRestore();
    }
    expect(written).toEqual(['time=2026-11-26T00:00:00.000Z level=error event=to.stderr\n']);
  });

  it.each([
    ['a tab', 'a\tb', '"a\\tb"'],
    ['a backslash', 'C:\\x', '"C:\\\\x"'],
    ['an equals sign', 'a=b', '"a=b"'],
    ['carriage returns and newlines', 'one\r\n\r\ntwo\rthree', '"one two three"'],
    ['nothing to quote', 'plain-text.value:1', 'plain-text.value:1'],
    ['true', true, 'true'],
    ['a list', [1, 'a'], '"[1,\\"a\\"]"'],
    ['a function', () => 1, '"() => 1"'],
    ['a bigint', 10n, '10'],
  ])('writes a value with %s as %s', (_what, value, written) => {
    expect(formatLine({ v: value })).toBe(`v=${written}`);
  });

  it('still writes the line when a value cannot be written as JSON', () => {
    const cycle: Record<string, unknown> = { name: 'loop' };
    cycle.self = cycle;
    const { logger, lines } = capture();
    logger.warn('odd.values', { cycle, counter: { value: 7n } });
    expect(lines).toEqual(['time=2026-11-26T00:00:00.000Z level=warn event=odd.values cycle="[object Object]" counter="[object Object]"\n']);
  });

  it('keeps at most 2 KiB of each recent line, and writes the whole line out', () => {
    const { logger, lines } = capture();
    logger.warn('child.output', { line: 'x'.repeat(10_000) });
    expect(lines[0]!.length).toBeGreaterThan(10_000);
    expect(logger.recent(1)[0]).toHaveLength(MAX_KEPT_CHARS + 3);
    expect(logger.recent(1)[0]!.endsWith('...')).toBe(true);
  });

  it('keeps a line of exactly the kept length whole', () => {
    const { logger } = capture();
    const head = 'time=2026-11-26T00:00:00.000Z level=info event=e m=';
    logger.info('e', { m: 'x'.repeat(MAX_KEPT_CHARS - head.length) });
    expect(logger.recent(1)[0]).toBe(`${head}${'x'.repeat(MAX_KEPT_CHARS - head.length)}`);
  });

  it('clips a kept line before a character that would be cut in two, and keeps one that ends at the limit', () => {
    const { logger } = capture();
    const head = 'time=2026-11-26T00:00:00.000Z level=info event=e m=';
    // The emoji's first half is the last character kept: the whole emoji goes.
    logger.info('e', { m: `${'x'.repeat(MAX_KEPT_CHARS - 1 - head.length)}\u{1F600}tail` });
    expect(logger.recent(1)[0]).toBe(`${head}${'x'.repeat(MAX_KEPT_CHARS - 1 - head.length)}...`);
    // The emoji's second half is the last character kept: the whole emoji stays.
    logger.info('e', { m: `${'x'.repeat(MAX_KEPT_CHARS - 2 - head.length)}\u{1F600}tail` });
    expect(logger.recent(1)[0]).toBe(`${head}${'x'.repeat(MAX_KEPT_CHARS - 2 - head.length)}\u{1F600}...`);
  });

  it('writes numbers as they print, NaN and Infinity included (JSON would say null), and booleans, null and bigints', () => {
    expect(formatLine({ n: -1.5, nan: Number.NaN, inf: -Infinity, t: true, z: null, b: 12n, o: { b: 1n } }))
      .toBe('n=-1.5 nan=NaN inf=-Infinity t=true z=null b=12 o="[object Object]"');
  });
});
