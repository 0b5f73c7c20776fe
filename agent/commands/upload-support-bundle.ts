import os from 'node:os';
import { bundleName } from '../support/bundle.js';
import { DEFAULT_SINCE, parseSince, SINCE_PATTERN } from '../support/since.js';
import { redactText } from '../support/redact.js';
import { CommandFailure, defineCommand, type CommandContext } from './command.js';

/** One bundle at a time per device: building one reads the TPM, the journal and the firewall. */
const building = new WeakSet<CommandContext>();

/**
 * `uploadSupportBundle { since }`: acknowledged at once (202); then the daemon builds the
 * same bundle `iot-agent support-bundle` makes and uploads it through IoT Hub file upload.
 * The hub files it as `<deviceId>/<bundle name>` in its storage; the final result, with
 * the blob name, goes to the twin's lastCommands and a command-result message.
 */
export const uploadSupportBundle = defineCommand({
  name: 'uploadSupportBundle',
  args: { since: { type: 'string', pattern: SINCE_PATTERN, maxLength: 32, expected: 'a duration such as 24h, 90m or 2d', optional: true } },
  run: ({ since }, context) => {
    let seconds: number;
    try {
      seconds = parseSince(since ?? DEFAULT_SINCE);
    } catch (err) {
      throw new CommandFailure(400, (err as Error).message);
    }
    if (building.has(context)) throw new CommandFailure(409, 'a support bundle is being built and uploaded already; try again when it has finished');
    const now = new Date();
    const blobName = `${bundleName(os.hostname(), now)}.tar.gz`;
    building.add(context);
    const followUp = context.support.buildAndUpload({ sinceSeconds: seconds, now, blobName }).then(
      (done) => ({
        status: 200,
        payload: { message: `uploaded ${done.blobName} (${Math.ceil(done.bytes / 1024)} KiB)`, blobName: done.blobName, bytes: done.bytes, collectors: done.collectors },
      }),
      (err: unknown) => {
        // Storage and SDK errors may quote a SAS URL: nothing secret goes to the twin.
        throw new CommandFailure(err instanceof CommandFailure ? err.status : 500, redactText(`support bundle not uploaded: ${(err as Error).message}`));
      },
    ).finally(() => building.delete(context));
    return {
      status: 202,
      payload: { accepted: true, message: `building the support bundle ${blobName}; the result follows in lastCommands.uploadSupportBundle`, blobName, since: since ?? DEFAULT_SINCE },
      followUp,
    };
  },
});
