/** Thrown inside a flow that a newer one (reload, re-provision, stop) replaced. */
export class Superseded extends Error {
  constructor() {
    super('superseded by a newer flow');
  }
}

/**
 * One flow at a time: each reload, re-provisioning or stop starts a new generation, and
 * the old flow notices at its next step (check, sleep, wait) and ends by throwing
 * Superseded. Sleeps and waits of an old generation end at once.
 */
export class Generations {
  private current = 0;
  private readonly wakers = new Set<() => void>();

  get value(): number {
    return this.current;
  }

  /** Ends every flow before this call; returns the new generation. */
  next(): number {
    this.current++;
    for (const wake of [...this.wakers]) wake();
    return this.current;
  }

  check(generation: number): void {
    if (generation !== this.current) throw new Superseded();
  }

  sleep(ms: number, generation: number): Promise<void> {
    return this.until(generation, (done) => {
      const timer = setTimeout(done, ms);
      return () => clearTimeout(timer);
    });
  }

  /**
   * Waits for `arm` to call its `done` (with a value), or rejects with Superseded when the
   * generation ends first. `arm` returns its own clean-up.
   */
  until<T>(generation: number, arm: (done: (value: T) => void) => () => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (generation !== this.current) {
        reject(new Superseded());
        return;
      }
      let settled = false;
      const armed: { disarm?: () => void } = {};
      const finish = (settle: () => void) => {
        if (settled) return;
        settled = true;
        this.wakers.delete(wake);
        armed.disarm?.();
        settle();
      };
      const wake = () => finish(() => reject(new Superseded()));
      this.wakers.add(wake);
      armed.disarm = arm((value) => finish(() => resolve(value)));
      // A `done` called synchronously by arm() finished before its clean-up was known.
      if (settled) armed.disarm();
    });
  }
}
