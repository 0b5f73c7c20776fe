import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MODULE_COPIES, type ModuleCopy } from './module-copies.js';

/** Where the repository's folders (or the compiled build's, under dist/) begin. */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Requires the module copy `name` that the module at `url` (its import.meta.url) lists in
 * MODULE_COPIES, along the chain written there. A module or name missing from the table is
 * an error here, in development and tests, as it would be in the bundle, which is built
 * from the table alone.
 */
export function requireCopy(url: string, name: ModuleCopy): unknown {
  const file = fileURLToPath(url);
  const loader = path.relative(root, file).replace(/\.js$/, '.ts');
  const chain = (MODULE_COPIES as Record<string, Record<string, readonly string[]> | undefined>)[loader]?.[name];
  if (chain === undefined) throw new Error(`${loader} requires ${name}, which agent/lib/module-copies.ts does not list for it`);
  let from = file;
  for (const id of chain.slice(0, -1)) from = createRequire(from).resolve(id);
  return createRequire(from)(chain[chain.length - 1]!);
}
