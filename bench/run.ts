/**
 * Benchmarks, apart from the tests: `npm run bench -- <name>` (or no name for all but
 * the soak and the fleet drill). Each one measures against a floor or baseline in the same run and
 * prints ratios.
 */
const benches: Record<string, () => Promise<{ run(): Promise<void> }>> = {
  tpm: () => import('./tpm.js'),
  agent: () => import('./agent.js'),
  'agent-commands': () => import('./agent-commands.js'),
  'cloud-hub': () => import('./cloud-hub.js'),
  hardening: () => import('./hardening.js'),
  'cloud-dps': () => import('./cloud-dps.js'),
  fleet: () => import('./fleet.js'),
  'support-bundle': () => import('./support-bundle.js'),
  attest: () => import('./attest.js'),
  soak: () => import('./soak.js'),
};
/** Run only when named: the soak is an hour long, the fleet drill needs minutes and gigabytes. */
const ON_REQUEST = new Set(['soak', 'fleet']);

const wanted = process.argv.slice(2);
const unknown = wanted.filter((name) => !(name in benches));
if (unknown.length) {
  process.stderr.write(`unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(benches).join(', ')}\n`);
  process.exit(2);
}
for (const name of wanted.length ? wanted : Object.keys(benches).filter((n) => !ON_REQUEST.has(n))) {
  process.stdout.write(`\n== ${name}\n`);
  await (await benches[name]!()).run();
}
