import type { HubBroker } from './broker.js';
import type { HubCounters } from './counters.js';
import type { D2cLog } from './d2c-log.js';
import type { HubFaults } from './faults.js';
import type { PendingMethods } from './methods.js';
import { splitProperties } from './property-bag.js';
import type { DeviceRegistry } from './registry.js';
import type { DeviceRequest } from './topics.js';
import { deviceTwinView, patchReported, TwinPatchError, type JsonObject } from './twin.js';

/**
 * What the hub does with a request a device published (already authorized and parsed):
 * D2C capture, twin GET, reported PATCH, direct method answers. Twin answers go back
 * on `$iothub/twin/res/{status}/?$rid=…`, errors with IoT Hub's `{errorCode, message}`,
 * throttling as 429 (429001 ThrottlingException). A D2C message published with RETAIN
 * gets the application property `mqtt-retain: true` instead of being kept.
 */
export interface DeviceRequestContext {
  registry: DeviceRegistry;
  broker: Pick<HubBroker, 'sendToDevice'>;
  d2cLog: D2cLog;
  counters: HubCounters;
  methods: PendingMethods;
  faults: HubFaults;
}

export function handleDeviceRequest(ctx: DeviceRequestContext, deviceId: string, request: DeviceRequest, payload: Buffer,
  flags: { retain: boolean } = { retain: false }): void {
  switch (request.kind) {
    case 'telemetry': {
      const { system, application } = splitProperties(request.properties);
      const properties = flags.retain ? { ...application, 'mqtt-retain': 'true' } : application;
      ctx.d2cLog.add({ deviceId, body: payload, systemProperties: system, properties });
      ctx.counters.d2cMessages++;
      return;
    }
    case 'twin-get': {
      if (throttled(ctx, deviceId, request.rid, 'get')) return;
      ctx.counters.twinGets++;
      const device = ctx.registry.get(deviceId);
      if (!device) return twinError(ctx, deviceId, request.rid, 404, 404001, 'Device not found');
      ctx.broker.sendToDevice(deviceId, `$iothub/twin/res/200/?$rid=${request.rid}`, JSON.stringify(deviceTwinView(device.twin)));
      ctx.faults.takeAfterTwinGet()?.();
      return;
    }
    case 'twin-patch-reported':
      if (throttled(ctx, deviceId, request.rid, 'patch')) return;
      patchReportedProperties(ctx, deviceId, request.rid, payload)
        .catch((err: Error) => twinError(ctx, deviceId, request.rid, 500, 500001, err.message));
      return;
    case 'method-response':
      ctx.methods.answer(deviceId, request.rid, { status: request.status, payload });
      return;
  }
}

async function patchReportedProperties(ctx: DeviceRequestContext, deviceId: string, rid: string, payload: Buffer): Promise<void> {
  const device = ctx.registry.get(deviceId);
  if (!device) return twinError(ctx, deviceId, rid, 404, 404001, 'Device not found');
  let twin;
  try {
    twin = patchReported(device.twin, JSON.parse(payload.toString('utf8')) as JsonObject);
  } catch (err) {
    if (err instanceof TwinPatchError || err instanceof SyntaxError) {
      ctx.counters.reportedRefused++;
      return twinError(ctx, deviceId, rid, 400, 400004, err.message);
    }
    throw err;
  }
  // Answered once the new twin is on disk, so a 204 means it survives a restart.
  await ctx.registry.updateTwin(deviceId, twin);
  ctx.counters.reportedPatches++;
  ctx.broker.sendToDevice(deviceId, `$iothub/twin/res/204/?$rid=${rid}&$version=${twin.reportedVersion}`, '');
}

function throttled(ctx: DeviceRequestContext, deviceId: string, rid: string, operation: 'get' | 'patch'): boolean {
  if (!ctx.faults.takeTwinThrottle(operation)) return false;
  ctx.counters.twinThrottled++;
  twinError(ctx, deviceId, rid, 429, 429001, 'ThrottlingException: too many twin requests; back off and retry');
  return true;
}

function twinError(ctx: DeviceRequestContext, deviceId: string, rid: string, status: number, code: number, message: string): void {
  ctx.broker.sendToDevice(deviceId, `$iothub/twin/res/${status}/?$rid=${rid}`, JSON.stringify({ errorCode: code, message }));
}
