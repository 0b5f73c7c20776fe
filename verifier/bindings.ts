import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../agent/lib/atomic-file.js';
import type { Binding } from './bind.js';
import { VerifierError } from './errors.js';

/** Where bound AKs are kept between verifications: bind once, then only quote. */
export interface BindingStore {
  get(deviceId: string): Promise<Binding | undefined>;
  put(binding: Binding): Promise<void>;
}

/** One JSON file per device: `<dir>/<hub host>/<device id>.json`, names percent-encoded. */
export class FileBindingStore implements BindingStore {
  private readonly dir: string;

  constructor(root: string, hubHost: string) {
    this.dir = path.join(root, encodeURIComponent(hubHost));
  }

  async get(deviceId: string): Promise<Binding | undefined> {
    const file = this.fileOf(deviceId);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new VerifierError(`cannot read the binding ${file}`, { cause: err });
    }
    try {
      return parseBinding(JSON.parse(text), deviceId);
    } catch (err) {
      throw new VerifierError(`the binding ${file} is unreadable: ${(err as Error).message}`, { hint: 'bind again with --rebind (which replaces it)' });
    }
  }

  async put(binding: Binding): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.fileOf(binding.deviceId), `${JSON.stringify(binding, null, 2)}\n`, 0o600);
  }

  private fileOf(deviceId: string): string {
    return path.join(this.dir, `${encodeURIComponent(deviceId)}.json`);
  }
}

/** Checks a stored binding: the fields a verification relies on, of the right shape, for this device. */
export function parseBinding(value: unknown, deviceId: string): Binding {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not a JSON object');
  const b = value as Record<string, unknown>;
  const field = (key: string, pattern: RegExp): string => {
    const v = b[key];
    if (typeof v !== 'string' || !pattern.test(v)) throw new Error(`${key} is missing or malformed`);
    return v;
  };
  const binding: Binding = {
    deviceId: field('deviceId', /^.{1,128}$/),
    akPublic: field('akPublic', /^[A-Za-z0-9+/]{4,2000}={0,2}$/),
    akName: field('akName', /^000b[0-9a-f]{64}$/),
    ekName: field('ekName', /^000b[0-9a-f]{64}$/),
    boundAt: field('boundAt', /^\d{4}-\d\d-\d\dT[\d:.]+Z$/),
  };
  if (binding.deviceId !== deviceId) throw new Error(`it is the binding of ${JSON.stringify(binding.deviceId)}`);
  return binding;
}
