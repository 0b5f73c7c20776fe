import { describe, expect, it } from 'vitest';
import { assignmentTextProblem, DEVICE_ID } from '../../agent/provisioning/assignment-text.js';

describe('the text DPS hands over', () => {
  it('accepts a DNS host name or an address, and any IoT Hub device id', () => {
    expect(assignmentTextProblem({ assignedHub: 'hub-a.azure-devices.net', deviceId: 'board-17' })).toBeUndefined();
    expect(assignmentTextProblem({ assignedHub: '10.0.0.7', deviceId: "a-.+%_#*?!(),:=@$'Z9" })).toBeUndefined();
    expect(assignmentTextProblem({ assignedHub: 'hub', deviceId: 'x'.repeat(128) })).toBeUndefined();
  });

  it('refuses an assigned hub that is not a host name, quoting it', () => {
    expect(assignmentTextProblem({ assignedHub: 'hub.example:8883', deviceId: 'd' })).toBe('assignedHub "hub.example:8883" is not a DNS host name or IP address');
    expect(assignmentTextProblem({ assignedHub: 'hub a', deviceId: 'no good' })).toMatch(/^assignedHub "hub a"/);
  });

  it.each(['', 'x'.repeat(129), 'board 17', 'board\n17', 'board/17', 'börd', 'a"b', 'a;b', 'a&b', 'a\\b'])('refuses the device id %j, saying what a device id is', (deviceId) => {
    expect(DEVICE_ID.test(deviceId)).toBe(false);
    expect(assignmentTextProblem({ assignedHub: 'hub.example', deviceId })).toBe(
      `deviceId ${JSON.stringify(deviceId.length > 80 ? `${deviceId.slice(0, 80)}…` : deviceId)} is not an IoT Hub device id (1-128 ASCII letters, digits and - . + % _ # * ? ! ( ) , : = @ $ ')`);
  });
});
