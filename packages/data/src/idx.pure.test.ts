import { describe, it, expect, beforeAll } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parseIdx, readIdx, encodeIdx } from '@softbias/data';

/** IDX bytes written by hand: header then big-endian values, independently of encodeIdx. */
function handIdx(typeByte: number, shape: number[], write: (v: DataView, o: number) => number): Uint8Array {
  const count = shape.reduce((a, b) => a * b, 1);
  const buf = new Uint8Array(4 + 4 * shape.length + count * 8);
  const v = new DataView(buf.buffer);
  buf[2] = typeByte;
  buf[3] = shape.length;
  shape.forEach((n, d) => {
    v.setUint32(4 + 4 * d, n, false);
  });
  let o = 4 + 4 * shape.length;
  for (let i = 0; i < count; i++) o += write(v, o) as number;
  return buf.slice(0, o);
}

describe('IDX reader', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'softbias-idx-'));
  });

  it('reads uint8 images written raw and gzipped', async () => {
    const shape = [3, 4, 5];
    let k = 0;
    const bytes = handIdx(0x08, shape, (v, o) => (v.setUint8(o, (k++ * 37) % 256), 1));
    writeFileSync(join(dir, 'raw-idx3-ubyte'), bytes);
    writeFileSync(join(dir, 'raw-idx3-ubyte.gz'), gzipSync(bytes));
    for (const f of ['raw-idx3-ubyte', 'raw-idx3-ubyte.gz']) {
      const a = await readIdx(join(dir, f));
      expect(a.dtype).toBe('uint8');
      expect(a.shape).toEqual(shape);
      expect(a.data.length).toBe(60);
      for (let i = 0; i < 60; i++) expect(a.data[i]).toBe((i * 37) % 256);
    }
  });

  it('reads every IDX dtype big-endian', async () => {
    const vals = [-3, 0, 7, 1000, -1000, 12];
    const cases: [number, string, (v: DataView, o: number, x: number) => number, number[]][] = [
      [0x09, 'int8', (v, o, x) => (v.setInt8(o, x % 128), 1), vals.map((x) => x % 128)],
      [0x0b, 'int16', (v, o, x) => (v.setInt16(o, x, false), 2), vals],
      [0x0c, 'int32', (v, o, x) => (v.setInt32(o, x * 100000, false), 4), vals.map((x) => x * 100000)],
      [0x0d, 'float32', (v, o, x) => (v.setFloat32(o, x / 4, false), 4), vals.map((x) => x / 4)],
      [0x0e, 'float64', (v, o, x) => (v.setFloat64(o, x / 3, false), 8), vals.map((x) => x / 3)],
    ];
    for (const [code, dtype, write, expected] of cases) {
      let i = 0;
      const bytes = handIdx(code, [2, 3], (v, o) => write(v, o, vals[i++]!));
      const a = parseIdx(bytes);
      expect(a.dtype).toBe(dtype);
      expect(a.shape).toEqual([2, 3]);
      expect(Array.from(a.data)).toEqual(expected.map((e) => (dtype === 'float32' ? Math.fround(e) : e)));
      // encodeIdx writes the same bytes as the hand-written file.
      expect(Array.from(encodeIdx(a))).toEqual(Array.from(bytes));
    }
  });

  it('rejects bad files with clear errors', async () => {
    const good = handIdx(0x08, [2, 2], (v, o) => (v.setUint8(o, 1), 1));
    expect(() => parseIdx(new Uint8Array([0, 0]))).toThrow(/too short/);
    expect(() => parseIdx(Uint8Array.from([1, 2, 8, 1, 0, 0, 0, 0]))).toThrow(/not an IDX file/);
    expect(() => parseIdx(Uint8Array.from([0, 0, 0x42, 1, 0, 0, 0, 0]))).toThrow(/unknown IDX type byte 42/);
    expect(() => parseIdx(good.slice(0, good.length - 1))).toThrow(/needs 16 bytes, the file has 15 \(truncated\?\)/);
    expect(() => parseIdx(Uint8Array.from([...good, 9]))).toThrow(/trailing bytes/);
    expect(() => parseIdx(good.slice(0, 6))).toThrow(/truncated header/);
    expect(() => parseIdx(gzipSync(good))).toThrow(/gzip data, use readIdx/);
    const corrupt = gzipSync(good);
    corrupt[corrupt.length - 6] ^= 0xff; // CRC/size trailer damaged
    writeFileSync(join(dir, 'corrupt.gz'), corrupt);
    await expect(readIdx(join(dir, 'corrupt.gz'))).rejects.toThrow(/corrupt gzip data/);
    await expect(readIdx(join(dir, 'missing-file'))).rejects.toThrow(/cannot read .*missing-file/);
  });
});
