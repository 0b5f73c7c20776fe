// The layers of the code (ARCHITECTURE.md): a module imports from its own layer or below,
// never from above, and production code never imports test/. Folder names are unique, so
// an import path that leaves its folder (`../`) and names a folder of a higher layer is
// an upward import.
const LAYERS = [
  ['lib'],
  ['config', 'version'],
  ['tpm', 'state', 'retry', 'time', 'log', 'network', 'child', 'azure-sdk'],
  ['provisioning', 'hub', 'telemetry', 'twin', 'attestation', 'hardening', 'hardening-bridge'],
  ['commands', 'check', 'support', 'control'],
  ['daemon', 'cli', 'runtime-overrides'],
];

export const EXEC_WITH_A_SHELL = [
  { name: 'child_process', importNames: ['exec', 'execSync'], message: 'Use execFile with a fixed argv.' },
  { name: 'node:child_process', importNames: ['exec', 'execSync'], message: 'Use execFile with a fixed argv.' },
];
const NO_TEST = { regex: '(^|/)test/', message: 'Production code never imports test/.' };
const alternatives = (names) => names.join('|');

function restrict(files, patterns) {
  return { files, rules: { 'no-restricted-imports': ['error', { paths: EXEC_WITH_A_SHELL, patterns: [NO_TEST, ...patterns] }] } };
}

/** One config block per layer: its folders (agent/<name>/ or agent/<name>.ts) may not reach the layers above. */
export function layering() {
  const blocks = [restrict(['agent/**/*.ts', 'hardening/**/*.ts', 'verifier/**/*.ts'], [])];
  LAYERS.forEach((layer, index) => {
    const above = LAYERS.slice(index + 1).flat();
    if (above.length === 0) return;
    const message = `Upward import: ${layer.join(', ')} (layer ${index}) may not import ${above.join(', ')} (ARCHITECTURE.md, "Layers").`;
    const out = { regex: `^(\\.\\./)+(agent/)?(${alternatives(above)})(/|\\.js$)`, message };
    const top = { regex: `^\\./(${alternatives(above)})(/|\\.js$)`, message };
    for (const name of layer) {
      if (name === 'hardening') continue;
      blocks.push(restrict([`agent/${name}/**/*.ts`], [out]), restrict([`agent/${name}.ts`], [out, top]));
    }
  });
  // The hardening engine runs as root on its own: it reaches the agent only through agent/lib.
  blocks.push(restrict(['hardening/**/*.ts'], [{ regex: '^(\\.\\./)+agent/(?!lib/)', message: 'hardening/ imports from agent/ only through agent/lib/ (ARCHITECTURE.md, "Layers").' }]));
  return blocks;
}
