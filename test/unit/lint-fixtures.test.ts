import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HEAD = "import { beforeAll, describe, it } from 'vitest';\nimport { mkdtempSync } from 'node:fs';\nimport path from 'node:path';\nimport { SoftwareTpm } from '../cloud/dps/software-tpm.js';\n";

/** The lines the repository's own lint config reports collection-time work on in `body`, as if it were `file`. */
async function workFindings(body: string, file = 'test/unit/made-up.test.ts'): Promise<number[]> {
  // Types are not needed to resolve an import, and the file does not exist.
  const eslint = new ESLint({ cwd: ROOT, overrideConfig: [tseslint.configs.disableTypeChecked] });
  const [result] = await eslint.lintText(HEAD + body, { filePath: path.join(ROOT, file) });
  const offset = HEAD.split('\n').length - 1;
  return (result?.messages ?? []).filter((m) => m.ruleId === 'tests/collection-time-work').map((m) => m.line - offset);
}

describe('fixtures made while a test file is collected, refused by lint', () => {
  it.each([
    ['at the top level', 'const tpm = SoftwareTpm.create();', 1],
    ['in a describe body', "describe('x', () => {\n  const dir = mkdtempSync('/tmp/x-');\n});", 2],
    ['in a describe.each body', "describe.each([1])('x %i', () => {\n  const dir = mkdtempSync('/tmp/x-');\n});", 2],
    ['in the rows of it.each', "it.each([\n  [SoftwareTpm.create()],\n])('x', () => undefined);", 2],
    ['inside an object literal', 'const fixture = {\n  tpm: SoftwareTpm.create() };', 2],
    ['in a test name', "it(`x ${mkdtempSync('/tmp/x-')}`, () => undefined);", 1],
  ])('refuses one %s', async (_where, body, line) => {
    expect(await workFindings(body)).toEqual([line]);
  });

  it.each([
    ['in a test', "it('x', () => {\n  SoftwareTpm.create();\n});"],
    ['in a hook', "describe('x', () => {\n  let dir: string;\n  beforeAll(() => { dir = mkdtempSync('/tmp/x-'); });\n  it('y', () => dir);\n});"],
    ['in a helper the test calls', "const tpm = () => SoftwareTpm.create();\nfunction dir() { return mkdtempSync('/tmp/x-'); }"],
    ['as a constant from the standard library', "const file = path.join('/tmp', 'x');\nconst key = Buffer.alloc(32, 7);"],
  ])('allows work %s', async (_where, body) => {
    expect(await workFindings(body)).toEqual([]);
  });

  it('leaves files that are not collected as tests alone', async () => {
    expect(await workFindings('const tpm = SoftwareTpm.create();', 'test/support/made-up.ts')).toEqual([]);
  });
});
