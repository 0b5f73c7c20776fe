import type { Family } from './render-firewall.js';

/**
 * Which iptables implementation loads the rules. Debian's default is nft (`iptables-nft`);
 * `legacy` is the x_tables one; `auto` uses whatever `iptables-restore` the system selects.
 */
export type Backend = 'auto' | 'nft' | 'legacy';
export const BACKENDS: readonly Backend[] = ['auto', 'nft', 'legacy'];

export function saveCommand(backend: Backend, family: Family): string[] {
  return [tool(backend, family, 'save'), '-t', 'filter'];
}

/** `--noflush` keeps every chain we do not declare; `--wait` waits for the xtables lock. */
export function restoreCommand(backend: Backend, family: Family, test: boolean): string[] {
  return [tool(backend, family, 'restore'), '--noflush', '--wait', ...(test ? ['--test'] : [])];
}

function tool(backend: Backend, family: Family, verb: 'save' | 'restore'): string {
  const base = family === 4 ? 'iptables' : 'ip6tables';
  return backend === 'auto' ? `${base}-${verb}` : `${base}-${backend}-${verb}`;
}
