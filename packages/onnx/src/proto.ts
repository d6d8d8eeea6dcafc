/**
 * A minimal protocol-buffers writer (and a reader for tests and inspection): the wire format of the few ONNX
 * messages this package emits. Messages are built as lists of byte chunks so that large tensor payloads are
 * referenced, not copied, until the final `concat` (or a streaming write).
 *
 * Wire types: 0 varint (int32/int64/enum, negative values as 10-byte two's complement), 2 length-delimited
 * (strings, bytes, nested messages, packed repeated), 5 fixed32 (float).
 */

const textEncoder = new TextEncoder();

/** The largest message protobuf implementations accept (2 GiB − 1, a signed 32-bit length). */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;

function varintBytes(value: number | bigint): Uint8Array {
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new RangeError(`protobuf: varint must be an integer, got ${value}`);
    if (value >= 0 && value <= Number.MAX_SAFE_INTEGER) {
      const out: number[] = [];
      let v = value;
      while (v >= 0x80) {
        out.push((v % 0x80) | 0x80);
        v = Math.floor(v / 0x80);
      }
      out.push(v);
      return Uint8Array.from(out);
    }
    value = BigInt(value);
  }
  // Negative (or huge) values: 64-bit two's complement, 10 bytes for negatives.
  let v = BigInt.asUintN(64, value);
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Uint8Array.from(out);
}

/** One protobuf message under construction: a list of chunks and their total size. */
export class Message {
  readonly parts: Uint8Array[] = [];
  size = 0;

  private push(b: Uint8Array): void {
    if (b.byteLength === 0) return;
    this.parts.push(b);
    this.size += b.byteLength;
  }

  private tag(field: number, wire: number): void {
    this.push(varintBytes(field * 8 + wire));
  }

  /** int32 / int64 / enum / bool field (written even when 0). */
  varint(field: number, value: number | bigint | boolean): this {
    this.tag(field, 0);
    this.push(varintBytes(typeof value === 'boolean' ? (value ? 1 : 0) : value));
    return this;
  }

  /** float field (fixed32). */
  float(field: number, value: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.push(b);
    return this;
  }

  /** bytes field: the payload is referenced, not copied. */
  bytes(field: number, value: Uint8Array): this {
    this.tag(field, 2);
    this.push(varintBytes(value.byteLength));
    this.push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, textEncoder.encode(value));
  }

  /** A nested message (its chunks are appended, not copied). */
  message(field: number, m: Message): this {
    this.tag(field, 2);
    this.push(varintBytes(m.size));
    for (const p of m.parts) this.push(p);
    return this;
  }

  /** packed repeated int64 / int32. */
  packedVarints(field: number, values: readonly (number | bigint)[]): this {
    const body = new Message();
    for (const v of values) body.push(varintBytes(v));
    this.tag(field, 2);
    this.push(varintBytes(body.size));
    for (const p of body.parts) this.push(p);
    return this;
  }

  /** packed repeated float. */
  packedFloats(field: number, values: readonly number[]): this {
    const b = new Uint8Array(4 * values.length);
    const dv = new DataView(b.buffer);
    values.forEach((v, i) => {
      dv.setFloat32(4 * i, v, true);
    });
    return this.bytes(field, b);
  }

  /** The encoded message as one array. */
  concat(): Uint8Array {
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.byteLength;
    }
    return out;
  }
}

// ------------------------------------------------------------------------------------------------ reader

/** One decoded field: varints as bigint, fixed32/fixed64 as raw bytes, length-delimited as a subarray. */
export interface ProtoField {
  field: number;
  wire: number;
  varint?: bigint;
  bytes?: Uint8Array;
}

/** Decode one message level into its fields (nested messages stay bytes: decode them again). */
export function decodeFields(buf: Uint8Array): ProtoField[] {
  const out: ProtoField[] = [];
  let i = 0;
  const readVarint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (i >= buf.length) throw new Error('protobuf: truncated varint');
      const b = buf[i++]!;
      result |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return result;
      shift += 7n;
      if (shift > 63n) throw new Error('protobuf: varint too long');
    }
  };
  while (i < buf.length) {
    const key = readVarint();
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (wire === 0) out.push({ field, wire, varint: readVarint() });
    else if (wire === 2) {
      const n = Number(readVarint());
      if (i + n > buf.length) throw new Error(`protobuf: field ${field} overruns the buffer`);
      out.push({ field, wire, bytes: buf.subarray(i, i + n) });
      i += n;
    } else if (wire === 5 || wire === 1) {
      const n = wire === 5 ? 4 : 8;
      if (i + n > buf.length) throw new Error(`protobuf: field ${field} overruns the buffer`);
      out.push({ field, wire, bytes: buf.subarray(i, i + n) });
      i += n;
    } else throw new Error(`protobuf: unsupported wire type ${wire} (field ${field})`);
  }
  return out;
}

/** The signed value of an int64 varint field. */
export function int64(f: ProtoField): number {
  return Number(BigInt.asIntN(64, f.varint ?? 0n));
}

/** Packed (or single, unpacked) int64 values of a repeated field. */
export function packedInt64(fields: ProtoField[], field: number): number[] {
  const out: number[] = [];
  for (const f of fields) {
    if (f.field !== field) continue;
    if (f.wire === 0) out.push(int64(f));
    else for (const g of decodeFields(varintStream(f.bytes!))) out.push(int64(g));
  }
  return out;
}

/** Re-frame a packed varint payload as fields numbered 1 so `decodeFields` can read it. */
function varintStream(b: Uint8Array): Uint8Array {
  const out: number[] = [];
  let start = true;
  for (const byte of b) {
    if (start) out.push(0x08);
    out.push(byte);
    start = byte < 0x80;
  }
  return Uint8Array.from(out);
}

export function fieldString(fields: ProtoField[], field: number): string | undefined {
  const f = fields.find((x) => x.field === field);
  return f?.bytes ? new TextDecoder().decode(f.bytes) : undefined;
}
