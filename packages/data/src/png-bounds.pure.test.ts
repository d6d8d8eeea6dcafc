/** The PNG decoder inflates no more than the header's image needs: a small crafted file cannot inflate to gigabytes. */
import { describe, it, expect } from 'vitest';
import { deflateSync } from 'node:zlib';
import { crc32, decodePng, MAX_PNG_PIXELS } from '@softbias/data';
import { inflateZlib } from './bytes.js';

function chunk(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, body.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(body, 8);
  v.setUint32(8 + body.length, crc32(out, 4, 8 + body.length));
  return out;
}

/** A gray 8-bit PNG of width × height whose IDAT holds `raw` (filter bytes included). */
function png(width: number, height: number, raw: Uint8Array): Uint8Array {
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // gray
  const parts = [new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0))];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

describe('PNG: inflated size bounded by the header', () => {
  it('a 2×2 image whose data inflates to 32 MB is refused (the file is ~32 KB)', async () => {
    const bomb = png(2, 2, new Uint8Array(32 << 20));
    expect(bomb.length).toBeLessThan(100_000);
    await expect(decodePng(bomb, 'bomb.png')).rejects.toThrow(/bomb\.png: image data inflates to more than the 6 bytes a 2×2 image/);
  });

  it('exactly the needed data decodes; too little is still an error', async () => {
    const raw = new Uint8Array([0, 10, 20, 0, 30, 40]);
    const img = await decodePng(png(2, 2, raw), 'ok.png');
    expect(Array.from(img.data)).toEqual([10, 20, 30, 40]);
    await expect(decodePng(png(2, 2, raw.subarray(0, 5)), 'short.png')).rejects.toThrow(/holds 5 bytes, 2×2 needs 6/);
  });

  it('a header claiming more than the pixel limit is refused before inflating', async () => {
    await expect(decodePng(png(100_000, 100_000, new Uint8Array(1)), 'huge.png')).rejects.toThrow(new RegExp(`beyond the ${MAX_PNG_PIXELS}-pixel limit`));
  });

  it('inflateZlib stops at maxOutputLength', async () => {
    const z = deflateSync(new Uint8Array(1 << 20));
    await expect(inflateZlib(z, 'z', { maxOutputLength: 1000 })).rejects.toThrow(/z: deflate data inflates beyond 1000 bytes/);
    expect((await inflateZlib(z, 'z', { maxOutputLength: 1 << 20 })).length).toBe(1 << 20);
  });
});
