// Bundles the agent (agent/cli.ts and everything it imports, production dependencies
// included) into OUTDIR/dist/agent: cli.js plus one chunk per lazily loaded command, so
// `iot-agent --help` still loads only cli.js and commander; the helper programs the agent
// runs in short-lived processes (HELPERS) beside it; and the packages it needs only now
// and then (LAZY_PACKAGES) in files of their own. Writes the built-in hardening profiles
// as YAML to OUTDIR/profiles. Used by scripts/build-deb.sh.
//
// Identifiers are minified, the agent's class names kept (keepClassNames): the daemon
// holds the source of every chunk it loads for as long as it runs.
//
// usage: node packaging/bundle.mjs OUTDIR
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { Buffer } from 'node:buffer';
import { createRequire } from 'node:module';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = process.argv[2];
if (!outdir) {
  process.stderr.write('usage: node packaging/bundle.mjs OUTDIR\n');
  process.exit(2);
}

// The agent loads some CommonJS modules through createRequire(), which a bundler cannot
// follow: `createRequire(import.meta.url)(id)` (to spare Node's ESM export scan), and
// require functions rooted in a dependency, `const r = createRequire(<require>.resolve(pkg))`,
// to reach the very copy of a module the Azure SDK uses. For the bundle, both are resolved
// now, with Node's own resolution, into plain require("<absolute path>") calls that
// esbuild inlines; the module graph stays the same as when run from node_modules.
const requireRoot = /const (\w+) = createRequire\((createRequire\(import\.meta\.url\)|\w+)\.resolve\('([^']+)'\)\);\n/g;
function resolveCreateRequire(source, file) {
  const bases = new Map();
  let out = source.replace(requireRoot, (_, name, from, pkg) => {
    const base = from.startsWith('createRequire') ? file : bases.get(from);
    if (!base) throw new Error(`${file}: ${from}.resolve: unknown require function`);
    bases.set(name, createRequire(base).resolve(pkg));
    return '';
  });
  for (const [name, base] of bases) {
    out = out.replace(new RegExp(`\\b${name}\\('([^']+)'\\)`, 'g'), (_, id) => `require(${JSON.stringify(createRequire(base).resolve(id))})`);
  }
  return out.replaceAll('createRequire(import.meta.url)(', 'require(');
}

// The agent's own classes keep their names through minification: errors carry them in
// logs and across to and from the helper processes. (esbuild's keepNames would do it for
// every function, renaming each closure of a library on every call: ~1 MB more held at
// ready, tens of ms more start-up, and old-generation garbage per direct method.)
const className = /^(\s*(?:export\s+)?(?:abstract\s+)?class\s+([A-Za-z_$][\w$]*)\b[^{\n]*\{)$/gm;
function keepClassNames(source) {
  return source.replace(className, (_, head, name) => `${head} static { Object.defineProperty(this, 'name', { value: ${JSON.stringify(name)} }); }`);
}

const agentSources = {
  name: 'agent-sources',
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      return { contents: keepClassNames(resolveCreateRequire(source, args.path)), loader: 'ts' };
    });
  },
};

// Programs the agent starts in short-lived processes (agent/child/run-child.ts finds them
// under dist/agent by these paths).
const HELPERS = ['agent/provisioning/child-main.ts', 'agent/telemetry/system-info-main.ts'];

// Packages on paths the daemon rarely takes, each bundled into a CommonJS file of its own
// in dist/agent/lazy and required from there when first used: until then their code is in
// no chunk the daemon loads. The agent requires them where they are used; an import would
// load them with the chunk.
const LAZY_PACKAGES = {
  '@azure/storage-blob': "azure-iot-device's file upload, which the agent does not use",
  yaml: 'the config file and hardening profiles, read now and then',
};
const LAZY = 'iot-agent-lazy:';
const lazyFile = (pkg) => `lazy/${pkg.replace(/^@/, '').replace(/\//g, '-')}.cjs`;
const lazyPackages = {
  name: 'lazy-packages',
  setup(build) {
    const names = Object.keys(LAZY_PACKAGES).map((name) => name.replace(/[/.]/g, '\\$&'));
    build.onResolve({ filter: new RegExp(`^(${names.join('|')})$`) }, (args) => args.kind === 'require-call'
      ? { path: `${LAZY}${args.path}`, external: true }
      : { errors: [{ text: `${args.path} is bundled apart (dist/agent/lazy): require it where it is used instead of importing it` }] });
  },
};

const agentDir = path.join(outdir, 'dist/agent');
const result = await esbuild.build({
  absWorkingDir: repo,
  entryPoints: ['agent/cli.ts', ...HELPERS],
  outbase: 'agent',
  outdir: agentDir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  chunkNames: 'chunks/[name]-[hash]',
  minifySyntax: true,
  minifyWhitespace: true,
  minifyIdentifiers: true,
  legalComments: 'none',
  metafile: true,
  write: false,
  logLevel: 'warning',
  // Bundled CommonJS code calls require() for Node's built-ins; in an ES module that
  // function must be made, once per chunk.
  banner: { js: "import{createRequire as __iotAgentRequire}from'node:module';const require=__iotAgentRequire(import.meta.url);" },
  plugins: [agentSources, lazyPackages],
});
// A lazy package is required by a path relative to the file that requires it.
for (const file of result.outputFiles) {
  const text = file.text.replace(new RegExp(`"${LAZY}([^"]+)"`, 'g'), (_, pkg) =>
    JSON.stringify(`./${path.relative(path.dirname(file.path), path.join(agentDir, lazyFile(pkg)))}`.replace(/^\.\/\.\.\//, '../')));
  await mkdir(path.dirname(file.path), { recursive: true });
  await writeFile(file.path, text, { mode: file.path.endsWith('/cli.js') ? 0o755 : 0o644 });
}
for (const pkg of Object.keys(LAZY_PACKAGES)) {
  await esbuild.build({
    absWorkingDir: repo,
    entryPoints: [createRequire(path.join(repo, 'package.json')).resolve(pkg)],
    outfile: path.join(agentDir, lazyFile(pkg)),
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    minify: true,
    keepNames: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
}

// The built-in profiles, as the YAML an operator starts a site profile from.
const profilesTs = await readFile(path.join(repo, 'hardening/builtin-profiles.ts'), 'utf8');
const { code } = await esbuild.transform(profilesTs, { loader: 'ts', format: 'esm' });
const { BUILTIN_PROFILES } = await import(`data:text/javascript;base64,${Buffer.from(code).toString('base64')}`);
await mkdir(path.join(outdir, 'profiles'), { recursive: true });
for (const [name, yaml] of Object.entries(BUILTIN_PROFILES)) {
  await writeFile(path.join(outdir, 'profiles', `${name}.yaml`), `# Built-in profile "${name}" (compiled into iot-agent; this copy is for reading and extends:).\n${yaml.trimStart()}`);
}

const bytes = Object.values(result.metafile.outputs).reduce((sum, o) => sum + o.bytes, 0);
process.stderr.write(`bundle: ${Object.keys(result.metafile.outputs).length} files, ${(bytes / 1e6).toFixed(1)} MB\n`);
