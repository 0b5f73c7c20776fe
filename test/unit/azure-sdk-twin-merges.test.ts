import device from 'azure-iot-device';
import { describe, expect, it } from 'vitest';
import { Logger } from '../../agent/log/logger.js';
import { guardTwinMerges, MAX_TWIN_DEPTH, sanitizeTwinDocument } from '../../agent/azure-sdk/twin-merges.js';

describe('the twin merge guard', () => {
  it('drops keys that break lodash merge and prototype pollution', () => {
    const doc: unknown = JSON.parse('{"constructor":[1],"__proto__":{"polluted":true},"a":{"prototype":1,"b":2},"$version":3}');
    expect(sanitizeTwinDocument(doc)).toEqual({ a: { b: 2 }, $version: 3 });
  });

  it(`cuts subtrees deeper than ${MAX_TWIN_DEPTH} levels`, () => {
    let deep: unknown = 'leaf';
    for (let i = 0; i < 5000; i++) deep = { x: deep };
    const clean = JSON.stringify(sanitizeTwinDocument({ deep }));
    expect(clean.split('{').length - 1).toBeLessThanOrEqual(MAX_TWIN_DEPTH);
  });

  it('lets the SDK twin merge a hostile desired patch without throwing', () => {
    guardTwinMerges(new Logger({ write: () => undefined }));
    const twin = Object.create(device.Twin.prototype) as { properties: { desired: Record<string, unknown> }; _onDesiredPropertiesUpdate(p: unknown): void; emit(): boolean };
    twin.properties = { desired: {} };
    twin.emit = () => true;
    // Unguarded, the second patch sets `constructor` on an array and lodash then throws "object.constructor[Symbol.species] is not a constructor".
    expect(() => twin._onDesiredPropertiesUpdate({ trap: [], $version: 1 })).not.toThrow();
    expect(() => twin._onDesiredPropertiesUpdate(JSON.parse('{"trap":{"constructor":null,"a":1},"logLevel":"warn","$version":2}'))).not.toThrow();
    expect(twin.properties.desired).toMatchObject({ logLevel: 'warn', $version: 2 });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
