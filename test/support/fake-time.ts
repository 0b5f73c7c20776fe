import { existsSync, writeFileSync } from 'node:fs';

const LIBRARY = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';

/**
 * The environment that runs a process with its wall clock shifted by libfaketime (Debian
 * package faketime), the monotonic clock left alone (timers stay true). `offset` is
 * libfaketime's relative form, e.g. "-2h" or "+30m"; with `file`, the offset is read from
 * that file at every clock read, so a test can make the clock jump by rewriting it.
 */
export function fakeTimeEnv(offset: string, file?: string): NodeJS.ProcessEnv {
  if (!existsSync(LIBRARY)) throw new Error(`${LIBRARY} is missing: install the Debian package faketime (scripts/setup.sh)`);
  if (file !== undefined) writeFileSync(file, `${offset}\n`);
  return {
    LD_PRELOAD: LIBRARY,
    FAKETIME_DONT_FAKE_MONOTONIC: '1',
    ...(file === undefined ? { FAKETIME: offset } : { FAKETIME_TIMESTAMP_FILE: file, FAKETIME_NO_CACHE: '1' }),
  };
}

/** Makes a process started with fakeTimeEnv(…, file) jump to `offset`. */
export function jumpFakeTime(file: string, offset: string): void {
  writeFileSync(file, `${offset}\n`);
}
