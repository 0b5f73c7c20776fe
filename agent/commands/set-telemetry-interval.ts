import { TELEMETRY_INTERVAL_RANGE } from '../config/telemetry-limits.js';
import { defineCommand } from './command.js';

/** `setTelemetryInterval { seconds }`: until the next restart or desired-property change. */
export const setTelemetryInterval = defineCommand({
  name: 'setTelemetryInterval',
  args: { seconds: { type: 'integer', ...TELEMETRY_INTERVAL_RANGE } },
  run: ({ seconds }, context) => {
    const previous = context.telemetry.intervalSeconds();
    context.telemetry.setIntervalSeconds(seconds);
    return { status: 200, payload: { intervalSeconds: seconds, previous } };
  },
});
