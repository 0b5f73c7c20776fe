/**
 * Health telemetry period bounds in seconds: shared by config, the command and the twin.
 * The floor of 10 s keeps a fleet that is told to hurry (by a mistake in a desired property
 * sent to every device) far below an S1 hub's 100 D2C sends per second for some thousand devices.
 */
export const TELEMETRY_INTERVAL_RANGE = { min: 10, max: 86_400 } as const;
export const DEFAULT_TELEMETRY_INTERVAL_SECONDS = 60;
/** Default bound of the offline queue, in messages. */
export const DEFAULT_QUEUE_LIMIT = 10_000;
export const QUEUE_LIMIT_RANGE = { min: 10, max: 1_000_000 } as const;
/**
 * The device's own cap on D2C messages per second, above all when it drains a backlog: a
 * third of one S1 unit's 12 sends per second (Microsoft Learn, IoT Hub quotas and throttling).
 */
export const DEFAULT_MAX_MESSAGES_PER_SECOND = 4;
export const MAX_MESSAGES_PER_SECOND_RANGE = { min: 1, max: 1_000 } as const;
