import { CLOCK_NOT_AFTER, CLOCK_NOT_BEFORE } from '../time/clock-bounds.js';
import { CORRECTION_THRESHOLD_MS } from '../time/service-clock.js';
import { fail, pass, warn, type CheckResult } from './result.js';

const NTP_HINT = 'enable time synchronisation: `timedatectl set-ntp true` (systemd-timesyncd), allow outbound NTP (udp/123), then re-run check';

/** What the service's Date header said, against this clock; undefined when it could not be asked. */
export interface MeasuredOffset {
  /** Service time minus local time. */
  offsetMs: number;
  /** "DPS global.azure-devices-provisioning.net", for the message. */
  source: string;
}

/**
 * Whether the system time is plausible (SAS tokens and TLS certificate checks depend on it)
 * and, when the service could be asked, how far it is from the service's: beyond five
 * minutes the agent signs its tokens with the service's time, which works but hides a
 * board without time synchronisation.
 */
export function checkClock(now: Date, measured?: MeasuredOffset, notBefore = CLOCK_NOT_BEFORE, notAfter = CLOCK_NOT_AFTER): CheckResult {
  const shown = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const day = (d: Date) => d.toISOString().slice(0, 10);
  if (now < notBefore) {
    return fail('clock', `system time ${shown} is before ${day(notBefore)}, older than this agent: the clock was never set, `
      + 'so DPS and the hub will reject its SAS tokens and TLS certificates look not yet valid', NTP_HINT);
  }
  if (now >= notAfter) {
    return fail('clock', `system time ${shown} is after ${day(notAfter)}: the clock is wrong, `
      + 'so DPS and the hub will reject its SAS tokens and TLS certificates look expired', NTP_HINT);
  }
  if (measured === undefined) return pass('clock', `system time ${shown} is plausible (the service's time was not measured)`);
  const seconds = Math.round(measured.offsetMs / 1000);
  const offset = `${Math.abs(seconds)} s ${seconds < 0 ? 'ahead of' : 'behind'} ${measured.source}`;
  if (Math.abs(measured.offsetMs) > CORRECTION_THRESHOLD_MS) {
    return warn('clock', `system time ${shown} is ${offset}: the agent signs its tokens with the service's time, `
      + 'but TLS certificates and logs use this clock', NTP_HINT);
  }
  return pass('clock', `system time ${shown} is plausible, ${offset}`);
}
