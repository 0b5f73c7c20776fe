import { describe, expect, it } from 'vitest';
import { allUnitNodeFlags, unitNodeFlags } from '../support/unit-node-flags.js';

describe('the node flags of a unit file, as tests and benchmarks read them', () => {
  it('takes NODE_OPTIONS, then the flags before the script on a node ExecStart', () => {
    const unit = '[Service]\nExecStart=/usr/bin/node --lite-mode --disable-warning=DEP0005 /usr/lib/iot-agent/dist/agent/cli.js run --verbose\n'
      + 'Environment="NODE_OPTIONS=--max-semi-space-size=1  --jitless"\n';
    expect(unitNodeFlags(unit)).toEqual({ nodeOptions: ['--max-semi-space-size=1', '--jitless'], execStart: ['--lite-mode', '--disable-warning=DEP0005'] });
    expect(allUnitNodeFlags(unit)).toEqual(['--max-semi-space-size=1', '--jitless', '--lite-mode', '--disable-warning=DEP0005']);
  });

  it.each([
    ['no ExecStart and no NODE_OPTIONS', '[Service]\nType=notify\n'],
    ['an ExecStart that is not node', '[Service]\nExecStart=/usr/bin/iot-agent --lite-mode run\n'],
    ['a commented-out line', '[Service]\n# ExecStart=/usr/bin/node --lite-mode x.js\n#Environment="NODE_OPTIONS=--jitless"\n'],
    ['an unquoted Environment= (which systemd would cut at the first space)', '[Service]\nEnvironment=NODE_OPTIONS=--jitless --lite-mode\n'],
    ['a node ExecStart without flags', '[Service]\nExecStart=/usr/bin/node /usr/lib/iot-agent/dist/agent/cli.js run\n'],
  ])('finds none in a unit with %s', (_what, unit) => {
    expect(allUnitNodeFlags(unit)).toEqual([]);
  });
});
