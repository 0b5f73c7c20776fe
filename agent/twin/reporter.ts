import type { Twin } from 'azure-iot-device';
import type { Logger } from '../log/logger.js';

/** How long patches are gathered before one reported PATCH goes out. */
const COALESCE_MS = 200;

/**
 * The device's reported properties: kept whole in memory, sent whole after every connect
 * (so nothing set while offline is lost), and as coalesced patches in between. Patches
 * merge as the twin merges them (objects key by key; null deletes).
 */
export class ReportedProperties {
  private readonly state: Record<string, unknown> = {};
  private patch: Record<string, unknown> = {};
  private twin: Twin | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly log: Logger) {}

  get current(): Readonly<Record<string, unknown>> {
    return this.state;
  }

  update(patch: Record<string, unknown>): void {
    merge(this.state, patch);
    merge(this.patch, patch);
    this.schedule();
  }

  attach(twin: Twin): void {
    this.twin = twin;
    this.patch = structuredClone(this.state);
    this.schedule(0);
  }

  detach(): void {
    this.twin = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(delay = COALESCE_MS): void {
    if (!this.twin || (this.timer && delay > 0)) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, delay);
  }

  private flush(): void {
    const twin = this.twin;
    if (!twin || Object.keys(this.patch).length === 0) return;
    const patch = this.patch;
    this.patch = {};
    twin.properties.reported.update(patch, (err?: Error) => {
      if (!err) return;
      this.log.warn('twin.report_failed', { err, keys: Object.keys(patch).join(',') });
      // Sent again whole on the next connect; meanwhile keep what was not delivered.
      this.patch = merge(patch, this.patch);
    });
  }
}

function merge(target: Record<string, unknown>, patch: Record<string, unknown>): Record<string, unknown> {
  for (const [key, value] of Object.entries(patch)) {
    const current = target[key];
    if (isObject(value) && isObject(current)) merge(current, value);
    else target[key] = isObject(value) ? structuredClone(value) : value;
  }
  return target;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
