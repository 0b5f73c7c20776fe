import type { Twin } from 'azure-iot-device';
import type { Logger } from '../log/logger.js';
import { Backoff, type BackoffPolicy } from '../retry/backoff.js';
import { fitTwinLimits } from './limits.js';
import { isMapping } from '../lib/validate.js';

/** The Twin's reported section as azure-iot-device defines it at run time (its types leave every member `any`). */
interface ReportedSection {
  update(patch: Record<string, unknown>, done: (err?: Error) => void): void;
}

/** How long patches are gathered before one reported PATCH goes out. */
const COALESCE_MS = 200;
/** A refused patch (429 throttling, a hub error) is sent again after 1 s, 2 s, 4 s ... up to a minute. */
export const REPORT_RETRY: BackoffPolicy = { initialMs: 1_000, maxMs: 60_000, multiplier: 2 };
/** The least a retry waits, whatever the jitter draws: a throttled hub must see the device slow down. */
const MIN_RETRY_MS = 250;

/**
 * The device's reported properties: kept whole in memory, sent whole after every connect
 * (so nothing set while offline is lost), and as coalesced patches in between, one at a
 * time so that an older patch can never land after a newer one. A patch the hub refuses
 * (IoT Hub answers twin requests 429 when it throttles) is merged under whatever changed
 * since and sent again with capped backoff, so the reported state converges on its own,
 * without waiting for the next change or reconnect. Patches merge as the twin merges them
 * (objects key by key; null deletes), and are fitted to the hub's limits first.
 */
export class ReportedProperties {
  private readonly state: Record<string, unknown> = {};
  private patch: Record<string, unknown> = {};
  private twin: Twin | undefined;
  private timer: NodeJS.Timeout | undefined;
  private inFlight = false;
  private readonly retry: Backoff;

  constructor(private readonly log: Logger, retryPolicy: BackoffPolicy = REPORT_RETRY) {
    this.retry = new Backoff(retryPolicy);
  }

  get current(): Readonly<Record<string, unknown>> {
    return this.state;
  }

  update(patch: Record<string, unknown>): void {
    const fitted = fitTwinLimits(patch);
    merge(this.state, fitted);
    merge(this.patch, fitted);
    this.schedule();
  }

  attach(twin: Twin): void {
    this.twin = twin;
    this.inFlight = false;
    this.retry.reset();
    this.patch = structuredClone(this.state);
    clearTimeout(this.timer);
    this.timer = undefined;
    this.schedule(0);
  }

  detach(): void {
    this.twin = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(delay = COALESCE_MS): void {
    if (!this.twin || this.inFlight || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, delay);
  }

  private flush(): void {
    const twin = this.twin;
    if (!twin || this.inFlight || Object.keys(this.patch).length === 0) return;
    const patch = this.patch;
    this.patch = {};
    this.inFlight = true;
    (twin.properties.reported as ReportedSection).update(patch, (err?: Error) => {
      if (this.twin !== twin) return; // a new connection sends the whole state anyway
      this.inFlight = false;
      if (!err) {
        this.retry.reset();
        this.schedule();
        return;
      }
      // What changed meanwhile is newer: it goes on top of what was refused.
      this.patch = merge(patch, this.patch);
      const delay = Math.max(MIN_RETRY_MS, this.retry.next());
      this.log.warn('twin.report_failed', { err, keys: Object.keys(patch).join(','), retryInMs: delay });
      this.schedule(delay);
    });
  }
}

function merge(target: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  for (const [key, value] of Object.entries(patch)) {
    const current = target[key];
    if (isMapping(value) && isMapping(current)) merge(current, value);
    else target[key] = isMapping(value) ? structuredClone(value) : value;
  }
  return target;
}

