import { execFile } from 'node:child_process';
import type { Logger } from '../log/logger.js';

/** The system's normal reboot path. Fixed argv, never a shell. */
export const DEFAULT_REBOOT_ARGV: readonly string[] = ['systemctl', 'reboot'];
const FALLBACK_REBOOT_ARGV: readonly string[] = ['/sbin/reboot'];
export const DEFAULT_REBOOT_DELAY_SECONDS = 5;

/**
 * Runs the reboot program once, after a delay that lets the acknowledgement (and the
 * result message) leave first. Once the program ran it stays pending: the machine is going down.
 * Tests point `argv` at a script that records the call (IOT_AGENT_REBOOT_COMMAND, agent/runtime-overrides.ts).
 */
export class RebootScheduler {
  private scheduled: Promise<void> | undefined;

  constructor(
    private readonly log: Logger,
    private readonly argv: readonly string[] = DEFAULT_REBOOT_ARGV,
    private readonly delaySeconds = DEFAULT_REBOOT_DELAY_SECONDS,
  ) {}

  pending(): boolean {
    return this.scheduled !== undefined;
  }

  schedule(): { delaySeconds: number; done: Promise<void> } {
    // A failed reboot program (not permitted, not found) can be retried by a later command.
    this.scheduled ??= new Promise<void>((resolve) => setTimeout(resolve, this.delaySeconds * 1000)).then(() => this.runProgram())
      .catch((err: unknown) => {
        this.scheduled = undefined;
        throw err;
      });
    return { delaySeconds: this.delaySeconds, done: this.scheduled };
  }

  private async runProgram(): Promise<void> {
    this.log.warn('reboot.starting', { argv: this.argv.join(' ') });
    try {
      await run(this.argv);
    } catch (err) {
      // Boards without systemd: the classic path.
      if (this.argv !== DEFAULT_REBOOT_ARGV || (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await run(FALLBACK_REBOOT_ARGV);
    }
  }
}

function run(argv: readonly string[]): Promise<void> {
  const [file, ...args] = argv;
  return new Promise((resolve, reject) => {
    execFile(file!, args, { timeout: 60_000 }, (err: Error | null, _stdout, stderr) => {
      if (!err) resolve();
      else if ((err as NodeJS.ErrnoException).code === 'ENOENT') reject(err);
      else reject(new Error(`${argv.join(' ')} failed: ${stderr.trim() || err.message}`));
    });
  });
}
