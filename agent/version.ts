import pkg from '../package.json' with { type: 'json' };

/**
 * The package version, baked into the build: tsc emits package.json beside the compiled
 * code and the bundle inlines it, so nothing reads a package.json at run time (the .deb's
 * carries no version).
 */
export const AGENT_VERSION: string = pkg.version;

export function agentVersion(): string {
  return AGENT_VERSION;
}
