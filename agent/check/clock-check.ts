import { CLOCK_NOT_AFTER, CLOCK_NOT_BEFORE } from '../time/clock-bounds.js';
import { fail, pass, type CheckResult } from './result.js';

const NTP_HINT = 'enable time synchronisation: `timedatectl set-ntp true` (systemd-timesyncd), allow outbound NTP (udp/123), then re-run check';

/** Whether the system time is plausible: SAS tokens and TLS certificate checks depend on it. */
export function checkClock(now: Date, notBefore = CLOCK_NOT_BEFORE, notAfter = CLOCK_NOT_AFTER): CheckResult {
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
  return pass('clock', `system time ${shown} is plausible`);
}
