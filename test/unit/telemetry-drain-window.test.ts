import { describe, expect, it } from 'vitest';
import { DrainWindow, MAX_IN_FLIGHT, WINDOW_HOLD_MS } from '../../agent/telemetry/drain-window.js';

describe('the drain window', () => {
  it('starts at 50 messages in flight and does not grow past it', () => {
    const window = new DrainWindow();
    expect(window.size).toBe(MAX_IN_FLIGHT);
    expect(MAX_IN_FLIGHT).toBe(50);
    window.delivered(MAX_IN_FLIGHT, 0);
    expect(window.size).toBe(50);
  });

  it('halves on every failed drain, rounding down, and never below one', () => {
    const window = new DrainWindow();
    const sizes = [];
    for (let i = 0; i < 7; i++) {
      window.failed(0);
      sizes.push(window.size);
    }
    expect(sizes).toEqual([25, 12, 6, 3, 1, 1, 1]);
  });

  it('holds the halved size for an hour after the last failure, then grows back by one per batch', () => {
    const window = new DrainWindow();
    const failedAt = 1_000_000;
    window.failed(failedAt);
    window.failed(failedAt + 10);
    expect(window.size).toBe(12);
    window.delivered(12, failedAt + 10 + WINDOW_HOLD_MS - 1);
    expect(window.size).toBe(12);
    window.delivered(12, failedAt + 10 + WINDOW_HOLD_MS);
    expect(window.size).toBe(13);
    window.delivered(13, failedAt + 10 + WINDOW_HOLD_MS + 1);
    expect(window.size).toBe(14);
    expect(WINDOW_HOLD_MS).toBe(3_600_000);
  });

  it('tells a batch that emptied the queue (smaller than the window) from a full one', () => {
    const window = new DrainWindow();
    window.failed(0);
    expect(window.delivered(24, 0)).toBe(true);
    expect(window.delivered(25, 0)).toBe(false);
    // Judged against the window the batch was taken with, before it grows.
    expect(window.delivered(25, WINDOW_HOLD_MS)).toBe(false);
    expect(window.size).toBe(26);
  });
});
