/**
 * safetensors reader/writer: every dtype from files built byte by byte here, writer round trips (F16 rounding
 * against a reference computed by enumerating every half-precision value), metadata, every source (bytes, path,
 * file: URL, http:// URL, Response, Blob) and each malformed case with its own error.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  parseSafetensors,
  serializeSafetensors,
  readSafetensors,
  readBytes,
  SafetensorsError,
  MAX_HEADER_BYTES,
  writeFileAtomic,
  type SafetensorsDtype,
} from '@softbias/tensor-ops';

const enc = new TextEncoder();

/** A safetensors file from a header (JSON text or value) and raw data bytes; `lengthField` overrides N. */
function buildFile(header: string | object, data: ArrayLike<number> = [], lengthField?: bigint): Uint8Array {
  const json = enc.encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lengthField ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(Array.from(data), 8 + json.length);
  return out;
}

/** Little-endian bytes of numbers written with a DataView setter. */
function bytesOf(size: number, values: readonly (number | bigint)[], set: (v: DataView, o: number, x: any) => void): number[] {
  const buf = new DataView(new ArrayBuffer(size * values.length));
  values.forEach((x, i) => {
    set(buf, i * size, x);
  });
  return Array.from(new Uint8Array(buf.buffer));
}

function expectSafetensorsError(fn: () => unknown, pattern: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected a SafetensorsError matching ${pattern}`).toBeInstanceOf(SafetensorsError);
  expect((caught as Error).message).toMatch(pattern);
}

// ---- half precision reference: every finite half, by its definition --------------------------------------
function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m === 0 ? sign * Infinity : NaN;
  return e === 0 ? sign * m * 2 ** -24 : sign * (1024 + m) * 2 ** (e - 25);
}

/** Round-to-nearest-even float → half bits, by binary search over the (monotone) positive half patterns. */
function referenceHalfBits(x: number): number {
  if (Number.isNaN(x)) return -1; // any NaN
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  // Patterns 0 … 0x7c00 increase with their value; 0x7c00 (Inf) stands for 2^16 when rounding, as in IEEE 754.
  const val = (h: number) => (h === 0x7c00 ? 65536 : halfValue(h));
  if (a >= 65536) return sign | 0x7c00;
  let lo = 0;
  let hi = 0x7c00;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (val(mid) <= a) lo = mid;
    else hi = mid;
  }
  // val(lo) <= a < val(hi) with hi = lo + 1
  const dLo = a - val(lo);
  const dHi = val(hi) - a;
  const h = dLo < dHi ? lo : dHi < dLo ? hi : lo % 2 === 0 ? lo : hi;
  return sign | h;
}

describe('safetensors: reading every dtype', () => {
  it('decodes F64, F32, F16, BF16 (as float32), I64, I32, I16, I8, U8, BOOL at unaligned offsets', () => {
    const f64 = [0.1, -2.5, 1e300, 1e-50, 3.141592653589793];
    const f32 = [1.5, -0.125, 3.4e38, 1e-45];
    const f16Bits = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x7c00, 0xfc00, 0x8000, 0x3555];
    const f16Values = [1, -2, 65504, 2 ** -24, 2 ** -14, Infinity, -Infinity, -0, 0.333251953125];
    const bf16Bits = [0x3f80, 0xc040, 0x4049, 0x7f80, 0xff80, 0x0001, 0x8000];
    const bf16Values = [1, -3, 3.140625, Infinity, -Infinity, 2 ** -133, -0];
    const i64 = [-1n, 2n ** 62n + 7n, -(2n ** 63n), 123456789012345n];
    const i32 = [-2147483648, 2147483647, -5, 0];
    const i16 = [-32768, 32767, -1];
    const i8 = [-128, 127, -1, 0];
    const u8 = [0, 255, 17];
    const bool = [1, 0, 0, 1];
    const parts: [string, SafetensorsDtype, number[], number[]][] = [
      // A 3-byte U8 first, so every later tensor starts at an odd offset in the data section.
      ['u8', 'U8', [3], u8],
      ['f64', 'F64', [5], bytesOf(8, f64, (v, o, x) => v.setFloat64(o, x, true))],
      ['f32', 'F32', [2, 2], bytesOf(4, f32, (v, o, x) => v.setFloat32(o, x, true))],
      ['f16', 'F16', [9], bytesOf(2, f16Bits, (v, o, x) => v.setUint16(o, x, true))],
      ['bf16', 'BF16', [7, 1], bytesOf(2, bf16Bits, (v, o, x) => v.setUint16(o, x, true))],
      ['i64', 'I64', [4], bytesOf(8, i64, (v, o, x) => v.setBigInt64(o, x, true))],
      ['i32', 'I32', [4], bytesOf(4, i32, (v, o, x) => v.setInt32(o, x, true))],
      ['i16', 'I16', [3], bytesOf(2, i16, (v, o, x) => v.setInt16(o, x, true))],
      ['i8', 'I8', [2, 2], i8.map((x) => x & 0xff)],
      ['bool', 'BOOL', [4], bool],
      ['scalar', 'F32', [], bytesOf(4, [7.25], (v, o, x) => v.setFloat32(o, x, true))],
      ['empty', 'F32', [0, 3], []],
    ];
    const header: Record<string, unknown> = {};
    const data: number[] = [];
    for (const [name, dtype, shape, bytes] of parts) {
      header[name] = { dtype, shape, data_offsets: [data.length, data.length + bytes.length] };
      data.push(...bytes);
    }
    // A header whose length is not a multiple of 8 leaves the data section unaligned too.
    const file = parseSafetensors(buildFile(JSON.stringify(header) + ' ', data));
    // Names in file order (by data offset).
    expect(file.names()).toEqual(parts.map((p) => p[0]));

    const get = (n: string) => file.get(n);
    expect(get('f64').data).toBeInstanceOf(Float32Array);
    expect(Array.from(get('f64').data as Float32Array)).toEqual(f64.map((x) => Math.fround(x)));
    expect(Array.from(get('f32').data as Float32Array)).toEqual(f32.map((x) => Math.fround(x)));
    expect(get('f32').shape).toEqual([2, 2]);
    const h = Array.from(get('f16').data as Float32Array);
    h.forEach((x, i) => {
      expect(Object.is(x, f16Values[i]), `f16[${i}] = ${x}, want ${f16Values[i]}`).toBe(true);
    });
    const b = Array.from(get('bf16').data as Float32Array);
    b.forEach((x, i) => {
      expect(Object.is(x, Math.fround(bf16Values[i]!)), `bf16[${i}] = ${x}`).toBe(true);
    });
    expect(get('bf16').shape).toEqual([7, 1]);
    expect(get('i64').data).toBeInstanceOf(BigInt64Array);
    expect(Array.from(get('i64').data as BigInt64Array)).toEqual(i64);
    expect(get('i32').data).toBeInstanceOf(Int32Array);
    expect(Array.from(get('i32').data as Int32Array)).toEqual(i32);
    expect(get('i16').data).toBeInstanceOf(Int16Array);
    expect(Array.from(get('i16').data as Int16Array)).toEqual(i16);
    expect(get('i8').data).toBeInstanceOf(Int8Array);
    expect(Array.from(get('i8').data as Int8Array)).toEqual(i8);
    expect(get('u8').data).toBeInstanceOf(Uint8Array);
    expect(Array.from(get('u8').data as Uint8Array)).toEqual(u8);
    expect(Array.from(get('bool').data as Uint8Array)).toEqual(bool);
    expect(get('scalar').shape).toEqual([]);
    expect(Array.from(get('scalar').data as Float32Array)).toEqual([7.25]);
    expect(get('empty').data.length).toBe(0);
    expect(file.info('f16')).toMatchObject({ dtype: 'F16', shape: [9] });

    // getFloat32 converts integer dtypes (I64 through Number).
    expect(Array.from(file.getFloat32('i16').data)).toEqual(i16);
    expect(Array.from(file.getFloat32('i64').data)).toEqual(i64.map((x) => Math.fround(Number(x))));
    expect(file.getFloat32('f16').data).toBeInstanceOf(Float32Array);

    // get() returns copies that own their memory.
    const a1 = get('f32').data as Float32Array;
    a1[0] = 99;
    expect((get('f32').data as Float32Array)[0]).toBe(1.5);
  });

  it('refuses a BOOL byte other than 0 or 1 and an unknown name', () => {
    const file = parseSafetensors(buildFile({ b: { dtype: 'BOOL', shape: [2], data_offsets: [0, 2] } }, [1, 2]));
    expectSafetensorsError(() => file.get('b'), /BOOL tensor holds byte 2/);
    expectSafetensorsError(() => file.get('nope'), /no tensor named 'nope'/);
    expect(file.has('b')).toBe(true);
    expect(file.has('nope')).toBe(false);
  });
});

describe('safetensors: writing', () => {
  it('round-trips F32 exactly, with shapes, order, a scalar and an empty tensor', () => {
    const a = new Float32Array([1, -2.5, 3.25e-20, 6e37, -0, NaN, Infinity, 1 / 3]);
    const bytes = serializeSafetensors(
      new Map([
        ['layer.weight', { data: a, shape: [2, 4] }],
        ['scalar', { data: new Float32Array([42]), shape: [] }],
        ['empty', { data: new Float32Array(0), shape: [3, 0] }],
      ]),
    );
    // Header padded with spaces to a multiple of 8; data section right after.
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const f = parseSafetensors(bytes);
    expect(f.names()).toEqual(['layer.weight', 'scalar', 'empty']);
    const back = f.get('layer.weight');
    expect(back.dtype).toBe('F32');
    expect(back.shape).toEqual([2, 4]);
    const d = back.data as Float32Array;
    for (let i = 0; i < a.length; i++) expect(Object.is(d[i], a[i]), `value ${i}`).toBe(true);
    expect(Array.from(f.get('scalar').data as Float32Array)).toEqual([42]);
    expect(f.get('empty').shape).toEqual([3, 0]);
    // Record input works the same way.
    const g = parseSafetensors(serializeSafetensors({ x: { data: new Float32Array([5, 6]), shape: [2] } }));
    expect(Array.from(g.get('x').data as Float32Array)).toEqual([5, 6]);
  });

  it('writes F16 rounded to nearest even (reference: every half value enumerated)', () => {
    const values: number[] = [
      0, -0, 1, -1, 65504, 65519.99, 65520, 65536, 1e6, -1e6, 2 ** -24, 2 ** -25, 2 ** -25 * 1.0000001, 2 ** -26,
      3 * 2 ** -25, 2 ** -14, 2 ** -14 - 2 ** -25, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -20,
      2049, 2051, 4097, 0.1, 1 / 3, Math.PI, 1e-8, 6.1e-5, NaN, Infinity, -Infinity,
    ];
    // Plus random values over every binade, positive and negative.
    let seed = 12345;
    const rand = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    for (let i = 0; i < 4000; i++) values.push((rand() < 0.5 ? -1 : 1) * 2 ** (rand() * 46 - 28) * (1 + rand()));
    const data = Float32Array.from(values);
    const bytes = serializeSafetensors({ h: { data, shape: [data.length] } }, { dtype: 'F16' });
    const f = parseSafetensors(bytes);
    expect(f.info('h').dtype).toBe('F16');
    const start = bytes.byteLength - data.length * 2;
    const raw = new DataView(bytes.buffer, bytes.byteOffset + start);
    const decoded = f.get('h').data as Float32Array;
    let mismatches = 0;
    for (let i = 0; i < data.length; i++) {
      const want = referenceHalfBits(data[i]!);
      const got = raw.getUint16(i * 2, true);
      if (want === -1) {
        expect(Number.isNaN(halfValue(got)), `NaN stays NaN (${got.toString(16)})`).toBe(true);
        expect(Number.isNaN(decoded[i]!)).toBe(true);
        continue;
      }
      if (got !== want) mismatches++;
      expect(got, `f16 bits of ${data[i]}`).toBe(want);
      expect(Object.is(decoded[i], halfValue(want)), `decoded ${data[i]}`).toBe(true);
    }
    expect(mismatches).toBe(0);
  });

  it('stores metadata (the architecture config as JSON) and reads it back', () => {
    const config = { embed_dim: 48, depth: 4, heads: [1, 2], name: 'convit_micro', nested: { eps: 1e-6 } };
    const bytes = serializeSafetensors(
      { w: { data: new Float32Array([1]), shape: [1] } },
      { metadata: { config: JSON.stringify(config), format: 'pt' } },
    );
    const f = parseSafetensors(bytes);
    expect(f.metadata).toEqual({ config: JSON.stringify(config), format: 'pt' });
    expect(f.config()).toEqual(config);
    const noMeta = parseSafetensors(serializeSafetensors({ w: { data: new Float32Array([1]), shape: [1] } }));
    expect(noMeta.metadata).toEqual({});
    expect(noMeta.config()).toBeUndefined();
    const badConfig = parseSafetensors(
      serializeSafetensors({ w: { data: new Float32Array([1]), shape: [1] } }, { metadata: { config: '{oops' } }),
    );
    expectSafetensorsError(() => badConfig.config(), /__metadata__.config is not valid JSON/);
  });

  it('accepts any tensor name, including prototype names', () => {
    const names = ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'a.b.c', ''];
    const bytes = serializeSafetensors(names.map((n, i) => [n, { data: new Float32Array([i]), shape: [1] }] as const));
    const f = parseSafetensors(bytes);
    expect(f.names()).toEqual(names);
    names.forEach((n, i) => {
      expect(Array.from(f.get(n).data as Float32Array)).toEqual([i]);
    });
  });

  it('refuses what it cannot write, with a clear error', () => {
    const one = { data: new Float32Array([1]), shape: [1] };
    expectSafetensorsError(() => serializeSafetensors([['a', one], ['a', one]]), /duplicate tensor name 'a'/);
    expectSafetensorsError(() => serializeSafetensors({ __metadata__: one }), /'__metadata__' is not a valid tensor name/);
    expectSafetensorsError(() => serializeSafetensors({ a: { data: new Float32Array(3), shape: [2, 2] } }), /3 values do not fill shape \[2,2\]/);
    expectSafetensorsError(() => serializeSafetensors({ a: { data: new Float32Array(2), shape: [-1, -2] } }), /shape must be an array of non-negative integers/);
    expectSafetensorsError(() => serializeSafetensors({ a: { data: [1] as any, shape: [1] } }), /data must be a Float32Array/);
    expectSafetensorsError(() => serializeSafetensors({ a: one }, { metadata: { n: 5 as any } }), /metadata 'n' must be a string/);
    expectSafetensorsError(() => serializeSafetensors({ a: one }, { dtype: 'I8' as any }), /cannot write dtype "I8" \(F32, F16 or BF16\)/);
  });
});

describe('safetensors: sources', () => {
  let dir: string;
  let bytes: Uint8Array;
  let server: Server;
  let base: string;
  let requests = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'softbias-st-'));
    bytes = serializeSafetensors(
      { 'blocks.0.w': { data: new Float32Array([1, 2, 3, 4, 5, 6]), shape: [2, 3] } },
      { metadata: { config: '{"k":3}' } },
    );
    writeFileSync(join(dir, 'w.safetensors'), bytes);
    server = createServer((req, res) => {
      requests++;
      if (req.url === '/w.safetensors') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.byteLength });
        res.end(Buffer.from(bytes));
      } else {
        res.writeHead(404);
        res.end('not found');
      }
    });
    server.requestTimeout = 5000;
    server.headersTimeout = 5000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  const check = (f: Awaited<ReturnType<typeof readSafetensors>>) => {
    expect(f.names()).toEqual(['blocks.0.w']);
    expect(f.get('blocks.0.w').shape).toEqual([2, 3]);
    expect(Array.from(f.get('blocks.0.w').data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(f.config()).toEqual({ k: 3 });
  };

  it('reads bytes: Uint8Array, a Buffer view at an odd offset, an ArrayBuffer', async () => {
    check(await readSafetensors(bytes));
    const shifted = Buffer.alloc(bytes.byteLength + 3);
    shifted.set(bytes, 3);
    check(await readSafetensors(shifted.subarray(3)));
    check(await readSafetensors(bytes.slice().buffer));
  });

  it('reads a Node path and a file: URL (URL object and string)', async () => {
    const p = join(dir, 'w.safetensors');
    check(await readSafetensors(p));
    check(await readSafetensors(pathToFileURL(p)));
    check(await readSafetensors(pathToFileURL(p).href));
    await expect(readSafetensors(join(dir, 'missing.safetensors'))).rejects.toThrow(SafetensorsError);
    await expect(readSafetensors(join(dir, 'missing.safetensors'))).rejects.toThrow(/cannot read .*missing\.safetensors/);
  });

  it('reads an http:// URL (served on 127.0.0.1 by this test), a Response and a Blob; 404 is a clear error', async () => {
    const before = requests;
    check(await readSafetensors(`${base}/w.safetensors`));
    check(await readSafetensors(new URL(`${base}/w.safetensors`)));
    check(await readSafetensors(await fetch(`${base}/w.safetensors`)));
    expect(requests - before).toBe(3);
    check(await readSafetensors(new Blob([bytes as Uint8Array<ArrayBuffer>])));
    await expect(readSafetensors(`${base}/nope.safetensors`)).rejects.toThrow(SafetensorsError);
    await expect(readSafetensors(`${base}/nope.safetensors`)).rejects.toThrow(/HTTP 404/);
    await expect(readSafetensors(await fetch(`${base}/nope.safetensors`))).rejects.toThrow(/HTTP 404/);
    expect(await readBytes(`${base}/w.safetensors`)).toEqual(bytes);
  });

  it('writeFileAtomic writes the bytes and leaves no temporary file', async () => {
    const p = join(dir, 'atomic.safetensors');
    await writeFileAtomic(p, bytes);
    await writeFileAtomic(p, bytes); // replaces
    expect(new Uint8Array(readFileSync(p))).toEqual(bytes);
    expect(readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
    await expect(writeFileAtomic(join(dir, 'no-such-dir', 'x.safetensors'), bytes)).rejects.toThrow(/ENOENT/);
    expect(readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });
});

describe('safetensors: malformed files get a clear SafetensorsError', () => {
  const f32 = (shape: number[], offsets: [number, number]) => ({ dtype: 'F32', shape, data_offsets: offsets });
  const data8 = new Array(8).fill(0);

  it('truncated before the header length', () => {
    expectSafetensorsError(() => parseSafetensors(new Uint8Array(5)), /5 bytes: too short for the 8-byte header length/);
    expectSafetensorsError(() => parseSafetensors(new Uint8Array(0)), /too short/);
  });

  it('truncated inside the data section', () => {
    const good = buildFile({ a: f32([2], [0, 8]) }, data8);
    expectSafetensorsError(() => parseSafetensors(good.subarray(0, good.length - 3)), /run past the data section \(5 bytes\): truncated\?/);
  });

  it('header length past the end of the file', () => {
    expectSafetensorsError(() => parseSafetensors(buildFile('{}', [], 1000n)), /header length 1000 runs past the end of the file \(10 bytes\)/);
  });

  it('huge header length', () => {
    expectSafetensorsError(() => parseSafetensors(buildFile('{}', [], 2n ** 63n)), new RegExp(`exceeds the ${MAX_HEADER_BYTES}-byte limit`));
    expectSafetensorsError(() => parseSafetensors(buildFile('{}', [], BigInt(MAX_HEADER_BYTES) + 1n)), /exceeds/);
  });

  it('header length too small, invalid UTF-8, non-JSON', () => {
    expectSafetensorsError(() => parseSafetensors(buildFile('{}', [], 1n)), /header length 1 is too small/);
    const bad = buildFile('{"a":1}');
    bad[10] = 0xff;
    expectSafetensorsError(() => parseSafetensors(bad), /header is not valid UTF-8/);
    expectSafetensorsError(() => parseSafetensors(buildFile('{"a": }')), /header is not valid JSON/);
    expectSafetensorsError(() => parseSafetensors(buildFile('not json at all')), /header is not valid JSON/);
  });

  it('a header that is not a JSON object, or entries that are not objects', () => {
    for (const h of ['[1,2]', '"text"', 'null', '42', 'true']) {
      expectSafetensorsError(() => parseSafetensors(buildFile(h)), /header is not a JSON object/);
    }
    expectSafetensorsError(() => parseSafetensors(buildFile({ a: [1, 2] })), /entry 'a' is not an object/);
    expectSafetensorsError(() => parseSafetensors(buildFile({ a: null })), /entry 'a' is not an object/);
  });

  it('bad dtype (including names of Object.prototype members)', () => {
    for (const dtype of ['F8', 'f32', 'toString', 'constructor', '__proto__', 3, null]) {
      expectSafetensorsError(
        () => parseSafetensors(buildFile({ a: { dtype, shape: [2], data_offsets: [0, 8] } }, data8)),
        /tensor 'a': unsupported dtype/,
      );
    }
  });

  it('bad shape', () => {
    for (const shape of [[-1], [1.5], '2', [2, '1'], [1e300], null, [NaN]]) {
      expectSafetensorsError(
        () => parseSafetensors(buildFile({ a: { dtype: 'F32', shape, data_offsets: [0, 8] } }, data8)),
        /tensor 'a': shape must be an array of non-negative integers/,
      );
    }
    expectSafetensorsError(
      () => parseSafetensors(buildFile({ a: f32([2 ** 26, 2 ** 26, 2 ** 26], [0, 8]) }, data8)),
      /shape \[.*\] is too large/,
    );
  });

  it('bad data_offsets', () => {
    for (const offs of [[0], [0, 8, 9], [-1, 8], [0, 8.5], ['0', '8'], null]) {
      expectSafetensorsError(
        () => parseSafetensors(buildFile({ a: { dtype: 'F32', shape: [2], data_offsets: offs } }, data8)),
        /data_offsets must be two non-negative integers/,
      );
    }
  });

  it('offsets out of range', () => {
    expectSafetensorsError(() => parseSafetensors(buildFile({ a: f32([4], [0, 16]) }, data8)), /data_offsets \[0, 16\] run past the data section \(8 bytes\)/);
  });

  it('reversed offsets', () => {
    expectSafetensorsError(() => parseSafetensors(buildFile({ a: f32([2], [8, 0]) }, data8)), /data_offsets \[8, 0\] are reversed/);
  });

  it('overlapping tensors', () => {
    const h = { a: f32([2], [0, 8]), b: f32([2], [4, 12]) };
    expectSafetensorsError(() => parseSafetensors(buildFile(h, new Array(12).fill(0))), /tensor 'b' overlaps the previous tensor \(starts at 4, previous ends at 8\)/);
    // Two tensors on the very same bytes.
    const same = { a: f32([2], [0, 8]), b: f32([2], [0, 8]) };
    expectSafetensorsError(() => parseSafetensors(buildFile(same, data8)), /overlaps/);
  });

  it('a gap between tensors or before the first', () => {
    const h = { a: f32([1], [0, 4]), b: f32([1], [8, 12]) };
    expectSafetensorsError(() => parseSafetensors(buildFile(h, new Array(12).fill(0))), /gap in the data section before tensor 'b' \(bytes 4\.\.8/);
    expectSafetensorsError(() => parseSafetensors(buildFile({ a: f32([1], [4, 8]) }, data8)), /gap in the data section before tensor 'a'/);
  });

  it('trailing bytes after the last tensor', () => {
    expectSafetensorsError(() => parseSafetensors(buildFile({ a: f32([1], [0, 4]) }, data8)), /data section is 8 bytes but the tensors cover 4: trailing bytes/);
  });

  it('byte count disagreeing with shape × dtype', () => {
    expectSafetensorsError(() => parseSafetensors(buildFile({ a: f32([3], [0, 8]) }, data8)), /tensor 'a': 8 bytes stored but shape \[3\] of F32 needs 12/);
    expectSafetensorsError(
      () => parseSafetensors(buildFile({ a: { dtype: 'F16', shape: [2], data_offsets: [0, 8] } }, data8)),
      /8 bytes stored but shape \[2\] of F16 needs 4/,
    );
  });

  it('non-string metadata, or metadata that is not an object', () => {
    expectSafetensorsError(() => parseSafetensors(buildFile({ __metadata__: { n: 5 } })), /__metadata__\.n is not a string/);
    expectSafetensorsError(() => parseSafetensors(buildFile({ __metadata__: { o: { a: 'b' } } })), /__metadata__\.o is not a string/);
    expectSafetensorsError(() => parseSafetensors(buildFile({ __metadata__: 'x' })), /__metadata__ must be an object of strings/);
    expectSafetensorsError(() => parseSafetensors(buildFile({ __metadata__: ['a'] })), /__metadata__ must be an object of strings/);
  });

  it('still reads a minimal valid file: {} with no data, and header padding', () => {
    expect(parseSafetensors(buildFile('{}')).size).toBe(0);
    expect(parseSafetensors(buildFile('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}     ', [9])).get('a').data).toEqual(
      new Uint8Array([9]),
    );
  });
});
