import { readFileSync } from 'node:fs';

/**
 * The package version, read from package.json: one level above dist/ when run from the
 * build (dist/agent/…), next to dist/ in the .deb, and at a different depth for the
 * bundle's chunks — so the nearest package.json named iot-agent wins.
 */
export function agentVersion(): string {
  for (const relative of ['../package.json', '../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'iot-agent' && pkg.version) return pkg.version;
    } catch {
      // not there: try the next level up
    }
  }
  return '0.0.0';
}
