import type { AttestReply } from '../attestation/attest-reply.js';
import type { HardeningAccess } from '../hardening-bridge/access.js';
import type { Logger } from '../log/logger.js';
import type { ArgsOf, ArgsSchema } from './schema.js';

/** A command's answer: an HTTP-like status (as IoT Hub direct methods carry) and a JSON payload. */
export interface CommandReply {
  status: number;
  payload: unknown;
}

export interface CommandOutcome extends CommandReply {
  /**
   * Slow work that goes on after the acknowledgement (reboot, re-provision, hardening).
   * The registry keeps exclusive commands locked until it settles, then reports its result.
   */
  followUp?: Promise<CommandReply>;
}

/** What the daemon lends to commands. Commands call down through this, never into the daemon. */
export interface CommandContext {
  readonly log: Logger;
  readonly agentVersion: string;
  identity(): { registrationId?: string; deviceId?: string; assignedHub?: string; state: string };
  requestReprovision(): Promise<void>;
  requestRestart(): void;
  readonly reboot: { schedule(): { delaySeconds: number; done: Promise<void> }; pending(): boolean };
  readonly telemetry: { intervalSeconds(): number; setIntervalSeconds(seconds: number): void };
  readonly hardening: HardeningAccess;
  readonly attestation: AttestationAccess;
  systemInfo(): Promise<Record<string, unknown>>;
  readonly support: SupportAccess;
}

/** Support bundles: built by the daemon, uploaded through IoT Hub file upload. */
export interface SupportAccess {
  buildAndUpload(request: { sinceSeconds: number; now: Date; blobName: string }): Promise<{ blobName: string; bytes: number; collectors: Record<string, string> }>;
}

export interface AttestationAccess {
  /** The attestation key, created and persisted on first use. */
  key(): Promise<{ akPublic: string; akName: string; handle: string; created: boolean }>;
  /** ActivateCredential for the AK with the EK: the credential's secret. */
  activate(idObject: Buffer, encryptedSecret: Buffer): Promise<Buffer>;
  /** A quote over `pcrs` (default: 0-7 and the hardening PCR) with the nonce, its PCR values and the event log. */
  quote(nonce: Buffer, pcrs: number[] | undefined): Promise<AttestReply>;
}

export interface Command<S extends ArgsSchema = ArgsSchema> {
  readonly name: string;
  readonly args: S;
  /** Long or exclusive (reboot, re-provision, hardening): one at a time, a second gets 409. */
  readonly exclusive?: boolean;
  /**
   * The first reply, and any slow work as its followUp. A command that answers from what it
   * holds answers synchronously; what it throws is its failure either way.
   */
  run(args: ArgsOf<S>, context: CommandContext): CommandOutcome | Promise<CommandOutcome>;
}

/** Keeps the argument types of a command literal while it is declared. */
export function defineCommand<S extends ArgsSchema>(command: Command<S>): Command<S> {
  return command;
}

/** A failure a handler understands: its status and message go back to the caller as they are. */
export class CommandFailure extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}
