import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { extract } from 'tar';
import type { Manifest } from '../../agent/support/bundle.js';

/** A support bundle unpacked: its files by path inside the bundle's folder, and the manifest. */
export interface UnpackedBundle {
  folder: string;
  files: Map<string, string>;
  manifest: Manifest;
  json<T = Record<string, unknown>>(name: string): T;
  collector(name: string): Manifest['collectors'][number];
}

/** Extracts a bundle (a file, or its bytes) into a fresh temporary directory, reads every file and removes the directory. */
export async function unpackBundle(archive: string | Buffer): Promise<UnpackedBundle> {
  const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-bundle-test-'));
  try {
    return await unpackInto(dir, archive);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function unpackInto(dir: string, archive: string | Buffer): Promise<UnpackedBundle> {
  let file = archive as string;
  if (Buffer.isBuffer(archive)) {
    file = path.join(dir, 'bundle.tar.gz');
    writeFileSync(file, archive);
  }
  const out = path.join(dir, 'x');
  mkdirSync(out);
  await extract({ file, cwd: out });
  const [folder] = readdirSync(out);
  if (!folder) throw new Error('the archive holds nothing');
  const files = new Map<string, string>();
  const walk = (relative: string) => {
    for (const name of readdirSync(path.join(out, folder, relative))) {
      const inner = path.join(relative, name);
      if (statSync(path.join(out, folder, inner)).isDirectory()) walk(inner);
      else files.set(inner, readFileSync(path.join(out, folder, inner), 'utf8'));
    }
  };
  walk('');
  const manifest = JSON.parse(files.get('manifest.json') ?? '{}') as Manifest;
  return {
    folder, files, manifest,
    json: <T>(name: string) => {
      const text = files.get(name);
      if (text === undefined) throw new Error(`the bundle has no ${name}; it has ${[...files.keys()].join(', ')}`);
      return JSON.parse(text) as T;
    },
    collector: (name) => {
      const entry = manifest.collectors.find((c) => c.name === name);
      if (!entry) throw new Error(`the manifest names no collector ${name}`);
      return entry;
    },
  };
}
