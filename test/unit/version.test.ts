import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { agentVersion } from '../../agent/version.js';

describe('the agent\'s version', () => {
  it('is the version in the package.json named iot-agent', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name: string; version: string };
    expect(pkg.name).toBe('iot-agent');
    expect(agentVersion()).toBe(pkg.version);
  });
});
