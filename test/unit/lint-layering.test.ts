import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The restricted-import findings the repository's own lint config gives `source` as if it were `file`. */
async function importFindings(file: string, source: string): Promise<string[]> {
  // Types are not needed to judge an import path, and the file does not exist.
  const eslint = new ESLint({ cwd: ROOT, overrideConfig: [tseslint.configs.disableTypeChecked] });
  const [result] = await eslint.lintText(source, { filePath: path.join(ROOT, file) });
  return (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

describe('the layers of ARCHITECTURE.md, kept by lint', () => {
  it.each([
    ['agent/tpm/upward.ts', "import { Daemon } from '../daemon/daemon.js';", /Upward import: tpm, state/],
    ['agent/lib/upward.ts', "import { loadConfig } from '../config.js';", /Upward import: lib/],
    ['agent/config.ts', "import { parseTransport } from './tpm/transport-spec.js';", /Upward import: config/],
    ['agent/tpm/wire/upward.ts', "import { HubSession } from '../../hub/session.js';", /Upward import: tpm/],
    ['agent/hub/upward.ts', "import { CommandRegistry } from '../commands/registry.js';", /Upward import: provisioning, hub/],
    ['agent/commands/upward.ts', "import { runCli } from '../cli/run.js';", /Upward import: commands, check/],
    ['hardening/upward.ts', "import { Logger } from '../agent/log/logger.js';", /hardening\/ imports from agent\/ only through agent\/lib\//],
    ['agent/daemon/uses-test.ts', "import { SwtpmInstance } from '../../test/support/swtpm.js';", /never imports test\//],
  ])('refuses in %s: %s', async (file, source, expected) => {
    const findings = await importFindings(file, source);
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatch(expected);
  });

  it.each([
    ['agent/daemon/downward.ts', "import { HubSession } from '../hub/session.js';"],
    ['agent/hub/sideways.ts', "import { DesiredFeed } from '../twin/desired-feed.js';"],
    ['agent/tpm/within.ts', "import { TpmClient } from './tpm-client.js';"],
    ['agent/cli.ts', "import { runDaemon } from './daemon/daemon.js';"],
    ['hardening/through-lib.ts', "import { writeFileAtomic } from '../agent/lib/atomic-file.js';"],
  ])('allows in %s: %s', async (file, source) => {
    expect(await importFindings(file, source)).toEqual([]);
  });

  it('still refuses exec with a shell everywhere', async () => {
    expect(await importFindings('agent/tpm/shell.ts', "import { exec } from 'node:child_process';")).toEqual(['\'exec\' import from \'node:child_process\' is restricted. Use execFile with a fixed argv.']);
  });
});
