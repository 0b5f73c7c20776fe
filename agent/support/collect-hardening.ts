import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { saveCommand } from '../../hardening/backend.js';
import { agentLines } from '../../hardening/drift.js';
import { HardeningEngine } from '../../hardening/engine.js';
import type { AppliedRecord } from '../../hardening/records.js';
import { isHostController, renderSysctls, USB_DEVICES_DIR } from '../../hardening/render-host.js';
import { parseFilterTable } from '../../hardening/restore-text.js';
import { ProcSysctl } from '../../hardening/sysctl-io.js';
import { describeError } from '../lib/errors.js';
import { netnsPrefix } from '../lib/exec.js';
import type { CollectContext, Collector } from './collector.js';
import type { BundleSources } from './sources.js';

/**
 * Hardening as it stands: the records (applied, known good, pending, last apply, last
 * verify), the drift (verified live as root, otherwise the last root run's record), the
 * agent's own firewall chains and the jumps into them (never other software's rules), the
 * sysctls the applied profile manages, and the USB authorization state.
 */
export function hardeningCollector(sources: BundleSources): Collector {
  const site = sources.hardening;
  const prefix = netnsPrefix(site.netns);
  const engine = new HardeningEngine({
    root: site.root, backend: site.backend, commandPrefix: prefix, ...(site.stateDir ? { stateDir: site.stateDir } : {}),
  });
  return {
    name: 'hardening', reads: `records in ${engine.records.dir}, ${site.netns ? `namespace ${site.netns}: ` : ''}firewall, sysctls, ${path.join(site.root, USB_DEVICES_DIR)}`,
    timeoutMs: 15_000,
    collect: async (context) => {
      const records = await readRecords(engine);
      const applied = records.applied as AppliedRecord | Unreadable | null;
      const [verify, firewall, sysctls, usb] = await Promise.all([
        verifyReport(engine),
        Promise.all(([4, 6] as const).map((family) => agentChains(context, [...prefix, ...saveCommand(site.backend, family)]))),
        managedSysctls(context, prefix, applied),
        usbState(site.root),
      ]);
      return [
        { name: 'hardening/records.json', json: records },
        { name: 'hardening/verify.json', json: verify },
        { name: 'hardening/firewall.json', json: { ipv4: firewall[0], ipv6: firewall[1] } },
        { name: 'hardening/sysctls.json', json: sysctls },
        { name: 'hardening/usb.json', json: usb },
      ];
    },
  };
}

/** A record that could not be read, as records.json shows it. */
type Unreadable = { unreadable: string };

async function readRecords(engine: HardeningEngine): Promise<Record<string, unknown>> {
  const { records } = engine;
  const files = { applied: records.applied, 'known-good': records.knownGood, pending: records.pending, 'last-apply': records.lastApply,
    verified: records.verified, boot: records.boot, originals: records.originals };
  const entries = await Promise.all(Object.entries(files).map(async ([name, file]) => {
    try {
      return [name, await file.read()] as const;
    } catch (err) {
      return [name, { unreadable: describeError(err) }] as const;
    }
  }));
  return Object.fromEntries<unknown>(entries);
}

/** `harden verify --json` as root; otherwise what the last root run recorded, with when and who. */
async function verifyReport(engine: HardeningEngine): Promise<Record<string, unknown>> {
  if (process.getuid?.() === 0) {
    try {
      return { source: 'verified now (as root)', report: await engine.verify() };
    } catch (err) {
      return { source: 'verified now (as root)', error: describeError(err) };
    }
  }
  try {
    return { source: 'recorded by the last root run (boot apply, guard or harden-apply@): reading the firewall needs root', report: await engine.lastVerified() };
  } catch (err) {
    return { source: 'recorded', error: describeError(err) };
  }
}

async function agentChains(context: CollectContext, argv: string[]): Promise<Record<string, unknown>> {
  const outcome = await context.exec(argv, { maxBytes: 4 * 1024 * 1024 });
  if (outcome.exitCode !== 0 || outcome.error) {
    return { command: argv.join(' '), error: outcome.error ?? `exit code ${outcome.exitCode}: ${outcome.stderr.trim().split('\n')[0] ?? ''}` };
  }
  return { command: argv.join(' '), lines: agentLines(parseFilterTable(outcome.stdout)) };
}

async function managedSysctls(context: CollectContext, prefix: string[], applied: AppliedRecord | Unreadable | null): Promise<Record<string, unknown>> {
  if (!applied) return { note: 'no profile applied: no sysctl is managed', values: {} };
  // A corrupt record is exactly when a bundle is needed: the rest of it is still collected.
  if ('unreadable' in applied) return { note: 'the applied record cannot be read (see records.json): no sysctl to compare', values: {} };
  const keys = Object.keys(renderSysctls(applied.profile));
  const expected = renderSysctls(applied.profile);
  let live: Record<string, string | null>;
  if (prefix.length === 0) {
    live = await new ProcSysctl().read(keys);
  } else {
    // net.* sysctls belong to the namespace: read them inside it.
    const outcome = await context.exec([...prefix, 'sysctl', '-e', ...keys]);
    if (outcome.error || outcome.exitCode !== 0) return { error: outcome.error ?? `sysctl exit code ${outcome.exitCode}`, expected };
    live = Object.fromEntries(keys.map((k) => [k, null]));
    for (const line of outcome.stdout.split('\n')) {
      const m = /^(\S+)\s*=\s*(.*)$/.exec(line);
      if (m && m[1]! in live) live[m[1]!] = m[2]!.trim();
    }
  }
  return { profile: applied.profile.name, values: Object.fromEntries(keys.map((k) => [k, { expected: expected[k], live: live[k] ?? null }])) };
}

/** Host controllers' authorized_default and each device's authorized flag and ids. */
async function usbState(root: string): Promise<Record<string, unknown>> {
  const dir = path.join(root, USB_DEVICES_DIR);
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (err) {
    return { dir, note: `no USB devices directory (${(err as NodeJS.ErrnoException).code ?? describeError(err)})` };
  }
  const read = (name: string, attribute: string) => readFile(path.join(dir, name, attribute), 'utf8').then((t) => t.trim(), () => null);
  const controllers: Record<string, string | null> = {};
  const devices: Record<string, Record<string, string | null>> = {};
  for (const name of names) {
    if (isHostController(name)) controllers[name] = await read(name, 'authorized_default');
    else if (!name.includes(':')) { // interfaces (1-1:1.0) have no authorized flag of their own that matters here
      const [authorized, idVendor, idProduct, product] = await Promise.all(['authorized', 'idVendor', 'idProduct', 'product'].map((a) => read(name, a)));
      devices[name] = { authorized: authorized!, idVendor: idVendor!, idProduct: idProduct!, product: product! };
    }
  }
  return { dir, controllersAuthorizedDefault: controllers, devices };
}
