// A helper program for runChild's tests (run-child.test.ts starts it by the entry
// ../test/unit/stand-in-helper.mjs): its request lists what it does, in order, so that a
// test decides what the parent sees. Plain JavaScript, so that node runs it without a build.
import process from 'node:process';
import { setTimeout } from 'node:timers';

const send = (message) => new Promise((resolve) => process.send(message, resolve));
const write = (text) => new Promise((resolve) => process.stderr.write(text, resolve));

process.once('message', async (request) => {
  for (const step of request.steps) {
    if ('stderr' in step) await write(step.stderr);
    else if ('send' in step) await send(step.send);
    else if ('report' in step) await send({ kind: 'done', result: { execArgv: process.execArgv, nodeOptions: process.env.NODE_OPTIONS ?? null } });
    else if ('exit' in step) process.exit(step.exit);
    else if ('signal' in step) process.kill(process.pid, step.signal);
    else if ('hang' in step) {
      // Deaf to a polite stop; gone after a minute even if a test left it behind.
      process.on('SIGTERM', () => undefined);
      setTimeout(() => process.exit(9), 60_000);
      return;
    }
  }
});
