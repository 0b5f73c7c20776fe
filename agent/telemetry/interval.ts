/** Health telemetry period bounds in seconds: shared by config, the command and the twin. */
export const TELEMETRY_INTERVAL_RANGE = { min: 1, max: 86_400 } as const;
export const DEFAULT_TELEMETRY_INTERVAL_SECONDS = 60;
/** Default bound of the offline queue, in messages. */
export const DEFAULT_QUEUE_LIMIT = 10_000;
export const QUEUE_LIMIT_RANGE = { min: 10, max: 1_000_000 } as const;
