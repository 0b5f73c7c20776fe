import { isHostName } from '../lib/host-name.js';
import { quoted } from '../lib/validate.js';

/**
 * The text DPS hands over (`assignedHub`, `deviceId`) ends up in MQTT credentials, logs,
 * the daemon's systemd status and the hardening confirm targets. It is checked where it
 * arrives (the DPS answer) and again where it is read back (the cached assignment).
 */

/**
 * IoT Hub's device id: up to 128 case-sensitive characters, ASCII 7-bit letters and
 * digits plus - . + % _ # * ? ! ( ) , : = @ $ ' (Microsoft Learn, "Understand the
 * identity registry in your IoT hub", device identity properties).
 */
export const DEVICE_ID = /^[A-Za-z0-9\-.+%_#*?!(),:=@$']{1,128}$/;

/** Why the assigned hub and device id are not acceptable, or undefined when they are. */
export function assignmentTextProblem(assignment: { assignedHub: string; deviceId: string }): string | undefined {
  if (!isHostName(assignment.assignedHub)) {
    return `assignedHub ${quoted(assignment.assignedHub)} is not a DNS host name or IP address`;
  }
  if (!DEVICE_ID.test(assignment.deviceId)) {
    return `deviceId ${quoted(assignment.deviceId)} is not an IoT Hub device id (1-128 ASCII letters, digits and - . + % _ # * ? ! ( ) , : = @ $ ')`;
  }
  return undefined;
}
