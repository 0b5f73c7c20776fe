/**
 * Generated hostile input for the command surface: a seeded generator (the same seed, the
 * same payloads) of random JSON, wrong types, huge strings, deep nesting, invalid UTF-8 and
 * non-JSON bytes.
 */
export class Fuzz {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0 || 1;
  }

  /** xorshift32 in [0, 1). */
  next(): number {
    let x = this.state;
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    this.state = x;
    return x / 2 ** 32;
  }

  int(max: number): number {
    return Math.floor(this.next() * max);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  string(maxLength = 24): string {
    const alphabet = 'abcXYZ019 _-.:/"\\\u00e9\u4e2d\u{1F600}\n\t';
    const chars = [...alphabet];
    let out = '';
    const length = this.int(maxLength + 1);
    for (let i = 0; i < length; i++) out += this.pick(chars);
    return out;
  }

  /** A method or command name that the agent does not know. */
  unknownName(): string {
    const chars = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.\u00e9'];
    let out = 'x';
    for (let i = this.int(40); i > 0; i--) out += this.pick(chars);
    return out;
  }

  /** Any JSON value: scalars of every type, huge strings, deep nesting (unless `shallow`), wide objects. */
  json(depth = 0, shallow = false): unknown {
    const pick = depth > 3 ? this.int(5) : this.int(10);
    switch (shallow && pick === 5 ? 4 : pick) {
      case 0: return this.next() < 0.5 ? true : false;
      case 1: return this.pick([0, -1, 1.5, 1e308, -1e-300, 2 ** 53, Number.MAX_SAFE_INTEGER, 86_401, 3600]);
      case 2: return this.string();
      case 3: return this.pick(['', 'null', '{}', '[]', '\u0000', 'x'.repeat(1000 + this.int(50_000))]);
      case 4: return null;
      case 5: return this.nested(50 + this.int(2000));
      case 6: case 7: {
        const out: unknown[] = [];
        for (let i = this.int(6); i > 0; i--) out.push(this.json(depth + 1, shallow));
        return out;
      }
      default: {
        const out: Record<string, unknown> = {};
        for (let i = 1 + this.int(5); i > 0; i--) out[this.pick(['seconds', 'lines', 'profile', 'args', 'command', 'id', '__proto__', 'constructor', this.string(8)])] = this.json(depth + 1, shallow);
        return out;
      }
    }
  }

  nested(depth: number): unknown {
    let value: unknown = this.pick([1, 'x', null]);
    for (let i = 0; i < depth; i++) value = this.next() < 0.5 ? [value] : { a: value };
    return value;
  }

  /** Arguments that can never be valid for any command: a non-object, or an object with a key no schema has. */
  invalidArgs(): unknown {
    const value = this.json();
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return { ...value, [`junk-${this.int(1e6)}`]: this.json(2) };
    return value === null ? [null] : value;
  }

  /** Raw bytes for a C2D body: random bytes (mostly invalid UTF-8), text that is not JSON, or JSON of the wrong shape. */
  c2dBody(): Buffer {
    switch (this.int(4)) {
      case 0: {
        const bytes = Buffer.alloc(1 + this.int(2000));
        for (let i = 0; i < bytes.length; i++) bytes[i] = this.int(256);
        bytes[0] = 0xff; // never valid UTF-8
        return bytes;
      }
      case 1: return Buffer.from(this.pick(['{"command":', 'ping', '{command: "ping"}', '\u00ff\u00fe', `{"a":${'['.repeat(5000)}`, '']), 'utf8');
      case 2: return Buffer.from([0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x28, 0x8c, 0xbc]);
      default: return Buffer.from(JSON.stringify(this.json()) ?? 'undefined', 'utf8');
    }
  }
}
