import { readFile } from 'node:fs/promises';

let bootIdRead: Promise<string> | undefined;

/**
 * This boot's id (the kernel's random boot_id), read once per process: it cannot change
 * while the process lives. `unknown` where /proc cannot be read.
 */
export function bootId(): Promise<string> {
  bootIdRead ??= readFile('/proc/sys/kernel/random/boot_id', 'utf8').then((text) => text.trim(), () => 'unknown');
  return bootIdRead;
}
