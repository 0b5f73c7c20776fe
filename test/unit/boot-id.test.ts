import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { bootId } from '../../agent/lib/boot-id.js';

describe('the boot id', () => {
  it('is the kernel\'s boot_id for this boot, without its newline', async () => {
    const id = await bootId();
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(id).toBe(readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
  });

  it('is read once per process', () => {
    expect(bootId()).toBe(bootId());
  });
});
