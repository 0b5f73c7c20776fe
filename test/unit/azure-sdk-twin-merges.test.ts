import type { EventEmitter } from 'node:events';
import device from 'azure-iot-device';
import { describe, expect, it } from 'vitest';
import { Logger } from '../../agent/log/logger.js';
import { DESIRED_PATCH_EVENT } from '../../agent/azure-sdk/desired-updates.js';
import { guardTwinMerges, MAX_TWIN_DEPTH, sanitizeTwinDocument, type TwinInternals } from '../../agent/azure-sdk/twin-merges.js';
import { sdkClient } from '../support/azure-sdk.js';

/** What the guard logged: it is installed once per process, so every test of this file shares its logger. */
const warnings: string[] = [];
function guarded(): void {
  guardTwinMerges(new Logger({ journal: false, write: (line) => warnings.push(line) }));
}

type TestTwin = EventEmitter & TwinInternals & { properties: { desired: Record<string, unknown> } };

/** A real Twin of azure-iot-device on a real (never connected) client's transport, as if its GET had brought an empty document. */
function twinOnTransport(): { twin: TestTwin; transport: { emit(event: string, ...args: unknown[]): boolean } } {
  const transport = (sdkClient() as unknown as { _transport: ConstructorParameters<typeof device.Twin>[0] & { emit(event: string, ...args: unknown[]): boolean } })._transport;
  const twin = new device.Twin(transport, undefined as never, 0) as unknown as TestTwin;
  twin.properties = { desired: {} };
  return { twin, transport };
}

describe('the twin merge guard', () => {
  it('drops keys that break lodash merge and prototype pollution', () => {
    const doc: unknown = JSON.parse('{"constructor":[1],"__proto__":{"polluted":true},"a":{"prototype":1,"b":2},"$version":3}');
    const clean = sanitizeTwinDocument(doc) as Record<string, unknown>;
    expect(clean).toEqual({ a: { b: 2 }, $version: 3 });
    // A `__proto__` key copied over would have become the copy's prototype: nothing inherited, nothing polluted.
    expect(Object.getPrototypeOf(clean)).toBe(Object.prototype);
    expect(clean.polluted).toBeUndefined();
  });

  it(`cuts subtrees deeper than ${MAX_TWIN_DEPTH} levels`, () => {
    let deep: unknown = 'leaf';
    for (let i = 0; i < 5000; i++) deep = { x: deep };
    const clean = JSON.stringify(sanitizeTwinDocument({ deep }));
    expect(clean.split('{').length - 1).toBeLessThanOrEqual(MAX_TWIN_DEPTH);
  });

  it(`keeps exactly ${MAX_TWIN_DEPTH} levels of objects, and an array item cut off stays in its place as null`, () => {
    const nested = (levels: number, leaf: unknown): unknown => (levels === 0 ? leaf : { x: nested(levels - 1, leaf) });
    expect(sanitizeTwinDocument(nested(MAX_TWIN_DEPTH, 1))).toEqual(nested(MAX_TWIN_DEPTH, 1));
    expect(sanitizeTwinDocument(nested(MAX_TWIN_DEPTH, { y: 1 }))).toEqual(nested(MAX_TWIN_DEPTH, undefined));
    expect(sanitizeTwinDocument(nested(MAX_TWIN_DEPTH - 1, [1, { y: 1 }]))).toEqual(nested(MAX_TWIN_DEPTH - 1, [1, null]));
    expect(MAX_TWIN_DEPTH).toBe(16);
  });

  // First of the tests that install the guard: the one whose call installs it is the one that sees a second call change nothing.
  it('is installed once: guarding again (every new hub client does) wraps nothing twice', () => {
    guarded();
    const proto = device.Twin.prototype as unknown as TwinInternals;
    const merge = proto._mergePatch;
    const onDesired = proto._onDesiredPropertiesUpdate;
    guardTwinMerges(new Logger({ write: () => undefined }));
    expect(proto._mergePatch).toBe(merge);
    expect(proto._onDesiredPropertiesUpdate).toBe(onDesired);
  });

  it('lets the SDK twin merge a hostile desired patch without throwing', () => {
    guarded();
    const twin = Object.create(device.Twin.prototype) as { properties: { desired: Record<string, unknown> }; _onDesiredPropertiesUpdate(p: unknown): void; emit(): boolean };
    twin.properties = { desired: {} };
    twin.emit = () => true;
    // Unguarded, the second patch sets `constructor` on an array and lodash then throws "object.constructor[Symbol.species] is not a constructor".
    expect(() => twin._onDesiredPropertiesUpdate({ trap: [], $version: 1 })).not.toThrow();
    expect(() => twin._onDesiredPropertiesUpdate(JSON.parse('{"trap":{"constructor":null,"a":1},"logLevel":"warn","$version":2}'))).not.toThrow();
    expect(twin.properties.desired).toMatchObject({ logLevel: 'warn', $version: 2 });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('logs a desired patch whose handling threw (here an application listener) instead of throwing out of the MQTT callback', () => {
    guarded();
    const { twin, transport } = twinOnTransport();
    twin.on('properties.desired.logLevel', () => {
      throw new Error('listener bug');
    });
    warnings.length = 0;
    expect(() => transport.emit(DESIRED_PATCH_EVENT, { logLevel: 'warn', $version: 2 })).not.toThrow();
    expect(twin.properties.desired).toEqual({ logLevel: 'warn', $version: 2 });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('event=twin.desired_patch_refused');
    expect(warnings[0]).toContain('listener bug');
  });

  it('logs a merge that threw and leaves the document as it was', () => {
    guarded();
    const { twin } = twinOnTransport();
    const reported: Record<string, unknown> = {};
    Object.defineProperty(reported, 'fw', { enumerable: true, get: () => '1.0', set: () => { throw new Error('read-only property'); } });
    warnings.length = 0;
    expect(() => twin._mergePatch(reported, { fw: '2.0' })).not.toThrow();
    expect(reported.fw).toBe('1.0');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('event=twin.merge_refused');
    expect(warnings[0]).toContain('read-only property');
  });
});
