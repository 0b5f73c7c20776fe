/**
 * Settles with `work`, or with `onTimeout()` once `ms` have passed. The work is not
 * cancelled (a DNS lookup cannot be), but `check` exits when it has printed, so a
 * straggler never holds a technician's terminal.
 */
export async function withDeadline<T>(work: Promise<T>, ms: number, onTimeout: () => T): Promise<T> {
  work.catch(() => undefined); // a failure after the deadline is not news
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(onTimeout()), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
