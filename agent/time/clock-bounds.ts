/**
 * A clock before this agent was built was never set (boards without an RTC battery wake
 * up in 1970 or at their image's build time). Raise it with each release.
 */
export const CLOCK_NOT_BEFORE = new Date('2026-01-01T00:00:00Z');
/** A clock this far ahead is wrong too, and makes SAS tokens with absurd expiry times. */
export const CLOCK_NOT_AFTER = new Date('2100-01-01T00:00:00Z');
