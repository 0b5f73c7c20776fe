import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { mayDeliverTo, mayDeviceSubscribe, parseDevicePublish, TopicError } from '../cloud/hub/topics.js';

describe('device topics', () => {
  it('parses telemetry with and without a property bag', () => {
    expect(parseDevicePublish('d1', 'devices/d1/messages/events/')).toEqual({ kind: 'telemetry', properties: new Map(), propertyBytes: 0 });
    const parsed = parseDevicePublish('d1', 'devices/d1/messages/events/%24.mid=7&k=v');
    expect(parsed.kind === 'telemetry' && [...parsed.properties]).toEqual([['$.mid', '7'], ['k', 'v']]);
  });

  it('parses twin requests and method responses with their $rid', () => {
    expect(parseDevicePublish('d1', '$iothub/twin/GET/?$rid=abc')).toEqual({ kind: 'twin-get', rid: 'abc' });
    expect(parseDevicePublish('d1', '$iothub/twin/PATCH/properties/reported/?$rid=9&$version=3')).toEqual({ kind: 'twin-patch-reported', rid: '9' });
    expect(parseDevicePublish('d1', '$iothub/methods/res/504/?$rid=1f')).toEqual({ kind: 'method-response', rid: '1f', status: 504 });
  });

  it('refuses another device\'s topics, the hub\'s own topics and requests without $rid', () => {
    for (const topic of ['devices/d2/messages/events/', 'devices/d1x/messages/events/', 'devices/d1/messages/devicebound/',
      '$iothub/methods/POST/reboot/?$rid=1', '$iothub/twin/res/200/?$rid=1', '$iothub/twin/GET/', '$iothub/twin/GET/?$rid=',
      'devices/d1/messages/events/a/b', '$iothub/methods/res/abc/?$rid=1', 'other/topic', '$iothub/twin/GET/?$rid=%zz']) {
      expect(() => parseDevicePublish('d1', topic), topic).toThrow(TopicError);
    }
  });

  it('lets a device subscribe only to its own C2D topic and the $iothub response topics', () => {
    expect(mayDeviceSubscribe('d1', 'devices/d1/messages/devicebound/#')).toBe(true);
    expect(mayDeviceSubscribe('d1', '$iothub/methods/POST/#')).toBe(true);
    expect(mayDeviceSubscribe('d1', '$iothub/twin/res/#')).toBe(true);
    expect(mayDeviceSubscribe('d1', '$iothub/twin/PATCH/properties/desired/#')).toBe(true);
    for (const filter of ['devices/d2/messages/devicebound/#', 'devices/+/messages/devicebound/#', '#', '$iothub/#', 'devices/d1/#']) {
      expect(mayDeviceSubscribe('d1', filter), filter).toBe(false);
    }
  });

  it('delivers C2D topics only to their own device', () => {
    expect(mayDeliverTo('d1', 'devices/d1/messages/devicebound/%24.mid=1')).toBe(true);
    expect(mayDeliverTo('d1', 'devices/d2/messages/devicebound/%24.mid=1')).toBe(false);
    expect(mayDeliverTo('d1', 'devices/d1/messages/events/')).toBe(false);
  });

  it('never fails with anything but TopicError on random topics', () => {
    for (let i = 0; i < 2_000; i++) {
      const prefix = ['devices/d1/messages/events/', '$iothub/twin/GET/?', '$iothub/methods/res/200/?', ''][i % 4];
      try {
        parseDevicePublish('d1', prefix + randomBytes(1 + (i % 40)).toString('latin1'));
      } catch (err) {
        expect(err).toBeInstanceOf(TopicError);
      }
    }
  });
});
