/**
 * The build's time, which packaging/bundle.mjs defines for the packaged agent
 * (SOURCE_DATE_EPOCH when set, as Debian's tools do, else the time of the commit built).
 * Undefined when the agent runs from a plain TypeScript build.
 */
declare const IOT_AGENT_BUILT_AT: string | undefined;

/** The floor when the build's time is unknown: raise it with each release. */
const RELEASE_FLOOR = Date.parse('2026-01-01T00:00:00Z');

/**
 * A clock before this agent was built was never set (boards without an RTC battery wake
 * up in 1970 or at their image's build time): the later of RELEASE_FLOOR and `builtAt`.
 */
export function clockNotBefore(builtAt: string | undefined): Date {
  const built = builtAt === undefined ? Number.NaN : Date.parse(builtAt);
  return new Date(Number.isNaN(built) ? RELEASE_FLOOR : Math.max(RELEASE_FLOOR, built));
}

export const CLOCK_NOT_BEFORE = clockNotBefore(typeof IOT_AGENT_BUILT_AT === 'string' ? IOT_AGENT_BUILT_AT : undefined);
/** A clock this far ahead is wrong too, and makes SAS tokens with absurd expiry times. */
export const CLOCK_NOT_AFTER = new Date('2100-01-01T00:00:00Z');
