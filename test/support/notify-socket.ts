import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/**
 * systemd's notification socket as the agent's unit sees it (NOTIFY_SOCKET), received by a
 * real Unix datagram socket: Node has none, so python3 holds it. `messages` are the datagrams
 * as systemd-notify sent them; BARRIER=1, systemd-notify's own handshake, is left out.
 */
export class NotifySocket {
  readonly messages: string[] = [];

  private constructor(private readonly child: ChildProcess, private readonly dir: string, readonly path: string) {}

  static async start(): Promise<NotifySocket> {
    const dir = mkdtempSync(path.join(tmpdir(), 'iot-agent-notify-'));
    const socketPath = path.join(dir, 'notify');
    const script = fileURLToPath(new URL('./notify-socket.py', import.meta.url));
    const child = spawn('/usr/bin/python3', [script, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    const socket = new NotifySocket(child, dir, socketPath);
    const lines = createInterface({ input: child.stdout });
    await new Promise<void>((resolve, reject) => {
      child.once('error', (err) => reject(new Error(`python3 is needed for the notification socket (scripts/setup.sh): ${err.message}`)));
      child.once('exit', (code) => reject(new Error(`the notification socket exited with ${code}`)));
      lines.once('line', () => resolve());
    });
    lines.on('line', (line) => {
      const message = JSON.parse(line) as string;
      if (message !== 'BARRIER=1') socket.messages.push(message);
    });
    return socket;
  }

  /** Resolves once `count` messages have arrived; rejects after `timeoutMs`. */
  async received(count: number, timeoutMs = 5_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length < count) {
      if (Date.now() > deadline) throw new Error(`${this.messages.length} of ${count} notifications arrived: ${JSON.stringify(this.messages)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this.messages.slice(0, count);
  }

  stop(): void {
    this.child.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
