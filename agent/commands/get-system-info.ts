import { defineCommand } from './command.js';

/** `getSystemInfo`: OS, kernel, CPU and load, memory, disks, interfaces, uptime, temperature. */
export const getSystemInfo = defineCommand({
  name: 'getSystemInfo',
  args: {},
  run: async (_args, context) => ({ status: 200, payload: await context.systemInfo() }),
});
