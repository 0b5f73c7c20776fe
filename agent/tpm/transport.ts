import { TPM_CC } from './tss-lib.js';
import { AgentError, ExitCode } from '../lib/errors.js';
import type { TransportSpec } from '../config/transport-spec.js';

/** A way to hand raw TPM 2.0 command buffers to a TPM and get its responses back. */
export interface TpmTransport {
  /** Names the transport in errors and logs, e.g. "swtpm 127.0.0.1:2321". */
  readonly name: string;
  /** Where the TPM is, so that another process can reach the same one. */
  readonly spec: TransportSpec;
  transmit(command: Buffer): Promise<Buffer>;
  /**
   * Lets another process use the TPM for as long as `use` runs: waits for the commands
   * already queued, drops the connection (swtpm serves one at a time), holds later
   * commands back, and reconnects on the first one after `use` has settled.
   */
  lend<T>(use: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface TransportOptions {
  /** Deadline for an ordinary command. */
  commandTimeoutMs?: number;
  /** Deadline for commands that generate keys: a real TPM can take many seconds for RSA-2048. */
  keyGenerationTimeoutMs?: number;
}

export const DEFAULT_COMMAND_TIMEOUT_MS = 8_000;
export const DEFAULT_KEY_GENERATION_TIMEOUT_MS = 90_000;

const KEY_GENERATION_COMMANDS = new Set<number>([TPM_CC.CreatePrimary, TPM_CC.Create, TPM_CC.CreateLoaded]);

/** The TPM could not be reached or did not answer; nothing is known about the command's effect. */
export class TpmUnavailableError extends AgentError {
  static override readonly errorName: string = 'TpmUnavailableError';

  constructor(message: string, options: { cause?: unknown; hint?: string } = {}) {
    super(message, { ...options, exitCode: ExitCode.tpmUnavailable });
  }
}

export const HEADER_SIZE = 10;

export function commandCodeOf(command: Buffer): number {
  return command.length >= HEADER_SIZE ? command.readUInt32BE(6) : 0;
}

export function commandName(command: Buffer): string {
  const name = TPM_CC[commandCodeOf(command)];
  return name ? `TPM2_${name}` : `TPM command 0x${commandCodeOf(command).toString(16)}`;
}

/** Size the response announces in its header, once the header has arrived. */
export function announcedSize(response: Buffer): number | undefined {
  return response.length >= HEADER_SIZE ? response.readUInt32BE(2) : undefined;
}

/**
 * Whether the bytes received so far are a whole response: as many as the header announces,
 * once the header is there. A response announcing less than its own header is whole too, and
 * malformed: waiting would never make it right.
 */
export function isWholeResponse(received: Buffer): boolean {
  return received.length >= (announcedSize(received) ?? Infinity);
}

/**
 * What every transport shares: one command at a time, a deadline per command, and a
 * reset after any failure so that a late answer is never taken for the next command's.
 */
export abstract class SerialTransport implements TpmTransport {
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  protected constructor(
    readonly name: string,
    readonly spec: TransportSpec,
    private readonly options: TransportOptions,
  ) {}

  /** Sends one command and collects its whole response. */
  protected abstract exchange(command: Buffer): Promise<Buffer>;
  /** Drops the connection so that the next command starts on a fresh one. */
  protected abstract reset(): void;

  transmit(command: Buffer): Promise<Buffer> {
    const run = this.queue.then(() => this.transmitNow(command));
    this.queue = run.catch(() => undefined);
    return run;
  }

  lend<T>(use: () => Promise<T>): Promise<T> {
    const run = this.queue.then(() => {
      if (this.closed) throw new TpmUnavailableError(`${this.name}: transport is closed`);
      this.reset();
      return use();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.queue;
    this.reset();
  }

  /**
   * One promise and one timer per command: the answer or the deadline, whichever comes
   * first, settles it; anything but a good answer resets the connection, and what comes
   * after is not news.
   */
  private transmitNow(command: Buffer): Promise<Buffer> {
    if (this.closed) return Promise.reject(new TpmUnavailableError(`${this.name}: transport is closed`));
    const limit = this.timeoutFor(command);
    return new Promise<Buffer>((resolve, reject) => {
      let settled = false;
      const fail = (err: TpmUnavailableError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.reset();
        reject(err);
      };
      const timer = setTimeout(() => fail(new TpmUnavailableError(`${this.name}: no answer to ${commandName(command)} within ${limit} ms`, {
        hint: 'the TPM is busy, hung or not there; check the transport setting and that the TPM (or swtpm) runs',
      })), limit);
      this.exchange(command).then((response) => {
        if (announcedSize(response) !== response.length) {
          fail(new TpmUnavailableError(`${this.name}: malformed response to ${commandName(command)} (${response.length} bytes)`));
        } else {
          clearTimeout(timer);
          resolve(response); // after the deadline this changes nothing: the promise is settled
        }
      }, (err: unknown) => fail(err instanceof TpmUnavailableError ? err
        : new TpmUnavailableError(`${this.name}: ${commandName(command)} failed`, { cause: err, hint: hintFor(err) })));
    });
  }

  private timeoutFor(command: Buffer): number {
    return KEY_GENERATION_COMMANDS.has(commandCodeOf(command))
      ? this.options.keyGenerationTimeoutMs ?? DEFAULT_KEY_GENERATION_TIMEOUT_MS
      : this.options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  }
}

function hintFor(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ECONNREFUSED': return 'nothing listens there: start the TPM simulator (scripts/swtpm.sh start) or fix the port';
    case 'ENOENT': return 'no such device: is the TPM enabled in firmware and its kernel driver loaded?';
    case 'EACCES':
    case 'EPERM': return 'permission denied: run as a member of the tss group (or as root)';
    case 'EBUSY': return 'the raw TPM device is held by another program; use the resource manager /dev/tpmrm0';
    default: return undefined;
  }
}
