import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MODULE_COPIES, type ModuleCopy } from '../../agent/lib/module-copies.js';
import { requireCopy } from '../../agent/lib/require-copy.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const urlOf = (file: string) => pathToFileURL(path.join(repo, file)).href;

describe('requireCopy', () => {
  it('reaches the copy the SDK loads: the ws inside azure-iot-mqtt-base, not the one at the top', () => {
    const nested: unknown = createRequire(path.join(repo, 'node_modules/azure-iot-mqtt-base/node_modules/mqtt/package.json'))('ws');
    expect(requireCopy(urlOf('agent/azure-sdk/sdk-modules.ts'), 'ws')).toBe(nested);
    expect(requireCopy(urlOf('agent/azure-sdk/sdk-modules.ts'), 'ws')).not.toBe(createRequire(import.meta.url)('ws'));
  });

  it('refuses a copy the table does not list for the module asking, naming the table', () => {
    expect(() => requireCopy(urlOf('agent/config.ts'), 'tss.js')).toThrow(/agent\/config\.ts requires tss\.js, which agent\/lib\/module-copies\.ts does not list/);
    expect(() => requireCopy(import.meta.url, 'yaml')).toThrow(/test\/unit\/require-copy\.test\.ts requires yaml/);
  });

  it('finds every copy the table lists, from the module it lists it for', () => {
    for (const [loader, copies] of Object.entries(MODULE_COPIES)) {
      for (const name of Object.keys(copies)) expect(requireCopy(urlOf(loader), name as ModuleCopy), `${loader}: ${name}`).toBeDefined();
    }
  });

  it('knows a module of the compiled build by the source file the table lists', () => {
    const fromSource = requireCopy(urlOf('agent/azure-sdk/sdk-modules.ts'), 'mqtt');
    expect(requireCopy(urlOf('agent/azure-sdk/sdk-modules.js'), 'mqtt')).toBe(fromSource);
    expect(() => requireCopy(urlOf('agent/lib/a.js-folder/b.js'), 'yaml')).toThrow(/^agent\/lib\/a\.js-folder\/b\.ts requires yaml,/);
  });
});
