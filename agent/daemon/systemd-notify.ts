import { execBounded } from '../lib/exec.js';

/**
 * sd_notify without a native module: the systemd-notify program, which waits until the
 * service manager has read the message (so it is attributed to this service). Needs
 * NotifyAccess=all in the unit, since the sender is a child of the agent.
 * Outside systemd (no NOTIFY_SOCKET) every call does nothing.
 */
export class SystemdNotifier {
  private readonly enabled = Boolean(process.env.NOTIFY_SOCKET);
  private watchdogTimer: NodeJS.Timeout | undefined;

  ready(status: string): void {
    this.send(['--ready', `--status=${statusText(status)}`]);
  }

  status(status: string): void {
    this.send([`--status=${statusText(status)}`]);
  }

  stopping(): void {
    this.send(['STOPPING=1']);
  }

  /**
   * Pets the watchdog at half its period (WATCHDOG_USEC) while `healthy()` holds; when it
   * stops holding, systemd sees silence and restarts the agent.
   */
  startWatchdog(healthy: () => boolean): void {
    const usec = Number(process.env.WATCHDOG_USEC);
    const pid = Number(process.env.WATCHDOG_PID);
    if (!this.enabled || !Number.isFinite(usec) || usec <= 0 || (pid && pid !== process.pid)) return;
    const interval = Math.max(500, Math.floor(usec / 1000 / 2));
    this.watchdogTimer = setInterval(() => {
      if (healthy()) this.send(['WATCHDOG=1']);
    }, interval);
    this.watchdogTimer.unref();
  }

  stopWatchdog(): void {
    clearInterval(this.watchdogTimer);
  }

  private send(args: string[]): void {
    if (!this.enabled) return;
    void execBounded(['systemd-notify', `--pid=${process.pid}`, ...args], { timeoutMs: 5_000, maxBytes: 4096 });
  }
}

/**
 * STATUS= text as one line of printable characters. The status names the hub and device id
 * DPS sent, and error text from wherever; systemd reads the datagram line by line
 * (NotifyAccess=all), so a newline would let that text add WATCHDOG=, MAINPID= or READY=.
 */
export function statusText(text: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').slice(0, 1024);
}
