/** Most messages published at once while draining; MQTT keeps them in order on the one connection. */
export const MAX_IN_FLIGHT = 50;
/** After a failed drain the window stays at its halved size this long: the hub likely throttled it. */
export const WINDOW_HOLD_MS = 3_600_000;

/**
 * How many queued messages may be in flight at once: halved on every failed drain (over MQTT
 * a 429 from the hub's D2C throttle closes the connection), held there for an hour, then
 * grown back by one per delivered batch. Pure: the caller gives the time.
 */
export class DrainWindow {
  private current = MAX_IN_FLIGHT;
  private heldUntil = 0;

  get size(): number {
    return this.current;
  }

  failed(now: number): void {
    this.current = Math.max(1, Math.floor(this.current / 2));
    this.heldUntil = now + WINDOW_HOLD_MS;
  }

  /** A batch of `size` went through; true when it was the queue's last (smaller than the window). */
  delivered(size: number, now: number): boolean {
    const emptied = size < this.current;
    if (now >= this.heldUntil && this.current < MAX_IN_FLIGHT) this.current++;
    return emptied;
  }
}
