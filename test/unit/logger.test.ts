import { describe, expect, it } from 'vitest';
import { formatLine, Logger, MAX_KEPT_CHARS } from '../../agent/log/logger.js';

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

  it('keeps at most 2 KiB of each recent line, and writes the whole line out', () => {
    const { logger, lines } = capture();
    logger.warn('child.output', { line: 'x'.repeat(10_000) });
    expect(lines[0]!.length).toBeGreaterThan(10_000);
    expect(logger.recent(1)[0]).toHaveLength(MAX_KEPT_CHARS + 3);
    expect(logger.recent(1)[0]!.endsWith('...')).toBe(true);
  });
});
