import { describeError } from '../lib/errors.js';
import { clip } from '../lib/validate.js';
import { activateAttestationKey } from './activate-attestation-key.js';
import { applyHardening } from './apply-hardening.js';
import { attest } from './attest.js';
import { attestationKey } from './attestation-key.js';
import { CommandFailure, type Command, type CommandContext, type CommandReply } from './command.js';
import { getHardeningStatus } from './get-hardening-status.js';
import { getLogs } from './get-logs.js';
import { getSystemInfo } from './get-system-info.js';
import { ping } from './ping.js';
import { reboot } from './reboot.js';
import { reprovision } from './reprovision.js';
import { restartAgent } from './restart-agent.js';
import { InvalidArgument, validateArgs, type ArgsSchema } from './schema.js';
import { setTelemetryInterval } from './set-telemetry-interval.js';
import { uploadSupportBundle } from './upload-support-bundle.js';

/** Every cloud command: adding one is a new module and one line here. */
export const COMMANDS: readonly Command<ArgsSchema>[] = [
  ping,
  getSystemInfo,
  reboot,
  reprovision,
  restartAgent,
  applyHardening,
  getHardeningStatus,
  getLogs,
  setTelemetryInterval,
  uploadSupportBundle,
  attestationKey,
  activateAttestationKey,
  attest,
] as Command<ArgsSchema>[];

/** Where a request came from: a direct method, or a C2D envelope with its id. */
export interface CommandOrigin {
  via: 'method' | 'c2d' | 'twin';
  id?: string;
  /**
   * Called once the request is accepted for execution (known command, valid arguments, not
   * refused as busy), before it runs; the run waits for it. A C2D envelope's id is recorded
   * here, so that an envelope refused for a mistake can be corrected and sent again.
   */
  accepted?: () => Promise<void>;
}

/** A command's result as reported to the twin and, for C2D envelopes, in a D2C message. */
export interface CommandReport extends CommandReply {
  command: string;
  via: CommandOrigin['via'];
  id: string | undefined;
  /** `done`: a quick command's only result; `accepted` then `final`: slow work's acknowledgement and outcome. */
  phase: 'done' | 'accepted' | 'final';
  at: string;
}

/**
 * Validates and dispatches commands; the single place for the rules every command shares:
 * 404 for an unknown name (listing the known ones), 400 naming the field and the reason,
 * 409 while an exclusive command runs, 500 with a message and never a stack trace.
 */
export class CommandRegistry {
  private readonly byName: Map<string, Command<ArgsSchema>>;
  private running: string | undefined;

  constructor(
    private readonly context: CommandContext,
    private readonly onResult: (result: CommandReport) => void = () => undefined,
    commands: readonly Command<ArgsSchema>[] = COMMANDS,
  ) {
    this.byName = new Map(commands.map((c) => [c.name, c]));
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  /** The exclusive command in progress, if any. */
  busyWith(): string | undefined {
    return this.running;
  }

  async dispatch(name: string, rawArgs: unknown, origin: CommandOrigin): Promise<CommandReply> {
    return (await this.execute(name, rawArgs, origin)).reply;
  }

  /** Like dispatch, with the final outcome of slow work too (the reply itself for quick commands). */
  async execute(name: string, rawArgs: unknown, origin: CommandOrigin): Promise<{ reply: CommandReply; final: Promise<CommandReply> }> {
    const done = (reply: CommandReply) => ({ reply, final: Promise.resolve(reply) });
    const command = this.byName.get(name);
    if (!command) {
      return done(this.finish(name, origin, {
        status: 404,
        payload: { message: `unknown command "${clip(name)}"; known commands: ${this.names().join(', ')}`, known: this.names() },
      }, 'done'));
    }
    let args: Record<string, unknown>;
    try {
      args = validateArgs(command.args, rawArgs);
    } catch (err) {
      if (!(err instanceof InvalidArgument)) throw err;
      return done(this.finish(name, origin, {
        status: 400, payload: { message: `invalid arguments for ${name}: ${err.message}`, field: err.field, reason: err.reason },
      }, 'done'));
    }
    if (command.exclusive) {
      if (this.running) {
        return done(this.finish(name, origin, {
          status: 409, payload: { message: `${this.running} is in progress; ${name} refused, try again when it has finished`, running: this.running },
        }, 'done'));
      }
      this.running = name;
    }
    await origin.accepted?.();
    let reply: CommandReply;
    let followUp: Promise<CommandReply> | undefined;
    try {
      const outcome = await command.run(args as never, this.context);
      reply = { status: outcome.status, payload: outcome.payload };
      followUp = outcome.followUp;
    } catch (err) {
      reply = failureReply(name, err);
      this.context.log.warn('command.failed', { command: name, via: origin.via, id: origin.id, status: reply.status, err });
    }
    if (followUp) {
      this.finish(name, origin, reply, 'accepted');
      const final = followUp.then((outcome) => outcome, (err: unknown) => failureReply(name, err)).then((outcome) => {
        if (command.exclusive) this.running = undefined;
        return this.finish(name, origin, outcome, 'final');
      });
      return { reply, final };
    }
    if (command.exclusive) this.running = undefined;
    return done(this.finish(name, origin, reply, 'done'));
  }

  private finish(command: string, origin: CommandOrigin, reply: CommandReply, phase: CommandReport['phase']): CommandReply {
    const name = clip(command);
    // Quick answers to direct methods (a monitor's ping every few seconds) stay out of the info log.
    const level = reply.status >= 500 ? 'warn' : phase === 'done' && origin.via === 'method' ? 'debug' : 'info';
    this.context.log[level]('command.result', { command: name, via: origin.via, id: origin.id, status: reply.status, phase });
    try {
      // Fields named one by one: with an object spread here, Node 20's V8 put ~0.7 KB per
      // call straight into the old generation, and the daemon's heap grew with every call.
      this.onResult({ status: reply.status, payload: reply.payload, command: name, via: origin.via, id: origin.id, phase, at: new Date().toISOString() });
    } catch (err) {
      this.context.log.warn('command.report_failed', { command: name, err });
    }
    return reply;
  }
}

function failureReply(name: string, err: unknown): CommandReply {
  if (err instanceof CommandFailure) return { status: err.status, payload: { message: err.message } };
  return { status: 500, payload: { message: `${name} failed: ${describeError(err).split('\n')[0]}` } };
}
