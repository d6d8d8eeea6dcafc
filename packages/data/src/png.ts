/**
 * A small PNG decoder: non-interlaced images of bit depth 8 (gray, gray+alpha, RGB, RGBA, palette) and 16
 * (rounded to 8 bits), with CRC checks. Anything else (interlaced, bit depths 1/2/4) gets a clear error.
 */
import { inflateZlib } from './bytes.js';

export interface DecodedImage {
  width: number;
  height: number;
  /** 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA). */
  channels: number;
  /** uint8, row-major HWC. */
  data: Uint8Array;
}

/** Images beyond this many pixels are refused before inflating (a 10000×10000 image is 1e8). */
export const MAX_PNG_PIXELS = 100_000_000;

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

let crcTable: Uint32Array | undefined;
/** CRC-32 (ISO 3309, as PNG uses). */
export function crc32(bytes: Uint8Array, start = 0, end = bytes.length): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = crcTable[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && SIGNATURE.every((b, i) => bytes[i] === b);
}

/** Decode PNG bytes. `what` names the file in errors. */
export async function decodePng(bytes: Uint8Array, what = 'PNG'): Promise<DecodedImage> {
  if (!isPng(bytes)) throw new Error(`${what}: not a PNG file (bad signature)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 8;
  let ihdr: { width: number; height: number; depth: number; colorType: number; interlace: number } | undefined;
  let palette: Uint8Array | undefined;
  let transparency: Uint8Array | undefined;
  const idat: Uint8Array[] = [];
  let sawEnd = false;
  while (pos < bytes.length) {
    if (pos + 12 > bytes.length) throw new Error(`${what}: truncated chunk header at byte ${pos}`);
    const len = view.getUint32(pos, false);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    if (pos + 12 + len > bytes.length) throw new Error(`${what}: chunk ${type} runs past the end of the file (truncated?)`);
    const body = bytes.subarray(pos + 8, pos + 8 + len);
    const crc = view.getUint32(pos + 8 + len, false);
    if (crc32(bytes, pos + 4, pos + 8 + len) !== crc) throw new Error(`${what}: CRC mismatch in chunk ${type} (corrupt file)`);
    pos += 12 + len;
    if (type === 'IHDR') {
      if (len !== 13) throw new Error(`${what}: IHDR has ${len} bytes, expected 13`);
      const bv = new DataView(body.buffer, body.byteOffset, 13);
      ihdr = {
        width: bv.getUint32(0, false),
        height: bv.getUint32(4, false),
        depth: body[8]!,
        colorType: body[9]!,
        interlace: body[12]!,
      };
      if (body[10] !== 0 || body[11] !== 0) throw new Error(`${what}: unknown compression or filter method`);
    } else if (type === 'PLTE') palette = body.slice();
    else if (type === 'tRNS') transparency = body.slice();
    else if (type === 'IDAT') idat.push(body);
    else if (type === 'IEND') {
      sawEnd = true;
      break;
    } else if ((type.charCodeAt(0) & 0x20) === 0) {
      throw new Error(`${what}: unknown critical chunk ${type}`);
    }
  }
  if (!ihdr) throw new Error(`${what}: no IHDR chunk`);
  if (!sawEnd) throw new Error(`${what}: no IEND chunk (truncated?)`);
  if (idat.length === 0) throw new Error(`${what}: no image data (IDAT)`);
  const { width, height, depth, colorType, interlace } = ihdr;
  if (width === 0 || height === 0) throw new Error(`${what}: empty image ${width}×${height}`);
  if (interlace !== 0) {
    throw new Error(`${what}: interlaced (Adam7) PNG is not supported; re-save it non-interlaced`);
  }
  const samplesPer: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
  const spp = samplesPer[colorType];
  if (spp === undefined) throw new Error(`${what}: invalid PNG colour type ${colorType}`);
  const depthOk = colorType === 3 ? depth === 8 : depth === 8 || depth === 16;
  if (!depthOk) {
    throw new Error(
      `${what}: bit depth ${depth} with colour type ${colorType} is not supported (supported: 8-bit gray/RGB/RGBA/` +
        'gray+alpha/palette and 16-bit gray/RGB/RGBA/gray+alpha)',
    );
  }
  if (colorType === 3 && !palette) throw new Error(`${what}: palette image without a PLTE chunk`);
  if (width * height > MAX_PNG_PIXELS) {
    throw new Error(`${what}: ${width}×${height} is ${width * height} pixels, beyond the ${MAX_PNG_PIXELS}-pixel limit`);
  }
  const total = idat.reduce((n, c) => n + c.length, 0);
  const compressed = new Uint8Array(total);
  let o = 0;
  for (const c of idat) {
    compressed.set(c, o);
    o += c.length;
  }
  const bpp = (spp * depth) / 8; // bytes per complete pixel (≥ 1 for the supported depths)
  const stride = width * bpp;
  // The filtered image is exactly height × (1 filter byte + stride): inflate no further than that, so a small
  // crafted file cannot inflate to gigabytes.
  const needed = height * (stride + 1);
  let raw: Uint8Array;
  try {
    raw = await inflateZlib(compressed, what, { maxOutputLength: needed });
  } catch (e) {
    if (/inflates beyond/.test((e as Error).message)) {
      throw new Error(`${what}: image data inflates to more than the ${needed} bytes a ${width}×${height} image of ${spp} sample(s) × ${depth} bits needs (corrupt or crafted file)`);
    }
    throw e;
  }
  if (raw.length < needed) {
    throw new Error(`${what}: image data holds ${raw.length} bytes, ${width}×${height} needs ${needed}`);
  }
  const pix = unfilter(raw, height, stride, bpp, what);
  // To 8-bit samples.
  let samples: Uint8Array;
  if (depth === 16) {
    samples = new Uint8Array(width * height * spp);
    for (let i = 0; i < samples.length; i++) {
      const v = (pix[2 * i]! << 8) | pix[2 * i + 1]!;
      samples[i] = Math.round((v * 255) / 65535);
    }
  } else samples = pix;
  if (colorType !== 3) {
    const channels = spp;
    return { width, height, channels, data: samples };
  }
  const entries = palette!.length / 3;
  const hasAlpha = transparency !== undefined && transparency.length > 0;
  const channels = hasAlpha ? 4 : 3;
  const out = new Uint8Array(width * height * channels);
  for (let i = 0; i < width * height; i++) {
    const p = samples[i]!;
    if (p >= entries) throw new Error(`${what}: palette index ${p} beyond the ${entries}-entry palette`);
    out[i * channels] = palette![3 * p]!;
    out[i * channels + 1] = palette![3 * p + 1]!;
    out[i * channels + 2] = palette![3 * p + 2]!;
    if (hasAlpha) out[i * channels + 3] = p < transparency!.length ? transparency![p]! : 255;
  }
  return { width, height, channels, data: out };
}

/** Undo PNG's per-scanline filters (None, Sub, Up, Average, Paeth). */
function unfilter(raw: Uint8Array, height: number, stride: number, bpp: number, what: string): Uint8Array {
  const out = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const ft = raw[y * (stride + 1)]!;
    const src = y * (stride + 1) + 1;
    const row = y * stride;
    const prev = row - stride; // only read when y > 0
    for (let x = 0; x < stride; x++) {
      const v = raw[src + x]!;
      const a = x >= bpp ? out[row + x - bpp]! : 0;
      const b = y > 0 ? out[prev + x]! : 0;
      let r: number;
      switch (ft) {
        case 0:
          r = v;
          break;
        case 1:
          r = v + a;
          break;
        case 2:
          r = v + b;
          break;
        case 3:
          r = v + ((a + b) >> 1);
          break;
        case 4: {
          const c = x >= bpp && y > 0 ? out[prev + x - bpp]! : 0;
          const p = a + b - c;
          const pa = Math.abs(p - a);
          const pb = Math.abs(p - b);
          const pc = Math.abs(p - c);
          r = v + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
          break;
        }
        default:
          throw new Error(`${what}: unknown filter type ${ft} on row ${y}`);
      }
      out[row + x] = r & 0xff;
    }
  }
  return out;
}

/**
 * Convert decoded pixels to 1 (gray) or 3 (RGB) channels. Alpha is dropped (the colour samples are kept as
 * stored); RGB → gray uses ITU-R 601-2 luma, L = (299 R + 587 G + 114 B) / 1000, rounded.
 */
export function toChannels(img: DecodedImage, channels: 1 | 3): Uint8Array {
  const n = img.width * img.height;
  const out = new Uint8Array(n * channels);
  const c = img.channels;
  for (let i = 0; i < n; i++) {
    const s = i * c;
    if (c <= 2) {
      const g = img.data[s]!;
      if (channels === 1) out[i] = g;
      else out.fill(g, 3 * i, 3 * i + 3);
    } else {
      const r = img.data[s]!;
      const g = img.data[s + 1]!;
      const b = img.data[s + 2]!;
      if (channels === 3) {
        out[3 * i] = r;
        out[3 * i + 1] = g;
        out[3 * i + 2] = b;
      } else out[i] = Math.round((r * 299 + g * 587 + b * 114) / 1000);
    }
  }
  return out;
}
