import { CommandFailure, defineCommand } from './command.js';

/** `reboot`: acknowledged first, then a delayed reboot through the system's normal path. */
export const reboot = defineCommand({
  name: 'reboot',
  args: {},
  exclusive: true,
  run: (_args, context) => {
    if (context.reboot.pending()) throw new CommandFailure(409, 'a reboot is already pending');
    const { delaySeconds, done } = context.reboot.schedule();
    return {
      status: 202,
      payload: { accepted: true, message: `rebooting in ${delaySeconds} s`, delaySeconds },
      followUp: done.then(() => ({ status: 200, payload: { message: 'reboot started' } })),
    };
  },
});
