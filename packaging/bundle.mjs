// Bundles the agent (agent/cli.ts and everything it imports, production dependencies
// included) into OUTDIR/dist/agent: cli.js plus one chunk per lazily loaded command, so
// `iot-agent --help` still loads only cli.js and commander; the helper programs the agent
// runs in short-lived processes (HELPERS) beside it; and the packages it needs only now
// and then (LAZY_PACKAGES) in files of their own. Writes the built-in hardening profiles
// as YAML to OUTDIR/profiles. Used by scripts/build-deb.sh.
//
// Identifiers are minified, class names included: the daemon holds the source of every
// chunk it loads for as long as it runs. No class needs its name at run time: an error
// class declares the name its errors carry (AgentError.errorName), and nothing reads the
// name of a class. (esbuild's keepNames would keep every name by renaming each function of
// every library as it is made: ~1 MB more held at ready, tens of ms more start-up, and
// old-generation garbage per direct method.)
//
// usage: node packaging/bundle.mjs OUTDIR
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { Buffer } from 'node:buffer';
import { spawnSync } from 'node:child_process';
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

/** The export `name` of a TypeScript module of the repository that imports nothing (data). */
async function importTs(file, name) {
  const { code } = await esbuild.transform(await readFile(path.join(repo, file), 'utf8'), { loader: 'ts', format: 'esm' });
  return (await import(`data:text/javascript;base64,${Buffer.from(code).toString('base64')}`))[name];
}

// The agent requires some CommonJS modules with requireCopy() (agent/lib/require-copy.ts) along
// chains of packages that agent/lib/module-copies.ts lists by the module that loads them. For
// the bundle, each module's import of require-copy becomes a module made from its row of
// that table: each chain resolved now with Node's own resolution, one static require per
// copy, which esbuild inlines (a chain of one stays a bare name, so a lazy package is still
// required from its own file). The module graph is the same as when run from node_modules,
// and each copy lands in the chunk of the module that loads it.
const REQUIRE_COPY = path.join(repo, 'agent/lib/require-copy.ts');
const COPY = 'iot-agent-copies';
const MODULE_COPIES = await importTs('agent/lib/module-copies.ts', 'MODULE_COPIES');

function resolveChain(loader, chain) {
  if (chain.length === 1) return chain[0];
  let from = path.join(repo, loader);
  for (const id of chain) from = createRequire(from).resolve(id);
  return from;
}

const moduleCopies = {
  name: 'module-copies',
  setup(build) {
    build.onResolve({ filter: /require-copy\.js$/ }, (args) => {
      if (path.resolve(args.resolveDir, args.path.replace(/\.js$/, '.ts')) !== REQUIRE_COPY) return undefined;
      return { path: path.relative(repo, args.importer), namespace: COPY };
    });
    build.onLoad({ filter: /.*/, namespace: COPY }, ({ path: loader }) => {
      const copies = MODULE_COPIES[loader];
      if (!copies) return { errors: [{ text: `${loader} imports requireCopy but agent/lib/module-copies.ts lists no copies for it` }] };
      const entries = Object.entries(copies).map(([name, chain]) => `${JSON.stringify(name)}: () => require(${JSON.stringify(resolveChain(loader, chain))})`);
      return {
        contents: `const copies = {${entries.join(',')}};\n`
          + `export function requireCopy(_url, name) {\n  if (!(name in copies)) throw new Error(${JSON.stringify(loader)} + ' requires ' + name + ', which agent/lib/module-copies.ts does not list for it');\n  return copies[name]();\n}\n`,
        loader: 'js',
        resolveDir: path.dirname(path.join(repo, loader)),
      };
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

// The build's time, the agent's floor for a plausible clock (agent/time/clock-bounds.ts):
// SOURCE_DATE_EPOCH when set (reproducible builds, as Debian's tools set it), else the
// time of the commit built, else now.
function builtAt() {
  const epoch = process.env.SOURCE_DATE_EPOCH ?? spawnSync('git', ['log', '-1', '--format=%ct'], { cwd: repo, encoding: 'utf8' }).stdout?.trim();
  const seconds = Number(epoch);
  return new Date(epoch && Number.isInteger(seconds) ? seconds * 1000 : Date.now()).toISOString();
}

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
  define: { IOT_AGENT_BUILT_AT: JSON.stringify(builtAt()) },
  legalComments: 'none',
  metafile: true,
  write: false,
  logLevel: 'warning',
  // Bundled CommonJS code calls require() for Node's built-ins; in an ES module that
  // function must be made, once per chunk.
  banner: { js: "import{createRequire as __iotAgentRequire}from'node:module';const require=__iotAgentRequire(import.meta.url);" },
  plugins: [moduleCopies, lazyPackages],
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
const BUILTIN_PROFILES = await importTs('hardening/builtin-profiles.ts', 'BUILTIN_PROFILES');
await mkdir(path.join(outdir, 'profiles'), { recursive: true });
for (const [name, yaml] of Object.entries(BUILTIN_PROFILES)) {
  await writeFile(path.join(outdir, 'profiles', `${name}.yaml`), `# Built-in profile "${name}" (compiled into iot-agent; this copy is for reading and extends:).\n${yaml.trimStart()}`);
}

const bytes = Object.values(result.metafile.outputs).reduce((sum, o) => sum + o.bytes, 0);
process.stderr.write(`bundle: ${Object.keys(result.metafile.outputs).length} files, ${(bytes / 1e6).toFixed(1)} MB\n`);
