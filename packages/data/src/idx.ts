/**
 * IDX files (the MNIST / Fashion-MNIST format): two zero bytes, a type byte, the number of dimensions, then
 * each dimension as a big-endian uint32, then the values in row-major order, big-endian.
 */
import { type ByteSource, maybeGunzip, readSource } from './bytes.js';

export type IdxDtype = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';

export interface IdxArray {
  dtype: IdxDtype;
  shape: number[];
  data: Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;
}

const TYPES: Record<number, { dtype: IdxDtype; size: number }> = {
  0x08: { dtype: 'uint8', size: 1 },
  0x09: { dtype: 'int8', size: 1 },
  0x0b: { dtype: 'int16', size: 2 },
  0x0c: { dtype: 'int32', size: 4 },
  0x0d: { dtype: 'float32', size: 4 },
  0x0e: { dtype: 'float64', size: 8 },
};

/** Parse uncompressed IDX bytes. Throws, naming `what`, on a bad magic, type, or a size that does not match. */
export function parseIdx(bytes: Uint8Array, what = 'IDX file'): IdxArray {
  if (bytes.length < 4) throw new Error(`${what}: ${bytes.length} bytes is too short for an IDX header`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new Error(
      `${what}: not an IDX file (magic ${hex(bytes[0]!)} ${hex(bytes[1]!)}, expected 00 00)` +
        (bytes[0] === 0x1f && bytes[1] === 0x8b ? ': it is gzip data, use readIdx() which inflates it' : ''),
    );
  }
  const type = TYPES[bytes[2]!];
  if (!type) throw new Error(`${what}: unknown IDX type byte ${hex(bytes[2]!)} (expected 08, 09, 0b, 0c, 0d or 0e)`);
  const ndim = bytes[3]!;
  if (ndim === 0) throw new Error(`${what}: IDX file with 0 dimensions`);
  const headerLen = 4 + 4 * ndim;
  if (bytes.length < headerLen) throw new Error(`${what}: truncated header (${ndim} dimensions need ${headerLen} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape: number[] = [];
  let count = 1;
  for (let d = 0; d < ndim; d++) {
    const n = view.getUint32(4 + 4 * d, false);
    shape.push(n);
    count *= n;
  }
  const expected = headerLen + count * type.size;
  if (bytes.length !== expected) {
    throw new Error(
      `${what}: shape [${shape}] of ${type.dtype} needs ${expected} bytes, the file has ${bytes.length}` +
        (bytes.length < expected ? ' (truncated?)' : ' (trailing bytes)'),
    );
  }
  const off = headerLen;
  let data: IdxArray['data'];
  switch (type.dtype) {
    case 'uint8':
      data = bytes.slice(off, off + count);
      break;
    case 'int8':
      data = new Int8Array(bytes.slice(off, off + count).buffer);
      break;
    case 'int16':
      data = new Int16Array(count);
      for (let i = 0; i < count; i++) data[i] = view.getInt16(off + 2 * i, false);
      break;
    case 'int32':
      data = new Int32Array(count);
      for (let i = 0; i < count; i++) data[i] = view.getInt32(off + 4 * i, false);
      break;
    case 'float32':
      data = new Float32Array(count);
      for (let i = 0; i < count; i++) data[i] = view.getFloat32(off + 4 * i, false);
      break;
    case 'float64':
      data = new Float64Array(count);
      for (let i = 0; i < count; i++) data[i] = view.getFloat64(off + 8 * i, false);
      break;
  }
  return { dtype: type.dtype, shape, data };
}

/** Read an IDX file (gzipped or not) from bytes, a Node path or a URL. */
export async function readIdx(source: ByteSource): Promise<IdxArray> {
  const what = typeof source === 'string' || source instanceof URL ? String(source) : 'IDX data';
  return parseIdx(await maybeGunzip(await readSource(source), what), what);
}

/** Encode an array as IDX bytes (uncompressed). */
export function encodeIdx(arr: IdxArray): Uint8Array {
  const entry = Object.entries(TYPES).find(([, t]) => t.dtype === arr.dtype);
  if (!entry) throw new Error(`encodeIdx: unknown dtype ${arr.dtype}`);
  const [code, { size }] = [Number(entry[0]), entry[1]];
  const count = arr.shape.reduce((a, b) => a * b, 1);
  if (count !== arr.data.length) throw new Error(`encodeIdx: ${arr.data.length} values do not fill shape [${arr.shape}]`);
  const headerLen = 4 + 4 * arr.shape.length;
  const out = new Uint8Array(headerLen + count * size);
  const view = new DataView(out.buffer);
  out[2] = code;
  out[3] = arr.shape.length;
  arr.shape.forEach((n, d) => {
    view.setUint32(4 + 4 * d, n, false);
  });
  for (let i = 0; i < count; i++) {
    const v = arr.data[i]!;
    const o = headerLen + i * size;
    switch (arr.dtype) {
      case 'uint8':
        view.setUint8(o, v);
        break;
      case 'int8':
        view.setInt8(o, v);
        break;
      case 'int16':
        view.setInt16(o, v, false);
        break;
      case 'int32':
        view.setInt32(o, v, false);
        break;
      case 'float32':
        view.setFloat32(o, v, false);
        break;
      case 'float64':
        view.setFloat64(o, v, false);
        break;
    }
  }
  return out;
}

function hex(b: number): string {
  return b.toString(16).padStart(2, '0');
}
