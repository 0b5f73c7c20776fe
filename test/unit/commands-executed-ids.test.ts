import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ExecutedIds } from '../../agent/commands/executed-ids.js';
import { Logger } from '../../agent/log/logger.js';

describe('the executed C2D command ids', () => {
  const dirs: string[] = [];
  afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

  function stateDir(): string {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-executed-'));
    dirs.push(dir);
    return dir;
  }

  it('starts empty from a damaged file, saying so under the command.* log events', async () => {
    const dir = stateDir();
    writeFileSync(path.join(dir, 'executed-commands.json'), '{"kind":"something else"}');
    const lines: string[] = [];
    const ids = await ExecutedIds.open(dir, new Logger({ write: (line) => lines.push(line) }));
    expect(ids.count()).toBe(0);
    expect(lines.join('')).toMatch(/event=command\.executed_ids_invalid .*treatedAs=empty/);
  });

  it('remembers a recorded id across a restart', async () => {
    const dir = stateDir();
    const log = new Logger({ write: () => undefined });
    await (await ExecutedIds.open(dir, log)).record({ id: 'c1', command: 'ping', at: '2026-01-01T00:00:00.000Z' });
    expect((await ExecutedIds.open(dir, log)).find('c1')).toMatchObject({ command: 'ping' });
  });

  it('logs a failed write as command.executed_ids_write_failed and keeps going', async () => {
    const dir = stateDir();
    const lines: string[] = [];
    const ids = await ExecutedIds.open(path.join(dir, 'missing', 'dir'), new Logger({ write: (line) => lines.push(line) }));
    await ids.record({ id: 'c2', command: 'reboot', at: '2026-01-01T00:00:00.000Z' });
    expect(lines.join('')).toMatch(/event=command\.executed_ids_write_failed /);
    expect(ids.find('c2')).toBeDefined();
  });
});
