/**
 * Test-only PNG writer, written from the PNG specification independently of the decoder: filters each scanline
 * with the requested filter type (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth), deflates with node:zlib and
 * checksums with node:zlib's crc32.
 */
import { deflateSync, crc32 } from 'node:zlib';

export interface PngSpec {
  width: number;
  height: number;
  /** 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA. */
  colorType: 0 | 2 | 3 | 4 | 6;
  depth: 8 | 16 | 4;
  /** Samples row-major (for 16-bit: values 0–65535; palette: indices). */
  samples: ArrayLike<number>;
  palette?: number[];
  trns?: number[];
  /** Filter type per row (default 0). */
  filter?: (row: number) => number;
  interlace?: 0 | 1;
  /** Split the zlib stream into IDAT chunks of this size (default one chunk). */
  idatChunk?: number;
}

const SAMPLES: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

export function chunk(type: string, body: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])) >>> 0, 0);
  return Buffer.concat([head, body, crc]);
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  if (pb <= pc) return b;
  return c;
}

/** Raw (unfiltered) bytes of the image, one row after another. */
export function packRows(spec: PngSpec): Uint8Array[] {
  const spp = SAMPLES[spec.colorType]!;
  const rows: Uint8Array[] = [];
  const perRow = spec.width * spp;
  for (let y = 0; y < spec.height; y++) {
    if (spec.depth === 16) {
      const r = new Uint8Array(perRow * 2);
      for (let i = 0; i < perRow; i++) {
        const v = spec.samples[y * perRow + i]!;
        r[2 * i] = v >> 8;
        r[2 * i + 1] = v & 0xff;
      }
      rows.push(r);
    } else if (spec.depth === 4) {
      const r = new Uint8Array(Math.ceil(perRow / 2));
      for (let i = 0; i < perRow; i++) r[i >> 1]! |= (spec.samples[y * perRow + i]! & 15) << (i % 2 ? 0 : 4);
      rows.push(r);
    } else rows.push(Uint8Array.from({ length: perRow }, (_, i) => spec.samples[y * perRow + i]!));
  }
  return rows;
}

export function encodePng(spec: PngSpec): Uint8Array {
  const spp = SAMPLES[spec.colorType]!;
  const bpp = Math.max(1, (spp * spec.depth) / 8);
  const rows = packRows(spec);
  const filtered: number[] = [];
  rows.forEach((row, y) => {
    const ft = spec.filter ? spec.filter(y) : 0;
    filtered.push(ft);
    const prev = y > 0 ? rows[y - 1]! : new Uint8Array(row.length);
    for (let x = 0; x < row.length; x++) {
      const a = x >= bpp ? row[x - bpp]! : 0;
      const b = prev[x]!;
      const c = x >= bpp ? prev[x - bpp]! : 0;
      const pred = ft === 0 ? 0 : ft === 1 ? a : ft === 2 ? b : ft === 3 ? Math.floor((a + b) / 2) : paeth(a, b, c);
      filtered.push((row[x]! - pred) & 0xff);
    }
  });
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(spec.width, 0);
  ihdr.writeUInt32BE(spec.height, 4);
  ihdr[8] = spec.depth;
  ihdr[9] = spec.colorType;
  ihdr[12] = spec.interlace ?? 0;
  const z = deflateSync(Buffer.from(filtered));
  const parts: Buffer[] = [Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr)];
  if (spec.palette) parts.push(chunk('PLTE', Uint8Array.from(spec.palette)));
  if (spec.trns) parts.push(chunk('tRNS', Uint8Array.from(spec.trns)));
  parts.push(chunk('tEXt', Buffer.from('Comment\0written by the softbias tests', 'latin1')));
  const step = spec.idatChunk ?? z.length;
  for (let o = 0; o < z.length; o += step) parts.push(chunk('IDAT', z.subarray(o, o + step)));
  parts.push(chunk('IEND', new Uint8Array(0)));
  return new Uint8Array(Buffer.concat(parts));
}
