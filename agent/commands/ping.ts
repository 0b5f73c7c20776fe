import { defineCommand } from './command.js';

/** `ping`: liveness and versions. */
export const ping = defineCommand({
  name: 'ping',
  args: {},
  run: (_args, context) => ({
    status: 200,
    payload: {
      pong: true,
      time: new Date().toISOString(),
      agentVersion: context.agentVersion,
      node: process.versions.node,
      state: context.identity().state,
      uptimeSeconds: Math.round(process.uptime()),
    },
  }),
});

