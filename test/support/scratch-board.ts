import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DEFAULT_STATE_DIR } from '../../hardening/engine.js';
import { PrivateNetns } from './private-netns.js';

/**
 * What a hardening test applies profiles to: a scratch root with one USB host controller
 * (authorized_default=1) and the state directory, and a fresh network namespace. Both are
 * undone by the caller's `cleanups`.
 */
export async function scratchBoard(cleanups: (() => void)[]): Promise<{ root: string; ns: PrivateNetns }> {
  const root = mkdtempSync(path.join(tmpdir(), 'iot-agent-board-'));
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(path.join(root, 'sys/bus/usb/devices/usb1'), { recursive: true });
  writeFileSync(path.join(root, 'sys/bus/usb/devices/usb1/authorized_default'), '1\n');
  mkdirSync(path.join(root, DEFAULT_STATE_DIR), { recursive: true });
  const ns = await PrivateNetns.create();
  cleanups.push(() => ns.destroy());
  return { root, ns };
}
