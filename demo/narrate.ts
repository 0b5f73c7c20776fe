import { execFile, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The built CLI beside the built demo (dist/agent/cli.js next to dist/demo/). */
export const CLI_PATH = fileURLToPath(new URL('../agent/cli.js', import.meta.url));

/** Runs the CLI as a technician would, with a fixed argv. */
export function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI_PATH, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** How the demo talks to a newcomer: numbered steps, then what happened, indented. */
export function step(n: number, text: string): void {
  process.stdout.write(`\n[${n}] ${text}\n`);
}

export function say(text: string): void {
  process.stdout.write(`    ${text.replaceAll('\n', '\n    ')}\n`);
}

export function indent(text: string): string {
  return text.replace(/^/gm, '  ');
}

/**
 * Polls `iot-agent status --json` until the agent is ready, printing each state it passes
 * through (starting, provisioning, connecting, ready). Fails with the agent's last log
 * lines if it exits or takes longer than `timeoutMs`.
 */
export async function waitForReady(agent: ChildProcess, configPath: string, timeoutMs: number): Promise<Record<string, unknown>> {
  const log: string[] = [];
  agent.stderr?.on('data', (chunk: Buffer) => log.push(...chunk.toString().split('\n').filter(Boolean)));
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (agent.exitCode !== null) throw new Error(`the agent exited with ${agent.exitCode}:\n${log.slice(-10).join('\n')}`);
    const result = await runCli(['--config', configPath, 'status', '--json']);
    if (result.code === 0) {
      const status = JSON.parse(result.stdout) as Record<string, unknown>;
      // Until the daemon's control socket is up, status reads the files of a stopped agent.
      const line = status.daemon === 'running' ? `${String(status.state)}${typeof status.reason === 'string' && status.reason ? `: ${status.reason}` : ''}` : 'starting';
      if (line !== last) say(`agent state: ${line}`);
      last = line;
      if (status.state === 'ready') return status;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`the agent was not ready within ${timeoutMs / 1000} s; its last log lines:\n${log.slice(-10).join('\n')}`);
}

/** A method's answer as IoT Hub gives it to the service SDK (typed `any` there): its status, then its payload. */
export function describeMethodAnswer(result: unknown): string {
  if (typeof result !== 'object' || result === null || !('status' in result) || typeof result.status !== 'number') {
    return `an answer without a status: ${JSON.stringify(result)}`;
  }
  const payload = 'payload' in result ? result.payload : undefined;
  return `status ${result.status}, answer:\n${indent(JSON.stringify(payload, null, 2))}`;
}

/** A failed method call in words: the hub's status code and what it means here. */
export function describeMethodFailure(method: string, err: unknown): string {
  const e = err as { response?: { statusCode?: number }; responseBody?: string; message?: string };
  const code = e.response?.statusCode;
  let body = e.responseBody ?? '';
  try {
    body = (JSON.parse(body) as { Message?: string; message?: string }).Message ?? body;
  } catch {
    // not JSON: show as is
  }
  const text = `${body || e.message || String(err)}`.trim();
  if (code === 404 || code === 501) {
    return `the hub answered ${code}: ${text}\n` +
      `(the device is connected but has no "${method}" handler: this build of the agent does not implement that command yet)`;
  }
  return `failed${code ? ` with ${code}` : ''}: ${text}`;
}
