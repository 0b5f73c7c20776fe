/**
 * Settles with `work`, or with `onTimeout()` once `ms` have passed (rejecting when it
 * throws). The work is not cancelled (a DNS lookup cannot be): the caller moves on (`check`
 * exits when it has printed, so a straggler never holds a technician's terminal).
 */
export async function withDeadline<T>(work: Promise<T>, ms: number, onTimeout: () => T): Promise<T> {
  work.catch(() => undefined); // a failure after the deadline is not news
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<T>((resolve, reject) => {
    timer = setTimeout(() => {
      try {
        resolve(onTimeout());
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    }, ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export interface DeadlineLoop {
  /** Until when (ms since the epoch) to keep trying. */
  deadline: number;
  /** Pause between tries (shortened to what is left before the deadline). */
  intervalMs: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Tries `attempt` (told how many ms are left) again every interval until it is done or the
 * deadline passes; a try that starts before the deadline always runs. Bounded in rounds too,
 * so a clock that stands still cannot keep it going. Resolves with the last try's value;
 * a try that throws ends the loop with that error.
 */
export async function retryUntilDeadline<T>(
  loop: DeadlineLoop, attempt: (msLeft: number) => Promise<{ done: boolean; value: T }>,
): Promise<{ done: boolean; value: T; rounds: number }> {
  const now = loop.now ?? Date.now;
  const sleep = loop.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const maxRounds = Math.ceil(Math.max(0, loop.deadline - now()) / Math.max(loop.intervalMs, 1)) + 2;
  for (let rounds = 1; ; rounds++) {
    const result = await attempt(loop.deadline - now());
    const left = loop.deadline - now();
    if (result.done || left <= 0 || rounds >= maxRounds) return { ...result, rounds };
    await sleep(Math.min(loop.intervalMs, left));
  }
}
