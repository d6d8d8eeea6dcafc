/**
 * safetensors reader and writer.
 *
 * Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data section. Each header
 * entry is `name: { dtype, shape, data_offsets: [begin, end] }` relative to the data section; the optional
 * `__metadata__` maps strings to strings.
 *
 * The reader validates everything before handing out a tensor: header size and JSON, every entry's fields,
 * that byte counts equal shape × dtype size, that offsets are in range, ordered, non-overlapping and cover the
 * data section exactly. A malformed, truncated or lying file gets a `SafetensorsError`, never a crash or a
 * silently wrong tensor.
 */

import { FetchError, fetchBytes } from './net.js';

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const DTYPE_SIZES: Readonly<Record<SafetensorsDtype, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

/** Typed array per dtype: floats (F64/F32/F16/BF16) are returned as float32. */
export type TensorData = Float32Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Offsets in the data section, as stored. */
  dataOffsets: [number, number];
}

export interface SafetensorsTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: TensorData;
}

/** Headers beyond this are refused (the reference implementation's own limit is 100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

export class SafetensorsError extends Error {
  /** The system error code (e.g. 'ENOENT', 'EISDIR') when reading a file failed. */
  readonly code: string | undefined;
  constructor(message: string, opts: { cause?: unknown; code?: string } = {}) {
    super(`safetensors: ${message}`, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'SafetensorsError';
    this.code = opts.code;
  }
}

/** A parsed safetensors file. Tensors are decoded lazily by `get`. */
export class SafetensorsFile {
  constructor(
    private readonly bytes: Uint8Array,
    private readonly dataStart: number,
    readonly metadata: Readonly<Record<string, string>>,
    private readonly entries: ReadonlyMap<string, SafetensorsEntry>,
  ) {}

  /** Tensor names in file order (by data offset). */
  names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  info(name: string): SafetensorsEntry {
    const e = this.entries.get(name);
    if (!e) throw new SafetensorsError(`no tensor named '${name}'`);
    return e;
  }

  /** Decode one tensor (a copy: the typed array owns its memory). */
  get(name: string): SafetensorsTensor {
    const e = this.info(name);
    const begin = this.dataStart + e.dataOffsets[0];
    const end = this.dataStart + e.dataOffsets[1];
    return { dtype: e.dtype, shape: [...e.shape], data: decode(e.dtype, this.bytes.subarray(begin, end)) };
  }

  /** Decode one tensor as float32 whatever its stored dtype (I64 values beyond 2^53 lose precision). */
  getFloat32(name: string): { shape: number[]; data: Float32Array } {
    const t = this.get(name);
    if (t.data instanceof Float32Array) return { shape: t.shape, data: t.data };
    const out = new Float32Array(t.data.length);
    for (let i = 0; i < out.length; i++) out[i] = Number(t.data[i]);
    return { shape: t.shape, data: out };
  }

  get size(): number {
    return this.entries.size;
  }

  /** The data section as stored (a view, not a copy): every tensor's bytes in file order, for checksums. */
  dataSection(): Uint8Array {
    return this.bytes.subarray(this.dataStart);
  }

  /** The architecture config stored by `saveWeights` (`__metadata__.config` as JSON), if any. */
  config<T = Record<string, unknown>>(): T | undefined {
    const c = this.metadata['config'];
    if (c === undefined) return undefined;
    try {
      return JSON.parse(c) as T;
    } catch {
      throw new SafetensorsError(`__metadata__.config is not valid JSON`);
    }
  }
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Parse and validate safetensors bytes. */
export function parseSafetensors(input: Uint8Array | ArrayBuffer): SafetensorsFile {
  // A plain Uint8Array view (a Node Buffer's subarray/slice semantics differ).
  const bytes =
    input instanceof Uint8Array ? new Uint8Array(input.buffer, input.byteOffset, input.byteLength) : new Uint8Array(input);
  if (bytes.byteLength < 8) {
    throw new SafetensorsError(`file is ${bytes.byteLength} bytes: too short for the 8-byte header length`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = view.getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(`header length ${n64} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const n = Number(n64);
  if (n < 2) throw new SafetensorsError(`header length ${n} is too small for a JSON object`);
  if (8 + n > bytes.byteLength) {
    throw new SafetensorsError(`header length ${n} runs past the end of the file (${bytes.byteLength} bytes): truncated?`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    throw new SafetensorsError('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(`header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new SafetensorsError('header is not a JSON object');
  }
  // JSON.parse keeps the last of duplicate keys; a reader that keeps the first would see another tensor.
  const dup = duplicateJsonKey(text);
  if (dup) throw new SafetensorsError(`duplicate key ${dup} in the header (JSON.parse would silently keep the last one)`);
  const dataStart = 8 + n;
  const dataLen = bytes.byteLength - dataStart;
  let metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
        throw new SafetensorsError('__metadata__ must be an object of strings');
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new SafetensorsError(`__metadata__.${k} is not a string`);
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      throw new SafetensorsError(`entry '${name}' is not an object`);
    }
    const { dtype, shape, data_offsets: offs } = raw as Record<string, unknown>;
    if (typeof dtype !== 'string' || !Object.prototype.hasOwnProperty.call(DTYPE_SIZES, dtype)) {
      throw new SafetensorsError(`tensor '${name}': unsupported dtype ${JSON.stringify(dtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegInt)) {
      throw new SafetensorsError(`tensor '${name}': shape must be an array of non-negative integers`);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isNonNegInt)) {
      throw new SafetensorsError(`tensor '${name}': data_offsets must be two non-negative integers`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end) throw new SafetensorsError(`tensor '${name}': data_offsets [${begin}, ${end}] are reversed`);
    if (end > dataLen) {
      throw new SafetensorsError(
        `tensor '${name}': data_offsets [${begin}, ${end}] run past the data section (${dataLen} bytes): truncated?`,
      );
    }
    let count = 1;
    for (const d of shape as number[]) {
      count *= d;
      if (!Number.isSafeInteger(count)) throw new SafetensorsError(`tensor '${name}': shape [${shape}] is too large`);
    }
    const expected = count * DTYPE_SIZES[dtype as SafetensorsDtype];
    if (end - begin !== expected) {
      throw new SafetensorsError(
        `tensor '${name}': ${end - begin} bytes stored but shape [${shape}] of ${dtype} needs ${expected}`,
      );
    }
    entries.push({ name, dtype: dtype as SafetensorsDtype, shape: shape as number[], dataOffsets: [begin, end] });
  }
  entries.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let cursor = 0;
  for (const e of entries) {
    if (e.dataOffsets[0] !== cursor) {
      throw new SafetensorsError(
        e.dataOffsets[0] < cursor
          ? `tensor '${e.name}' overlaps the previous tensor (starts at ${e.dataOffsets[0]}, previous ends at ${cursor})`
          : `gap in the data section before tensor '${e.name}' (bytes ${cursor}..${e.dataOffsets[0]} belong to no tensor)`,
      );
    }
    cursor = e.dataOffsets[1];
  }
  if (cursor !== dataLen) {
    throw new SafetensorsError(`data section is ${dataLen} bytes but the tensors cover ${cursor}: trailing bytes`);
  }
  return new SafetensorsFile(bytes, dataStart, metadata, new Map(entries.map((e) => [e.name, e])));
}

/**
 * The first key that appears twice in one object of a JSON text (already known to be valid JSON), as
 * `'name'` or `'name' in 'parent'`; undefined when there is none. Keys are compared after unescaping
 * (`"a"` and `"\u0061"` are the same key).
 */
export function duplicateJsonKey(text: string): string | undefined {
  interface Ctx {
    keys: Set<string> | undefined; // undefined for an array
    expectKey: boolean;
    name: string | undefined;
  }
  const stack: Ctx[] = [];
  let lastKey: string | undefined;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      let escaped = false;
      for (; j < n; j++) {
        const d = text.charCodeAt(j);
        if (d === 0x5c /* \ */) {
          escaped = true;
          j++;
        } else if (d === 0x22) break;
      }
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const raw = text.slice(i + 1, j);
        const key = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : raw;
        if (top.keys.has(key)) return `'${key}'${top.name !== undefined ? ` in '${top.name}'` : ''}`;
        top.keys.add(key);
        top.expectKey = false;
        lastKey = key;
      }
      i = j;
    } else if (c === 0x7b /* { */) {
      const parent = stack[stack.length - 1];
      stack.push({ keys: new Set(), expectKey: true, name: parent?.keys ? lastKey : parent?.name });
    } else if (c === 0x5b /* [ */) {
      const parent = stack[stack.length - 1];
      stack.push({ keys: undefined, expectKey: false, name: parent?.keys ? lastKey : parent?.name });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
    }
  }
  return undefined;
}

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

function decode(dtype: SafetensorsDtype, raw: Uint8Array): TensorData {
  // Copy into an aligned buffer of its own first: the source may sit at any byte offset. (Not `raw.slice()`:
  // on a Node Buffer that is a view of the whole underlying memory, not a copy.)
  const copy = new Uint8Array(raw.byteLength);
  copy.set(raw);
  const buf = copy.buffer;
  switch (dtype) {
    case 'F32':
      return littleEndian ? new Float32Array(buf) : swapped(buf, 4, (v, o) => v.getFloat32(o, true), Float32Array);
    case 'F64': {
      const v = new DataView(buf);
      const out = new Float32Array(raw.byteLength / 8);
      for (let i = 0; i < out.length; i++) out[i] = v.getFloat64(i * 8, true);
      return out;
    }
    case 'F16': {
      const v = new DataView(buf);
      const out = new Float32Array(raw.byteLength / 2);
      for (let i = 0; i < out.length; i++) out[i] = f16ToF32(v.getUint16(i * 2, true));
      return out;
    }
    case 'BF16': {
      const v = new DataView(buf);
      const out = new Float32Array(raw.byteLength / 2);
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < out.length; i++) u[i] = v.getUint16(i * 2, true) << 16;
      return out;
    }
    case 'I64': {
      const v = new DataView(buf);
      const out = new BigInt64Array(raw.byteLength / 8);
      for (let i = 0; i < out.length; i++) out[i] = v.getBigInt64(i * 8, true);
      return out;
    }
    case 'I32':
      return littleEndian ? new Int32Array(buf) : swapped(buf, 4, (v, o) => v.getInt32(o, true), Int32Array);
    case 'I16':
      return littleEndian ? new Int16Array(buf) : swapped(buf, 2, (v, o) => v.getInt16(o, true), Int16Array);
    case 'I8':
      return new Int8Array(buf);
    case 'U8':
      return new Uint8Array(buf);
    case 'BOOL': {
      const out = new Uint8Array(buf);
      for (let i = 0; i < out.length; i++) if (out[i]! > 1) throw new SafetensorsError(`BOOL tensor holds byte ${out[i]}`);
      return out;
    }
  }
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function swapped<T extends Float32Array | Int32Array | Int16Array>(
  buf: ArrayBuffer,
  size: number,
  read: (v: DataView, o: number) => number,
  Ctor: new (n: number) => T,
): T {
  const v = new DataView(buf);
  const out = new Ctor(buf.byteLength / size);
  for (let i = 0; i < out.length; i++) out[i] = read(v, i * size);
  return out;
}

export interface WriteTensor {
  data: Float32Array;
  shape: readonly number[];
}

export interface SerializeOptions {
  metadata?: Record<string, string>;
  /**
   * Stored float dtype. Default F32. F16 rounds to nearest-even and saturates to ±Inf beyond 65504; BF16
   * (float32's exponent, 8 bits of mantissa) rounds to nearest-even and keeps float32's range.
   */
  dtype?: 'F32' | 'F16' | 'BF16';
}

function f32ToBf16(bits: number): number {
  if ((bits & 0x7f800000) === 0x7f800000 && bits & 0x7fffff) return ((bits >>> 16) & 0xffff) | 0x40; // NaN stays NaN
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

function f32ToF16(val: number): number {
  const f = new Float32Array([val]);
  const x = new Uint32Array(f.buffer)[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** Serialise float32 tensors (in the given order) into safetensors bytes. */
export function serializeSafetensors(
  tensors: Iterable<[string, WriteTensor]> | Record<string, WriteTensor>,
  opts: SerializeOptions = {},
): Uint8Array {
  const list: [string, WriteTensor][] =
    Symbol.iterator in (tensors as object) ? [...(tensors as Iterable<[string, WriteTensor]>)] : Object.entries(tensors);
  const dtype = opts.dtype ?? 'F32';
  if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') {
    throw new SafetensorsError(`cannot write dtype ${JSON.stringify(dtype)} (F32, F16 or BF16)`);
  }
  const size = DTYPE_SIZES[dtype];
  // A prototype-less object: tensor names such as 'constructor' or '__proto__' are plain keys.
  const header: Record<string, unknown> = Object.create(null);
  if (opts.metadata && Object.keys(opts.metadata).length) {
    const metadata: Record<string, string> = Object.create(null);
    for (const [k, v] of Object.entries(opts.metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError(`metadata '${k}' must be a string, got ${typeof v}`);
      metadata[k] = v;
    }
    header['__metadata__'] = metadata;
  }
  let offset = 0;
  for (const [name, t] of list) {
    if (typeof name !== 'string') throw new SafetensorsError(`tensor names must be strings, got ${typeof name}`);
    if (name === '__metadata__') throw new SafetensorsError(`'__metadata__' is not a valid tensor name`);
    if (Object.prototype.hasOwnProperty.call(header, name)) throw new SafetensorsError(`duplicate tensor name '${name}'`);
    if (!(t.data instanceof Float32Array)) {
      throw new SafetensorsError(`tensor '${name}': data must be a Float32Array`);
    }
    if (!Array.isArray(t.shape) || !t.shape.every(isNonNegInt)) {
      throw new SafetensorsError(`tensor '${name}': shape must be an array of non-negative integers, got ${JSON.stringify(t.shape)}`);
    }
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new SafetensorsError(`tensor '${name}': ${t.data.length} values do not fill shape [${t.shape}]`);
    }
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + count * size] };
    offset += count * size;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let pos = 8 + json.length;
  for (const [, t] of list) {
    if (dtype === 'F32') {
      if (littleEndian) out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
      else for (let i = 0; i < t.data.length; i++) view.setFloat32(pos + i * 4, t.data[i]!, true);
      pos += t.data.byteLength;
    } else if (dtype === 'BF16') {
      const bits = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
      for (let i = 0; i < bits.length; i++) view.setUint16(pos + i * 2, f32ToBf16(bits[i]!), true);
      pos += t.data.length * 2;
    } else {
      for (let i = 0; i < t.data.length; i++) view.setUint16(pos + i * 2, f32ToF16(t.data[i]!), true);
      pos += t.data.length * 2;
    }
  }
  return out;
}

/** Where safetensors bytes come from: bytes, a Node file path, a `file:`/`http(s):` URL, or a `Response`. */
export type WeightsSource = Uint8Array | ArrayBuffer | string | URL | Response | Blob;

/** Options for reading weights from a URL (see fetchBytes): `signal` aborts, `timeoutMs` bounds a stall. */
export interface ReadWeightsOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** Read and parse safetensors from bytes, a path (Node) or a URL (fetch; file: URLs in Node). */
export async function readSafetensors(source: WeightsSource, opts: ReadWeightsOptions = {}): Promise<SafetensorsFile> {
  return parseSafetensors(await readBytes(source, opts));
}

const isNodeRuntime =
  typeof process !== 'undefined' && typeof process.versions === 'object' && typeof process.versions.node === 'string';

/**
 * Resolve a weights source to bytes. URLs go through fetchBytes (timeout, `signal`, content-length and the
 * first bytes checked: an HTML page is reported as such); its errors become SafetensorsErrors naming the URL.
 */
export async function readBytes(source: WeightsSource, opts: ReadWeightsOptions = {}): Promise<Uint8Array> {
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (typeof Blob !== 'undefined' && source instanceof Blob) return new Uint8Array(await source.arrayBuffer());
  if (typeof Response !== 'undefined' && source instanceof Response) {
    if (!source.ok) throw new SafetensorsError(`HTTP ${source.status} ${source.statusText} for ${source.url}`);
    return new Uint8Array(await source.arrayBuffer());
  }
  const str = source instanceof URL ? source.href : String(source);
  const isUrl = /^(https?|file|blob|data):/i.test(str);
  if (isNodeRuntime && (!isUrl || str.startsWith('file:'))) {
    const fs = await import(/* @vite-ignore */ 'node:fs/promises');
    const path = str.startsWith('file:') ? new URL(str) : str;
    try {
      const buf = await fs.readFile(path);
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      throw new SafetensorsError(`cannot read ${str}: ${(e as Error).message}`, { cause: e, ...(typeof code === 'string' ? { code } : {}) });
    }
  }
  try {
    return await fetchBytes(str, { ...opts, expect: 'safetensors' });
  } catch (e) {
    if (e instanceof FetchError) throw new SafetensorsError(e.message, { cause: e, code: e.kind });
    throw e;
  }
}

/**
 * Node only: write bytes atomically (temporary file in the same folder, fsync, rename, fsync of the folder).
 *
 * - A symbolic link is written through: its target is replaced, the link stays (a dangling link creates its
 *   target). Anything else that is not a regular file (a folder, a FIFO, a device) is refused.
 * - Temporary files left next to the target by an interrupted write (`<name>.tmp-<pid>-…` of a process that no
 *   longer runs) are removed.
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  if (!isNodeRuntime) throw new Error('writeFileAtomic: file paths exist only in Node; use the bytes instead');
  const fs = await import(/* @vite-ignore */ 'node:fs/promises');
  const { dirname, basename, join, resolve } = await import(/* @vite-ignore */ 'node:path');
  const codeOf = (e: unknown) => (e as { code?: unknown }).code;
  // Follow symbolic links to the file that is really written.
  let target = path;
  for (let hops = 0; ; hops++) {
    let st: Awaited<ReturnType<typeof fs.lstat>>;
    try {
      st = await fs.lstat(target);
    } catch (e) {
      if (codeOf(e) === 'ENOENT') break;
      throw e;
    }
    if (st.isSymbolicLink()) {
      if (hops >= 40) throw new Error(`writeFileAtomic: too many levels of symbolic links at ${path}`);
      target = resolve(dirname(target), await fs.readlink(target));
      continue;
    }
    if (!st.isFile()) {
      const kind = st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : st.isSocket() ? 'a socket' : 'not a regular file';
      throw new Error(`writeFileAtomic: ${path}${target !== path ? ` (→ ${target})` : ''} is ${kind}, not a regular file: refusing to replace it`);
    }
    break;
  }
  const dir = dirname(target);
  const prefix = `${basename(target)}.tmp-`;
  await removeStaleTemporaries(fs, dir, prefix, join);
  const tmp = `${target}.tmp-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    const fh = await fs.open(tmp, 'wx');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, target);
  } catch (e) {
    await fs.rm(tmp, { force: true }).catch(() => {});
    throw e;
  }
  // Make the rename itself durable (best effort: not every file system lets a folder be fsynced).
  try {
    const dh = await fs.open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  } catch {
    /* ignore */
  }
}

/** Remove `<prefix><pid>-…` files whose writing process is gone (a write interrupted by SIGKILL or a crash). */
async function removeStaleTemporaries(
  fs: typeof import('node:fs/promises'),
  dir: string,
  prefix: string,
  join: (...p: string[]) => string,
): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return; // the write itself reports a missing folder
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)-\d+-[a-z0-9]*$/.exec(name.slice(prefix.length));
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || processAlive(pid)) continue;
    await fs.rm(join(dir, name), { force: true }).catch(() => {});
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: unknown }).code === 'EPERM';
  }
}
