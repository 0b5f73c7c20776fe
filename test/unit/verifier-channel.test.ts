import type iothub from 'azure-iothub';
import { describe, expect, it } from 'vitest';
import { hubChannel } from '../../verifier/channel.js';
import { stringMatching } from '../support/matchers.js';

/** The verifier's channel to board-1 over service clients whose method call resolves with `result`, as azure-iothub's does. */
function channelAnswering(result: unknown) {
  const client = { invokeDeviceMethod: () => Promise.resolve({ result }) } as unknown as iothub.Client;
  return hubChannel({ client, registry: {} as iothub.Registry }, 'board-1');
}

describe('the verifier\'s direct method channel', () => {
  it('passes on the status and payload the hub answered', async () => {
    expect(await channelAnswering({ status: 200, payload: { akName: '000b' } }).invoke('attestationKey', {})).toEqual({ status: 200, payload: { akName: '000b' } });
    expect(await channelAnswering({ status: 404 }).invoke('attestationKey', {})).toEqual({ status: 404, payload: undefined });
  });

  it('refuses an answer without a numeric status, naming the method and why', async () => {
    for (const result of [undefined, null, 'ok', { payload: {} }, { status: '200', payload: {} }]) {
      await expect(channelAnswering(result).invoke('attestationKey', {}), JSON.stringify(result)).rejects.toMatchObject({
        message: 'attestationKey on board-1 did not get an answer', cause: { message: stringMatching(/^the hub's answer has no numeric status: /) },
      });
    }
  });
});
