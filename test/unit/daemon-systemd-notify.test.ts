import { describe, expect, it } from 'vitest';
import { statusText } from '../../agent/daemon/systemd-notify.js';

describe('STATUS= text for systemd', () => {
  it('keeps printable text, other languages included', () => {
    expect(statusText('ready: board-17 on hub-a.example (Gerät: grün)')).toBe('ready: board-17 on hub-a.example (Gerät: grün)');
  });

  it('turns each run of control characters, line and paragraph separators into one space', () => {
    expect(statusText('a\r\nWATCHDOG=1\u0000\u0001b\u007f\u0080\u009fc\u2028\u2029d\u001f')).toBe('a WATCHDOG=1 b c d ');
    expect(statusText('\u00a0kept')).toBe('\u00a0kept');
  });

  it('is at most 1024 characters', () => {
    expect(statusText('x'.repeat(5_000))).toBe('x'.repeat(1024));
    expect(statusText('x'.repeat(1024))).toHaveLength(1024);
  });
});
