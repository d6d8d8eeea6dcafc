import { describe, it, expect } from 'vitest';
import { deflateSync } from 'node:zlib';
import { decodePng, toChannels, crc32 } from '@softbias/data';
import { Rng } from '@softbias/tensor-ops';
import { encodePng, chunk } from '../test/png-writer.js';

const SIG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function ihdr(w: number, h: number, depth: number, colorType: number, interlace = 0): Buffer {
  const b = Buffer.alloc(13);
  b.writeUInt32BE(w, 0);
  b.writeUInt32BE(h, 4);
  b[8] = depth;
  b[9] = colorType;
  b[12] = interlace;
  return b;
}

describe('PNG decoder', () => {
  it('decodes a hand-filtered image (Sub, Paeth, Average, Up rows worked out by hand)', async () => {
    // 3×4 grey. Filtered scanlines (filter byte first) and the pixels they decode to, computed by hand:
    //   Sub     [10, 10, 10]   → 10 20 30
    //   Paeth   [5, 250, 7]    → 15 (pred b=10), 14 (pred b=20: 270 mod 256), 27 (pred c=20)
    //   Average [100, 3, 255]  → 107 (⌊(0+15)/2⌋=7), 63 (⌊(107+14)/2⌋=60), 44 (⌊(63+27)/2⌋=45: 300 mod 256)
    //   Up      [1, 2, 3]      → 108 65 47
    const raw = Buffer.from([1, 10, 10, 10, 4, 5, 250, 7, 3, 100, 3, 255, 2, 1, 2, 3]);
    const png = Buffer.concat([Buffer.from(SIG), chunk('IHDR', ihdr(3, 4, 8, 0)), chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array())]);
    const img = await decodePng(png);
    expect([img.width, img.height, img.channels]).toEqual([3, 4, 1]);
    expect(Array.from(img.data)).toEqual([10, 20, 30, 15, 14, 27, 107, 63, 44, 108, 65, 47]);
  });

  it('CRC-32 matches the known IEND checksum', () => {
    expect(crc32(new TextEncoder().encode('IEND'))).toBe(0xae426082);
  });

  it('round-trips every colour type and every filter (8- and 16-bit, palette with tRNS, split IDAT)', async () => {
    const rng = new Rng(3);
    const W = 9;
    const H = 7;
    for (const colorType of [0, 2, 4, 6] as const) {
      for (const depth of [8, 16] as const) {
        const spp = { 0: 1, 2: 3, 4: 2, 6: 4 }[colorType];
        const max = depth === 8 ? 256 : 65536;
        const samples = Array.from({ length: W * H * spp }, () => rng.int(max));
        const png = encodePng({ width: W, height: H, colorType, depth, samples, filter: (y) => y % 5, idatChunk: 17 });
        const img = await decodePng(png);
        expect([img.width, img.height, img.channels]).toEqual([W, H, spp]);
        const want = depth === 8 ? samples : samples.map((v) => Math.round((v * 255) / 65535));
        expect(Array.from(img.data)).toEqual(want);
      }
    }
    const palette = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30];
    const idx = Array.from({ length: W * H }, () => rng.int(4));
    const pal = await decodePng(encodePng({ width: W, height: H, colorType: 3, depth: 8, samples: idx, palette, filter: (y) => (y * 3) % 5 }));
    expect(pal.channels).toBe(3);
    expect(Array.from(pal.data)).toEqual(idx.flatMap((i) => palette.slice(3 * i, 3 * i + 3)));
    const palA = await decodePng(encodePng({ width: W, height: H, colorType: 3, depth: 8, samples: idx, palette, trns: [0, 128] }));
    expect(palA.channels).toBe(4);
    expect(Array.from(palA.data)).toEqual(idx.flatMap((i) => [...palette.slice(3 * i, 3 * i + 3), [0, 128, 255, 255][i]!]));
  });

  it('converts channels: grey → RGB replicates, RGB → grey uses ITU-R 601-2 luma, alpha is dropped', () => {
    const rgba = { width: 2, height: 1, channels: 4, data: Uint8Array.from([200, 100, 50, 7, 0, 255, 0, 9]) };
    expect(Array.from(toChannels(rgba, 3))).toEqual([200, 100, 50, 0, 255, 0]);
    expect(Array.from(toChannels(rgba, 1))).toEqual([Math.round((200 * 299 + 100 * 587 + 50 * 114) / 1000), Math.round((255 * 587) / 1000)]);
    const ga = { width: 2, height: 1, channels: 2, data: Uint8Array.from([30, 1, 40, 2]) };
    expect(Array.from(toChannels(ga, 3))).toEqual([30, 30, 30, 40, 40, 40]);
    expect(Array.from(toChannels(ga, 1))).toEqual([30, 40]);
  });

  it('rejects unsupported or corrupt files with clear errors', async () => {
    const ok = encodePng({ width: 2, height: 2, colorType: 0, depth: 8, samples: [1, 2, 3, 4] });
    await expect(decodePng(new Uint8Array([1, 2, 3]), 'a.png')).rejects.toThrow(/a.png: not a PNG file/);
    const badCrc = ok.slice();
    badCrc[20] ^= 1; // inside IHDR
    await expect(decodePng(badCrc)).rejects.toThrow(/CRC mismatch in chunk IHDR/);
    await expect(decodePng(ok.slice(0, ok.length - 20))).rejects.toThrow(/truncated/);
    const inter = encodePng({ width: 2, height: 2, colorType: 0, depth: 8, samples: [1, 2, 3, 4], interlace: 1 });
    // Marked Adam7 but holding non-interlaced rows: Adam7 needs 7 bytes for 2×2 (passes 1, 6, 7).
    await expect(decodePng(inter)).rejects.toThrow(/image data holds 6 bytes, 2×2 needs 7/);
    const four = encodePng({ width: 3, height: 2, colorType: 0, depth: 4, samples: [1, 2, 3, 4, 15, 0] });
    expect(Array.from((await decodePng(four)).data)).toEqual([17, 34, 51, 68, 255, 0]); // 4-bit grey scaled to 0–255
    const badDepth = encodePng({ width: 2, height: 2, colorType: 2, depth: 4, samples: Array(12).fill(1) });
    await expect(decodePng(badDepth)).rejects.toThrow(/bit depth 4 is invalid for colour type 2 \(allowed: 8, 16\)/);
    const noPalette = encodePng({ width: 2, height: 1, colorType: 3, depth: 8, samples: [0, 1] });
    await expect(decodePng(noPalette)).rejects.toThrow(/palette image without a PLTE chunk/);
    const badIndex = encodePng({ width: 2, height: 1, colorType: 3, depth: 8, samples: [0, 5], palette: [1, 2, 3] });
    await expect(decodePng(badIndex)).rejects.toThrow(/palette index 5 beyond the 1-entry palette/);
    const badFilter = Buffer.concat([
      Buffer.from(SIG),
      chunk('IHDR', ihdr(1, 1, 8, 0)),
      chunk('IDAT', deflateSync(Buffer.from([7, 0]))),
      chunk('IEND', new Uint8Array()),
    ]);
    await expect(decodePng(badFilter)).rejects.toThrow(/PNG: corrupt PNG \(Unsupported filter: 7/);
    const shortData = Buffer.concat([
      Buffer.from(SIG),
      chunk('IHDR', ihdr(4, 4, 8, 0)),
      chunk('IDAT', deflateSync(Buffer.from([0, 1, 2]))),
      chunk('IEND', new Uint8Array()),
    ]);
    await expect(decodePng(shortData)).rejects.toThrow(/image data holds 3 bytes, 4×4 needs 20/);
    const badZlib = Buffer.concat([Buffer.from(SIG), chunk('IHDR', ihdr(1, 1, 8, 0)), chunk('IDAT', Buffer.from([1, 2, 3, 4])), chunk('IEND', new Uint8Array())]);
    await expect(decodePng(badZlib)).rejects.toThrow(/corrupt deflate data/);
  });
});
