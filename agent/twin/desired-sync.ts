import { describeError } from '../lib/errors.js';
import type { Logger } from '../log/logger.js';
import type { ReportedProperties } from './reporter.js';
import { ack, checkWritable, desiredVersion, WRITABLE_PROPERTIES, type WritableProperty } from './writable.js';
import { isMapping } from '../lib/validate.js';

/** What applying a valid value came to: 200 applied, 202 applying (final result later), or an error status. */
export interface ApplyOutcome {
  ac: number;
  ad: string;
  /** For 202: the final acknowledgement once the slow work is done. */
  final?: Promise<{ ac: number; ad: string }>;
}

export type WritableAppliers = { [K in WritableProperty]: (value: never) => Promise<ApplyOutcome> };

/**
 * Applies desired properties: the whole desired document after every connect, and each
 * patch as it arrives, one at a time, in order. Each writable property is checked, applied
 * and acknowledged (`{ value, ac, av, ad }`); an invalid value is acknowledged with 400 and
 * the value in force, never applied. A value already handled is not applied again, so a
 * reconnect does not undo a runtime change made since (e.g. by setTelemetryInterval). A
 * writable property's reported value is always its acknowledgement: one the whole document
 * does not set is reported with the value in force, `ac` 203 and `av` 0, as the IoT Plug
 * and Play conventions do for a device's own initial value.
 */
export class DesiredSync {
  private readonly handled = new Map<WritableProperty, string>();
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly appliers: WritableAppliers,
    private readonly inForce: (key: WritableProperty) => unknown,
    private readonly reported: ReportedProperties,
    private readonly log: Logger,
  ) {}

  /** Queues the whole desired document (after a connect); never throws. */
  handleFull(doc: unknown): Promise<void> {
    return this.queue(doc, true);
  }

  /** Queues a desired patch; never throws. */
  handlePatch(doc: unknown): Promise<void> {
    return this.queue(doc, false);
  }

  private queue(doc: unknown, whole: boolean): Promise<void> {
    this.chain = this.chain.then(() => this.apply(doc, whole)).catch((err: unknown) => this.log.error('twin.desired_failed', { err }));
    return this.chain;
  }

  private async apply(desired: unknown, whole: boolean): Promise<void> {
    if (!isMapping(desired)) return;
    const version = desiredVersion(desired);
    for (const key of WRITABLE_PROPERTIES) {
      const value = Object.hasOwn(desired, key) ? desired[key] : undefined;
      if (value === null || value === undefined) {
        if (Object.hasOwn(desired, key)) this.handled.delete(key);
        if (whole || Object.hasOwn(desired, key)) {
          this.reported.update({ [key]: ack(this.inForce(key) ?? null, 203, 0, 'no desired value: the device\'s own value is in force') });
        }
        continue;
      }
      const fingerprint = JSON.stringify(value);
      if (this.handled.get(key) === fingerprint) continue;
      this.handled.set(key, fingerprint);
      const checked = checkWritable(key, value);
      if (!checked.ok) {
        this.log.warn('twin.desired_invalid', { key, version, reason: checked.reason });
        this.reported.update({ [key]: ack(this.inForce(key) ?? null, 400, version, `rejected: ${checked.reason}`) });
        continue;
      }
      let outcome: ApplyOutcome;
      try {
        outcome = await this.appliers[key](checked.value as never);
      } catch (err) {
        outcome = { ac: 500, ad: `not applied: ${describeError(err)}` };
      }
      this.log.info('twin.desired_applied', { key, version, ac: outcome.ac });
      this.reported.update({ [key]: ack(outcome.ac < 300 ? checked.value : this.inForce(key) ?? null, outcome.ac, version, outcome.ad) });
      void outcome.final?.then((final) => {
        if (this.handled.get(key) !== fingerprint) return; // a newer value took over
        this.reported.update({ [key]: ack(final.ac < 300 ? checked.value : this.inForce(key) ?? null, final.ac, version, final.ad) });
      });
    }
  }
}
