import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { HubDeviceRegistration } from '../contracts.js';
import { JsonStore } from '../json-store.js';
import { emptyTwin, isJsonObject, type JsonObject, type TwinState } from './twin.js';

/** One device identity as the hub's registry holds it (and persists it). */
export interface DeviceRecord {
  deviceId: string;
  registrationId: string | undefined;
  /** Base64 of the device's keys, as IoT Hub shows them in the identity. */
  primaryKey: string;
  secondaryKey: string;
  status: 'enabled' | 'disabled';
  statusReason?: string;
  /** New for every (re)creation of the identity, as IoT Hub's generationId. */
  generationId: string;
  /** Bumped whenever the identity changes; the identity's etag derives from it. */
  identityVersion: number;
  createdTime: string;
  twin: TwinState;
}

export class RegistryError extends Error {
  constructor(readonly code: 'DeviceNotFound' | 'ArgumentInvalid', message: string) {
    super(message);
  }
}

/** IoT Hub's rule for device ids: up to 128 of these characters. */
const DEVICE_ID = /^[A-Za-z0-9\-.%_*?!(),:=@$']{1,128}$/;
const SCHEMA = 1;

export class DeviceRegistry {
  private readonly devices = new Map<string, DeviceRecord>();
  private readonly file: JsonStore<RegistryDocument>;

  private constructor(stateFile: string) {
    this.file = new JsonStore(stateFile, parseRegistryDocument);
  }

  static open(stateDir: string): DeviceRegistry {
    const registry = new DeviceRegistry(path.join(stateDir, 'hub-devices.json'));
    for (const device of registry.file.load()?.devices ?? []) registry.devices.set(device.deviceId, device);
    return registry;
  }

  get(deviceId: string): DeviceRecord | undefined {
    return this.devices.get(deviceId);
  }

  require(deviceId: string): DeviceRecord {
    const device = this.devices.get(deviceId);
    if (!device) throw new RegistryError('DeviceNotFound', `Device ${deviceId} not registered`);
    return device;
  }

  get size(): number {
    return this.devices.size;
  }

  /**
   * Creates the identity or, for a device DPS assigns again, replaces its key
   * (re-provisioning gives the TPM a fresh identity key); the twin is kept. A device
   * disabled in the registry stays disabled unless `reenable` (whether a DPS
   * re-registration enables it again is not documented: the hub makes it a knob).
   */
  async register(registration: HubDeviceRegistration, reenable = false): Promise<DeviceRecord> {
    if (!DEVICE_ID.test(registration.deviceId)) {
      throw new RegistryError('ArgumentInvalid', `device id ${JSON.stringify(registration.deviceId.slice(0, 40))} is not valid for IoT Hub`);
    }
    if (registration.primaryKey.length < 16 || registration.primaryKey.length > 64) {
      throw new RegistryError('ArgumentInvalid', 'device key must be 16 to 64 bytes');
    }
    const existing = this.devices.get(registration.deviceId);
    const desired = registration.initialTwin?.properties?.desired;
    const tags = registration.initialTwin?.tags;
    const record: DeviceRecord = {
      deviceId: registration.deviceId,
      registrationId: registration.registrationId,
      primaryKey: registration.primaryKey.toString('base64'),
      secondaryKey: existing?.secondaryKey ?? randomBytes(32).toString('base64'),
      status: existing?.status === 'disabled' && !reenable ? 'disabled' : 'enabled',
      ...(existing?.status === 'disabled' && !reenable && existing.statusReason ? { statusReason: existing.statusReason } : {}),
      generationId: existing?.generationId ?? generationId(),
      identityVersion: (existing?.identityVersion ?? 0) + 1,
      createdTime: existing?.createdTime ?? new Date().toISOString(),
      twin: existing?.twin ?? emptyTwin(asObject(desired), asObject(tags)),
    };
    this.devices.set(record.deviceId, record);
    await this.save();
    return record;
  }

  /** The service API's identity update: status (with its reason) and, when given, new keys. */
  async updateIdentity(deviceId: string, change: { status?: DeviceRecord['status']; statusReason?: string; primaryKey?: string; secondaryKey?: string }): Promise<DeviceRecord> {
    const device = this.require(deviceId);
    const next: DeviceRecord = {
      ...device,
      status: change.status ?? device.status,
      primaryKey: change.primaryKey ?? device.primaryKey,
      secondaryKey: change.secondaryKey ?? device.secondaryKey,
      identityVersion: device.identityVersion + 1,
    };
    if (change.statusReason !== undefined) next.statusReason = change.statusReason;
    this.devices.set(deviceId, next);
    await this.save();
    return next;
  }

  async updateTwin(deviceId: string, twin: TwinState): Promise<void> {
    const device = this.require(deviceId);
    this.devices.set(deviceId, { ...device, twin });
    await this.save();
  }

  async remove(deviceId: string): Promise<void> {
    this.require(deviceId);
    this.devices.delete(deviceId);
    await this.save();
  }

  /** Waits for writes in flight, so a stopped hub leaves its state on disk. */
  flush(): Promise<void> {
    return this.save();
  }

  private save(): Promise<void> {
    return this.file.save(() => ({ schema: SCHEMA, devices: [...this.devices.values()] }));
  }
}

/** What `hub-devices.json` holds. */
interface RegistryDocument {
  schema: typeof SCHEMA;
  devices: DeviceRecord[];
}

function parseRegistryDocument(doc: unknown): RegistryDocument {
  if (!isJsonObject(doc) || doc.schema !== SCHEMA || !Array.isArray(doc.devices)) {
    throw new Error(`the hub's device registry has an unknown layout (want schema ${SCHEMA})`);
  }
  const devices = doc.devices as unknown[];
  if (!devices.every(isDeviceRecord)) throw new Error('the hub\'s device registry holds a device record it cannot read');
  return { schema: SCHEMA, devices };
}

export function identityEtag(device: DeviceRecord): string {
  return Buffer.from(`${device.generationId}:${device.identityVersion}`).toString('base64');
}

function generationId(): string {
  // IoT Hub's generation ids are 18-digit decimal strings.
  return BigInt(`0x${randomBytes(8).toString('hex')}`).toString().padStart(18, '6').slice(0, 18);
}

function isDeviceRecord(value: unknown): value is DeviceRecord {
  if (!isJsonObject(value)) return false;
  const { deviceId, primaryKey, secondaryKey, twin } = value;
  return typeof deviceId === 'string' && typeof primaryKey === 'string' && typeof secondaryKey === 'string'
    && isJsonObject(twin) && isJsonObject(twin.desired) && isJsonObject(twin.reported) && typeof twin.version === 'number';
}

function asObject(value: unknown): JsonObject {
  return isJsonObject(value) ? value : {};
}
