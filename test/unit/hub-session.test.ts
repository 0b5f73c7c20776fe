import common from 'azure-iot-common';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_KEEPALIVE_SECONDS, DEFAULT_TOKEN_LIFETIME_SECONDS, DEFAULT_TOKEN_RENEWAL_MARGIN_SECONDS, HubConnectError, HubSession, isRefusal,
} from '../../agent/hub/session.js';
import { Logger } from '../../agent/log/logger.js';
import { openTransport } from '../../agent/tpm/open-transport.js';
import { TpmClient } from '../../agent/tpm/tpm-client.js';
import { parseTransport } from '../../agent/config/transport-spec.js';
import { freePort } from '../support/ports.js';

describe('the hub session: refusals and defaults', () => {
  it.each([
    'Connection refused: Not authorized',
    'Connection refused: Bad username or password',
    'Connection refused: Identifier rejected',
  ])('counts the broker\'s %j as a refusal, wherever it sits in the cause chain', (reason) => {
    expect(isRefusal(new Error(reason))).toBe(true);
    expect(isRefusal(new Error('Not authorized', { cause: new Error(reason) }))).toBe(true);
  });

  it('counts an unknown device as a refusal', () => {
    expect(isRefusal(new common.errors.DeviceNotFoundError('gone'))).toBe(true);
  });

  it('does not count the SDK\'s blanket "Not authorized", a refused TCP connection or a server that is unavailable', () => {
    expect(isRefusal(Object.assign(new common.errors.UnauthorizedError('Not authorized'), { cause: new Error('connect ECONNREFUSED 127.0.0.1:8883') }))).toBe(false);
    expect(isRefusal(new Error('Connection refused: Server unavailable'))).toBe(false);
    expect(isRefusal(new Error('connect ECONNREFUSED 127.0.0.1:8883'))).toBe(false);
    expect(isRefusal(undefined)).toBe(false);
  });

  it('says whether the hub refused the device or could not be reached, keeping the cause', () => {
    const cause = new Error('Connection refused: Not authorized');
    expect(new HubConnectError('refused', 'hub-a.example', cause)).toMatchObject({
      message: 'the hub hub-a.example refused the device', kind: 'refused', hub: 'hub-a.example', cause,
    });
    expect(new HubConnectError('unreachable', 'hub-a.example', cause).message).toBe('the hub hub-a.example could not be reached over MQTT on 8883');
    expect(new HubConnectError('unreachable', 'hub-a.example', cause, 'mqtt-ws').message).toBe('the hub hub-a.example could not be reached over MQTT over WebSockets on 443');
  });

  it('keeps Azure\'s token lifetime and renewal margin, and a minute of keep-alive', () => {
    expect([DEFAULT_TOKEN_LIFETIME_SECONDS, DEFAULT_TOKEN_RENEWAL_MARGIN_SECONDS, DEFAULT_KEEPALIVE_SECONDS]).toEqual([3_600, 900, 60]);
  });
});

describe('the hub session without a TPM', () => {
  it('fails a connect attempt as unreachable, leaving nothing connected', async () => {
    const tpm = new TpmClient(openTransport(parseTransport(`swtpm:port=${await freePort()}`), { commandTimeoutMs: 2_000 }));
    const lines: string[] = [];
    const target = { assignedHub: '127.0.0.1', deviceId: 'board-17', registrationId: 'board-17', identityKeyHandle: 0x81000100 };
    const session = new HubSession({ tpm, target, log: new Logger({ journal: false, write: (l) => lines.push(l) }), keepAliveSeconds: 5 });
    const lost: Error[] = [];
    session.on('lost', (err) => lost.push(err));
    try {
      expect(session.target).toBe(target);
      const err = await session.connect().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HubConnectError);
      expect(err).toMatchObject({ name: 'HubConnectError', kind: 'unreachable', hub: '127.0.0.1', message: 'the hub 127.0.0.1 could not be reached over MQTT on 8883' });
      expect(session.connected).toBe(false);
      expect(session.deviceClient).toBeUndefined();
      expect(lines.some((l) => l.includes('event=hub.connecting') && l.includes('hub=127.0.0.1') && l.includes('deviceId=board-17'))).toBe(true);
      expect(lost).toEqual([]);
    } finally {
      await session.stop();
      await tpm.close();
    }
  });
});
