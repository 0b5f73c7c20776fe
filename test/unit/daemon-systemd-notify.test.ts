import { afterEach, describe, expect, it, vi } from 'vitest';
import { statusText, SystemdNotifier } from '../../agent/daemon/systemd-notify.js';
import { NotifySocket } from '../support/notify-socket.js';

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

describe('notifications to systemd, through the real systemd-notify to a real notification socket', () => {
  let socket: NotifySocket | undefined;
  let notifier: SystemdNotifier | undefined;
  afterEach(() => {
    notifier?.stopWatchdog();
    socket?.stop();
    vi.unstubAllEnvs();
  });
  const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  const underSystemd = async (env: Record<string, string> = {}) => {
    socket = await NotifySocket.start();
    vi.stubEnv('NOTIFY_SOCKET', socket.path);
    for (const [key, value] of Object.entries(env)) vi.stubEnv(key, value);
    notifier = new SystemdNotifier();
    return { socket, notifier };
  };
  const main = `MAINPID=${process.pid}`;

  it('says ready, with the status as one line, as this process', async () => {
    const { socket, notifier } = await underSystemd();
    notifier.ready('connected to hub-a\nWATCHDOG=1');
    expect(await socket.received(1)).toEqual([`READY=1\nSTATUS=connected to hub-a WATCHDOG=1\n${main}`]);
  });

  it('sends a status alone, and stopping', async () => {
    const { socket, notifier } = await underSystemd();
    notifier.status('offline: retrying in 30 s');
    await socket.received(1);
    notifier.stopping();
    expect(await socket.received(2)).toEqual([`STATUS=offline: retrying in 30 s\n${main}`, `${main}\nSTOPPING=1`]);
  });

  it('sends nothing when started outside systemd, even if a socket appears later', async () => {
    vi.stubEnv('NOTIFY_SOCKET', '');
    const outside = new SystemdNotifier();
    socket = await NotifySocket.start();
    vi.stubEnv('NOTIFY_SOCKET', socket.path);
    vi.stubEnv('WATCHDOG_USEC', '1000000');
    outside.ready('ready');
    outside.status('status');
    outside.stopping();
    outside.startWatchdog(() => true);
    await settle(1_200);
    outside.stopWatchdog();
    expect(socket.messages).toEqual([]);
  });

  it('pets the watchdog at half its period while healthy, and stops when told', async () => {
    const { socket, notifier } = await underSystemd({ WATCHDOG_USEC: '1000000', WATCHDOG_PID: String(process.pid) });
    const started = Date.now();
    notifier.startWatchdog(() => true);
    expect(await socket.received(2)).toEqual([`${main}\nWATCHDOG=1`, `${main}\nWATCHDOG=1`]);
    // Two pets 500 ms apart: not sooner, and not at the whole period's pace (4 s for two).
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(3_500);
    notifier.stopWatchdog();
    const count = socket.messages.length;
    await settle(1_200);
    expect(socket.messages.length).toBeLessThanOrEqual(count + 1); // one may have been on its way
  });

  it('keeps silent while unhealthy, so that systemd restarts the agent', async () => {
    const { socket, notifier } = await underSystemd({ WATCHDOG_USEC: '1000000' });
    let healthy = false;
    notifier.startWatchdog(() => healthy);
    await settle(1_200);
    expect(socket.messages).toEqual([]);
    healthy = true;
    expect(await socket.received(1)).toEqual([`${main}\nWATCHDOG=1`]);
  });

  it('pets no faster than every 500 ms, however short the period', async () => {
    const { socket, notifier } = await underSystemd({ WATCHDOG_USEC: '2000' });
    notifier.startWatchdog(() => true);
    await settle(1_250);
    expect(socket.messages.length).toBeGreaterThanOrEqual(1);
    expect(socket.messages.length).toBeLessThanOrEqual(2);
  });

  it.each([
    ['the watchdog belongs to another process', { WATCHDOG_USEC: '1000000', WATCHDOG_PID: '1' }],
    ['there is no watchdog', {}],
    ['the period is not a number', { WATCHDOG_USEC: 'soon' }],
    ['the period is zero', { WATCHDOG_USEC: '0' }],
    ['the period is negative', { WATCHDOG_USEC: '-1000000' }],
  ])('does not pet when %s', async (_why, env) => {
    const { socket, notifier } = await underSystemd(env);
    notifier.startWatchdog(() => true);
    await settle(1_000);
    expect(socket.messages).toEqual([]);
  });
});
