import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodePropertyBag, encodePropertyBag, PropertyBagError, splitProperties } from '../cloud/hub/property-bag.js';

describe('IoT Hub property bag', () => {
  it('decodes system and application properties the device SDK writes', () => {
    const bag = decodePropertyBag('%24.mid=m%201&%24.ct=application%2Fjson&alert=high%20temp');
    expect(splitProperties(bag)).toEqual({ system: { mid: 'm 1', ct: 'application/json' }, application: { alert: 'high temp' } });
  });

  it('round-trips keys and values with reserved characters', () => {
    const entries: [string, string][] = [['a&b', 'c=d'], ['$.to', '/devices/x/messages/deviceBound'], ['ü', '100%']];
    expect([...decodePropertyBag(encodePropertyBag(entries))]).toEqual(entries);
  });

  it('accepts an empty bag, a trailing & and a key without a value', () => {
    expect(decodePropertyBag('').size).toBe(0);
    expect([...decodePropertyBag('a=1&')]).toEqual([['a', '1']]);
    expect([...decodePropertyBag('flag')]).toEqual([['flag', '']]);
  });

  it('refuses broken URL encoding, empty names and too many properties', () => {
    expect(() => decodePropertyBag('a=%zz')).toThrow(PropertyBagError);
    expect(() => decodePropertyBag('%E0%A4%A=1')).toThrow(PropertyBagError);
    expect(() => decodePropertyBag('=value')).toThrow(PropertyBagError);
    expect(() => decodePropertyBag(Array.from({ length: 200 }, (_, i) => `k${i}=v`).join('&'))).toThrow(PropertyBagError);
  });

  it('keeps a property named __proto__ as plain data', () => {
    const { application } = splitProperties(decodePropertyBag('__proto__=x&constructor=y'));
    expect(Object.getPrototypeOf(application)).toBe(Object.prototype);
    expect(Object.keys(application)).toEqual(['__proto__', 'constructor']);
  });

  it('never fails with anything but PropertyBagError on random input', () => {
    for (let i = 0; i < 2_000; i++) {
      const text = randomBytes(1 + (i % 64)).toString('latin1');
      try {
        decodePropertyBag(text);
      } catch (err) {
        expect(err).toBeInstanceOf(PropertyBagError);
      }
    }
  });
});
