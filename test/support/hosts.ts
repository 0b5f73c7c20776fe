import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { LookupAddress, LookupOptions } from 'node:dns';
import { lookup as systemLookup } from 'node:dns';
import type { LookupFunction } from 'node:net';

/**
 * DNS names for the local cloud without touching this machine's /etc/hosts: a private
 * hosts file (the machine's own entries plus the cloud's names on their 127.x addresses),
 * bind-mounted over /etc/hosts in a mount namespace of the agent's process tree only
 * (`unshare --mount`, which needs root, as the suite runs in CI). In the test process
 * itself, clients that take a `lookup` (https.Agent, tls.connect) resolve the same names.
 */
export type HostEntries = Record<string, string>;

/** Names that look like Azure's: `hub-xxxx.azure-devices.test`, `dps-xxxx.azure-devices-provisioning.test` (RFC 6761 .test). */
export function cloudHostNames(hubs = 1): { dps: string; hubs: string[] } {
  const tag = randomBytes(3).toString('hex');
  return {
    dps: `dps-${tag}.azure-devices-provisioning.test`,
    hubs: Array.from({ length: hubs }, (_, i) => `hub${i + 1}-${tag}.azure-devices.test`),
  };
}

/** Writes the private hosts file: /etc/hosts, then one line per name. */
export function writeHostsFile(file: string, entries: HostEntries): string {
  const base = existsSync('/etc/hosts') ? readFileSync('/etc/hosts', 'utf8') : '127.0.0.1 localhost\n';
  const lines = Object.entries(entries).map(([name, address]) => `${address} ${name}`);
  writeFileSync(file, `${base.trimEnd()}\n# iot-agent test cloud\n${lines.join('\n')}\n`);
  return file;
}

/** Files that replace /etc/hosts and /etc/resolv.conf for one process tree. */
export interface PrivateNameFiles {
  /** The private hosts file (the cloud's DNS names). */
  hosts?: string;
  /** A resolv.conf of the test's: lookups of names not in hosts go where it says (a loopback address), never to this machine's resolvers. */
  resolvConf?: string;
}

/**
 * The argv that runs `command args...` with `hostsFile` as its /etc/hosts. The file and the
 * command travel as positional parameters of `sh -c`, never interpolated into the script.
 * `unshare` execs in place, so the process keeps its pid and gets signals directly.
 */
export function withHosts(hostsFile: string, command: string, args: string[]): { command: string; args: string[] } {
  return withPrivateNames({ hosts: hostsFile }, command, args);
}

/** Like withHosts, for a private hosts file, a private resolv.conf or both; the command unchanged for neither. */
export function withPrivateNames(files: PrivateNameFiles, command: string, args: string[]): { command: string; args: string[] } {
  const binds: [string, string][] = [];
  if (files.hosts !== undefined) binds.push(['hosts', files.hosts]);
  if (files.resolvConf !== undefined) binds.push(['resolv.conf', files.resolvConf]);
  if (binds.length === 0) return { command, args };
  if (process.getuid?.() !== 0) throw new Error('private DNS names for a test need root (unshare --mount and a bind mount over /etc/hosts): run the suite as root, as CI does');
  if (!existsSync('/usr/bin/unshare')) throw new Error('unshare is missing: install util-linux (scripts/setup.sh)');
  // "$1" is each file in turn, shifted off once bound; what is left is the command.
  const script = `${binds.map(([name]) => `/usr/bin/mount --bind "$1" /etc/${name} && shift`).join(' && ')} && exec "$@"`;
  return {
    command: '/usr/bin/unshare',
    args: ['--mount', '--propagation', 'private', '--', '/bin/sh', '-c', script, 'sh', ...binds.map(([, file]) => file), command, ...args],
  };
}

/** A lookup for in-process clients: the entries first, the system resolver for anything else. */
export function lookupWith(entries: HostEntries): LookupFunction {
  const table = new Map(Object.entries(entries).map(([name, address]) => [name.toLowerCase(), address]));
  return (hostname: string, options: LookupOptions, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void) => {
    const address = table.get(hostname.toLowerCase());
    if (address === undefined) return systemLookup(hostname, options, callback);
    if (options.all) callback(null, [{ address, family: 4 }]);
    else callback(null, address, 4);
  };
}
