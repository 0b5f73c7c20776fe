import { describe, expect, it } from 'vitest';
import { helperEnvironment } from '../../agent/child/run-child.js';

describe('a helper process\'s environment', () => {
  it('is the daemon\'s without its V8 memory settings, keeping every other option', () => {
    const env = helperEnvironment({ PATH: '/usr/bin', NODE_OPTIONS: '--max-semi-space-size=1  --jitless --use-openssl-ca --max-old-space-size=128' });
    expect(env).toEqual({ PATH: '/usr/bin', NODE_OPTIONS: '--use-openssl-ca' });
  });

  it('is left alone without NODE_OPTIONS, and does not mistake look-alike flags', () => {
    expect(helperEnvironment({ PATH: '/usr/bin' })).toEqual({ PATH: '/usr/bin' });
    expect(helperEnvironment({ NODE_OPTIONS: '--jitless-x --max-old-space-sizes=1 --title=x--jitless' }).NODE_OPTIONS)
      .toBe('--jitless-x --max-old-space-sizes=1 --title=x--jitless');
  });
});
