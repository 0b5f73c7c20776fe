/** Big-endian TPM 2.0 marshalling (Part 2 §5): sizes, TPM2B buffers and a bounds-checked reader. */

export class TpmParseError extends Error {}

export function u16(value: number): Buffer {
  const out = Buffer.alloc(2);
  out.writeUInt16BE(value);
  return out;
}

export function u32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value >>> 0);
  return out;
}

/** A TPM2B: a 2-byte big-endian size, then the bytes. */
export function tpm2b(...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  if (body.length > 0xffff) throw new RangeError(`TPM2B of ${body.length} bytes is too large`);
  return Buffer.concat([u16(body.length), body]);
}

/** A bounds-checked reader: every short read is a TpmParseError that names the field. */
export class TpmReader {
  private offset = 0;

  constructor(private readonly bytes: Buffer, private readonly what: string) {}

  get position(): number {
    return this.offset;
  }

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  u16(field: string): number {
    return this.take(2, field).readUInt16BE(0);
  }

  u32(field: string): number {
    return this.take(4, field).readUInt32BE(0);
  }

  sized(field: string): Buffer {
    return this.take(this.u16(`${field} size`), field);
  }

  take(length: number, field: string): Buffer {
    if (length > this.remaining) {
      throw new TpmParseError(`${this.what}: ${field} needs ${length} bytes at offset ${this.offset}, ${this.remaining} left`);
    }
    const out = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }

  end(): void {
    if (this.remaining !== 0) throw new TpmParseError(`${this.what}: ${this.remaining} unexpected bytes after the end`);
  }
}
