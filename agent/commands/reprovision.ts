import { defineCommand } from './command.js';

/** `reprovision`: acknowledged, then re-provision through the daemon's own flow. */
export const reprovision = defineCommand({
  name: 'reprovision',
  args: {},
  exclusive: true,
  run: (_args, context) => ({
    status: 202,
    payload: { accepted: true, message: 're-provisioning: the device will reconnect, possibly to another hub' },
    // Deferred so the acknowledgement leaves before the session is torn down.
    followUp: new Promise((resolve) => setTimeout(resolve, 200)).then(async () => {
      await context.requestReprovision();
      const { deviceId, assignedHub } = context.identity();
      return { status: 200, payload: { message: `re-provisioned: ${deviceId} on ${assignedHub}`, deviceId, assignedHub } };
    }),
  }),
});
