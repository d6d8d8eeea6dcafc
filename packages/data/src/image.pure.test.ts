/** Image decoding (fast-png, jpeg-js) with the decoded-size bound from the header. */
import { describe, it, expect } from 'vitest';
import jpeg from 'jpeg-js';
import { checkDecodedSize, decodeImage, decodeJpeg, decodePng, readImageHeader, MAX_DECODED_BYTES } from '@softbias/data';
import { encodePng } from '../test/png-writer.js';

function rgbaSquare(w: number, h: number): Uint8Array {
  const d = new Uint8Array(w * h * 4);
  for (let i = 0; i < w * h; i++) d.set([(i * 7) % 256, 128, 255 - ((i * 3) % 256), 255], i * 4);
  return d;
}

/** Patch the SOF0 frame size of a JPEG (the decoder would have to allocate width × height × 3). */
function withFrameSize(bytes: Uint8Array, width: number, height: number): Uint8Array {
  const out = bytes.slice();
  for (let i = 2; i < out.length - 9; i++) {
    if (out[i] === 0xff && out[i + 1] === 0xc0) {
      out[i + 5] = height >> 8;
      out[i + 6] = height & 255;
      out[i + 7] = width >> 8;
      out[i + 8] = width & 255;
      return out;
    }
  }
  throw new Error('no SOF0');
}

describe('image decoding', () => {
  it('JPEG decodes to RGB (close to what was encoded); headers are read without decoding', async () => {
    const jpg = new Uint8Array(jpeg.encode({ width: 16, height: 8, data: rgbaSquare(16, 8) }, 100).data);
    expect(readImageHeader(jpg, 'a.jpg')).toEqual({ format: 'jpeg', width: 16, height: 8, channels: 3, depth: 8 });
    const img = await decodeImage(jpg, 'a.jpg');
    expect([img.width, img.height, img.channels, img.data.length]).toEqual([16, 8, 3, 16 * 8 * 3]);
    let worst = 0;
    const src = rgbaSquare(16, 8);
    for (let i = 0; i < 128; i++) for (let c = 0; c < 3; c++) worst = Math.max(worst, Math.abs(img.data[i * 3 + c]! - src[i * 4 + c]!));
    expect(worst).toBeLessThan(24);
    const png = encodePng({ width: 3, height: 2, colorType: 2, depth: 8, samples: Array.from({ length: 18 }, (_, i) => i * 10) });
    expect(readImageHeader(png)).toEqual({ format: 'png', width: 3, height: 2, channels: 3, depth: 8 });
    expect(Array.from((await decodeImage(png)).data)).toEqual(Array.from({ length: 18 }, (_, i) => i * 10));
    await expect(decodeImage(new Uint8Array([0x42, 0x4d, 0, 0]), 'x.bmp')).rejects.toThrow(/x\.bmp: neither PNG nor JPEG/);
  });

  it('a JPEG whose header claims 65535×65535 is refused before decoding, naming the limit', async () => {
    const jpg = new Uint8Array(jpeg.encode({ width: 8, height: 8, data: rgbaSquare(8, 8) }, 90).data);
    const big = withFrameSize(jpg, 65535, 65535);
    expect(big.length).toBeLessThan(2000);
    await expect(decodeJpeg(big, 'big.jpg')).rejects.toThrow(/big\.jpg: 65535×65535 is 4294836225 pixels, beyond the 100000000-pixel limit/);
    // Within the pixel limit but beyond a byte cap: refused from the header (width × height × channels).
    await expect(decodeJpeg(withFrameSize(jpg, 2000, 2000), 'mid.jpg', { maxBytes: 1_000_000 })).rejects.toThrow(
      /mid\.jpg: 2000×2000×3 decodes to 12000000 bytes, beyond the 1000000-byte limit \(maxBytes\)/,
    );
    // A lying frame size that passes the header check fails inside the decoder with a wrapped error, not a crash.
    await expect(decodeJpeg(withFrameSize(jpg, 16, 16), 'lie.jpg')).rejects.toThrow(/lie\.jpg: /);
    await expect(decodeJpeg(jpg.subarray(0, 10), 'cut.jpg')).rejects.toThrow(/cut\.jpg: JPEG without a frame header/);
  });

  it('PNG: width × height × channels from IHDR is bounded before inflating', async () => {
    const png = encodePng({ width: 100, height: 100, colorType: 6, depth: 8, samples: new Array(40000).fill(7) });
    await expect(decodePng(png, 'p.png', { maxBytes: 39_999 })).rejects.toThrow(/p\.png: 100×100×4 decodes to 40000 bytes, beyond the 39999-byte limit/);
    expect((await decodePng(png, 'p.png', { maxBytes: 40_000 })).data.length).toBe(40000);
    expect(() => checkDecodedSize({ format: 'png', width: 0, height: 5, channels: 1, depth: 8 }, 'z.png')).toThrow(/z\.png: empty image 0×5/);
    expect(MAX_DECODED_BYTES).toBe(512 * 1024 * 1024);
  });
});
