/**
 * The short-lived process that registers with DPS for the daemon and `iot-agent provision`
 * (started by registerInChild, never by hand). It takes one request over the IPC channel,
 * opens the TPM it names, registers, reports the steps and the outcome, and exits. It
 * takes no TPM lock: its parent holds it and has lent it the TPM. If the parent goes away,
 * so does it.
 */
import { serializeError } from '../serialized-error.js';
import { openTransport } from '../tpm/open-transport.js';
import { TpmClient } from '../tpm/tpm-client.js';
import { parseTransport } from '../tpm/transport-spec.js';
import { parseRegisterRequest, type ChildEvent } from './child-protocol.js';
import { registerWithDps } from './register.js';

if (!process.send) {
  process.stderr.write('iot-agent: the provisioning program is started by the agent itself (iot-agent provision)\n');
  process.exit(2);
}
process.once('disconnect', () => process.exit(1));
process.once('message', (message: unknown) => void serve(message));

function send(event: ChildEvent): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected) resolve();
    else process.send!(event, () => resolve());
  });
}

async function serve(message: unknown): Promise<void> {
  let outcome: ChildEvent;
  let code = 0;
  try {
    const request = parseRegisterRequest(message);
    const tpm = new TpmClient(openTransport(parseTransport(request.transport)));
    try {
      const assignment = await registerWithDps({
        tpm, registrationId: request.registrationId, idScope: request.idScope, globalEndpoint: request.globalEndpoint,
        ...(request.ca !== undefined ? { ca: request.ca } : {}),
        onStep: (step, detail) => void send(detail === undefined ? { kind: 'step', step } : { kind: 'step', step, detail }),
      });
      outcome = { kind: 'assigned', assignment };
    } finally {
      // The parent takes the TPM back when this process has exited; let go of it first.
      await tpm.close().catch(() => undefined);
    }
  } catch (err) {
    outcome = { kind: 'failed', error: serializeError(err) };
    code = 1;
  }
  await send(outcome);
  process.exit(code);
}
