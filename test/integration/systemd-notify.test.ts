import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusText, SystemdNotifier } from '../../agent/daemon/systemd-notify.js';
import { PYTHON, requireHardeningTools } from '../support/netns.js';

// A notify socket of the test's own (python3 binds it, as systemd would), and the real
// systemd-notify program sending to it: what systemd would read, line by line.
const RECEIVER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("ready", flush=True)
while True:
    data = s.recv(65536)
    print(json.dumps(data.decode("utf-8", "replace")), flush=True)
`;

describe('STATUS= text sent to systemd', () => {
  let dir: string;
  let receiver: ChildProcess;
  const datagrams: string[] = [];

  beforeAll(async () => {
    requireHardeningTools(['systemd-notify']);
    dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-notify-'));
    const socket = path.join(dir, 'notify');
    receiver = spawn(PYTHON, ['-c', RECEIVER, socket], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => {
      let out = '';
      receiver.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const lines = out.split('\n');
        out = lines.pop()!;
        for (const line of lines) {
          if (line === 'ready') resolve();
          else datagrams.push(JSON.parse(line) as string);
        }
      });
    });
    process.env.NOTIFY_SOCKET = socket;
  });
  afterAll(() => {
    delete process.env.NOTIFY_SOCKET;
    receiver?.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is one line: a hub or device id with a newline cannot add WATCHDOG=, MAINPID= or READY=', async () => {
    const notifier = new SystemdNotifier();
    notifier.status('connecting: to hub.example.net\nWATCHDOG=trigger\nMAINPID=1\rREADY=1');
    await expect.poll(() => datagrams.length, { timeout: 10_000 }).toBeGreaterThan(0);
    // systemd-notify --pid adds the agent's own MAINPID=; nothing else but the one STATUS= line.
    expect(datagrams[0]!.split('\n').filter(Boolean).sort()).toEqual([
      `MAINPID=${process.pid}`, 'STATUS=connecting: to hub.example.net WATCHDOG=trigger MAINPID=1 READY=1',
    ]);
  });

  it('keeps ordinary text, and turns every control character into a space', () => {
    expect(statusText('ready: connected to hub-a.cloud.test as board-17')).toBe('ready: connected to hub-a.cloud.test as board-17');
    expect(statusText('a\u0000b\u001bc\u007fd\u0085e\u2028f\tg')).toBe('a b c d e f g');
  });
});
