import type device from 'azure-iot-device';
import { describeError } from '../lib/errors.js';
import { interceptMethodRequests } from '../azure-sdk/method-requests.js';
import { clip } from '../lib/validate.js';
import type { Logger } from '../log/logger.js';
import type { CommandReply } from './command.js';
import { EnvelopeError, parseEnvelope } from './envelope.js';
import type { ExecutedIds } from './executed-ids.js';
import type { CommandRegistry, CommandReport } from './registry.js';

type Client = InstanceType<typeof device.Client>;
type Message = InstanceType<typeof device.Message>;

/**
 * Serves the registry on one hub connection: every command as a direct method (with or
 * without a payload: IoT Hub sends an empty body for none), the same names in C2D
 * envelopes, and a 404 for method names nobody registered (the SDK would drop those and
 * leave the caller to time out).
 */
export class CommandEndpoint {
  constructor(
    private readonly registry: CommandRegistry,
    private readonly executed: ExecutedIds,
    private readonly report: (result: CommandReport) => void,
    private readonly log: Logger,
  ) {}

  attach(client: Client): void {
    for (const name of this.registry.names()) {
      client.onDeviceMethod(name, (request, response) => {
        void this.methodReply(name, request.payload).then((reply) => response.send(reply.status, reply.payload, (err) => {
          if (err) this.log.warn('command.response_failed', { command: name, err });
        }));
      });
    }
    interceptMethodRequests(client, (name, answer) => {
      void this.methodReply(name, undefined)
        .then((reply) => answer(reply.status, reply.payload))
        .catch((err: unknown) => this.log.warn('command.response_failed', { command: clip(name), err }));
    });
    client.on('message', (message: Message) => {
      this.onC2d(client, message).catch((err: unknown) => this.log.error('command.c2d_failed', { err }));
    });
  }

  /** A direct method's answer: the registry's reply, or a 500 when dispatching failed, so that the caller never waits for its timeout. */
  private methodReply(name: string, payload: unknown): Promise<CommandReply> {
    return this.registry.dispatch(name, payload, { via: 'method' }).catch((err: unknown) => internalError(name, err));
  }

  private async onC2d(client: Client, message: Message): Promise<void> {
    // MQTT: the SDK has already acknowledged the message; complete() is a no-op kept for other transports.
    client.complete(message, () => undefined);
    const correlation = typeof message.messageId === 'string' ? clip(message.messageId, 128) : undefined;
    let envelope;
    try {
      envelope = parseEnvelope(Buffer.isBuffer(message.data) ? message.data : Buffer.from(String(message.data ?? '')));
    } catch (err) {
      if (!(err instanceof EnvelopeError)) throw err;
      this.log.warn('command.bad_envelope', { messageId: correlation, reason: err.message });
      this.report(result('(invalid)', err.id ?? correlation, {
        status: 400, payload: { message: `invalid command envelope: ${err.message}`, field: err.field, reason: err.reason },
      }));
      return;
    }
    const seen = this.executed.find(envelope.id);
    if (seen) {
      this.log.info('command.duplicate', { id: envelope.id, command: envelope.command });
      this.report(result(envelope.command, envelope.id, {
        status: 208, payload: { message: `command id ${envelope.id} was already executed at ${seen.at}; not executed again`, duplicate: true, firstStatus: seen.status ?? null },
      }));
      return;
    }
    // Recorded once accepted (known command, valid arguments, not busy), before it runs: at
    // most once, and an envelope refused for a mistake can be corrected and sent again.
    let recorded = false;
    const reply = await this.registry.dispatch(envelope.command, envelope.args, {
      via: 'c2d', id: envelope.id,
      accepted: async () => {
        recorded = true;
        await this.executed.record({ id: envelope.id, command: envelope.command, at: new Date().toISOString() });
      },
    }).catch((err: unknown) => internalError(envelope.command, err));
    if (recorded) await this.executed.finish(envelope.id, reply.status);
  }
}

function result(command: string, id: string | undefined, reply: CommandReply): CommandReport {
  return { status: reply.status, payload: reply.payload, command: clip(command), via: 'c2d', id, phase: 'done', at: new Date().toISOString() };
}

function internalError(name: string, err: unknown): CommandReply {
  return { status: 500, payload: { message: `${clip(name)} failed: ${describeError(err).split('\n')[0]}` } };
}
