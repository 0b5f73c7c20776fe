/**
 * Direct method calls waiting for the device's answer: each request id maps to its
 * caller until the device replies on `$iothub/methods/res/{status}/?$rid=` or the
 * caller's response timeout passes.
 */
export interface MethodResult {
  status: number;
  payload: Buffer;
}

export class MethodTimeoutError extends Error {}

interface Pending {
  deviceId: string;
  resolve(result: MethodResult): void;
  timer: NodeJS.Timeout;
}

export class PendingMethods {
  private readonly pending = new Map<string, Pending>();
  private nextRid = 1;

  /** A fresh request id; IoT Hub's are opaque strings, these are hex counters. */
  newRid(): string {
    return (this.nextRid++).toString(16);
  }

  wait(deviceId: string, rid: string, timeoutMs: number): Promise<MethodResult> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(rid);
        reject(new MethodTimeoutError(`device ${deviceId} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(rid, { deviceId, resolve, timer });
    });
  }

  /** Hands the device's answer to its caller; an answer nobody waits for (or from another device) is dropped. */
  answer(deviceId: string, rid: string, result: MethodResult): boolean {
    const call = this.pending.get(rid);
    if (!call || call.deviceId !== deviceId) return false;
    clearTimeout(call.timer);
    this.pending.delete(rid);
    call.resolve(result);
    return true;
  }

  get size(): number {
    return this.pending.size;
  }

  cancelAll(): void {
    for (const [rid, call] of this.pending) {
      clearTimeout(call.timer);
      this.pending.delete(rid);
      call.resolve({ status: 503, payload: Buffer.from('null') });
    }
  }
}
