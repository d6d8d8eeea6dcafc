/**
 * Image decoding for @softbias/data: PNG through `fast-png`, JPEG through `jpeg-js`, with a size bound around
 * both. The header is read first (PNG's IHDR, JPEG's SOF marker) and an image whose decoded size,
 * width × height × channels, passes the limits is refused before anything is inflated or allocated; a PNG's
 * zlib stream is also checked to inflate to no more than the header's image needs (a few KB of crafted data
 * can otherwise inflate to gigabytes), and jpeg-js runs with its own resolution and memory limits set to ours.
 *
 * Output: 8-bit samples, row-major HWC, with the file's channels (1 gray, 2 gray + alpha, 3 RGB, 4 RGBA;
 * palettes are expanded to RGB/RGBA; 16-bit samples are rounded to 8 bits; 1/2/4-bit gray is scaled to 0–255;
 * JPEG gives RGB).
 */
import { decode as fastPngDecode } from 'fast-png';
import jpeg from 'jpeg-js';
import { inflateZlib } from './bytes.js';

export interface DecodedImage {
  width: number;
  height: number;
  /** 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA). */
  channels: number;
  /** uint8, row-major HWC. */
  data: Uint8Array;
}

/** What an image file's header says, read without decoding. */
export interface ImageHeader {
  format: 'png' | 'jpeg';
  width: number;
  height: number;
  /** Channels of the decoded image (a palette PNG: 3, or 4 with transparency; JPEG: 3). */
  channels: number;
  /** Bits per sample in the file. */
  depth: number;
}

export interface ImageLimits {
  /** Refuse images with more pixels than this. Default {@link MAX_IMAGE_PIXELS}. */
  maxPixels?: number;
  /** Refuse images whose decoded size, width × height × channels bytes, passes this. Default {@link MAX_DECODED_BYTES}. */
  maxBytes?: number;
}

/** Images beyond this many pixels are refused before decoding (a 10000×10000 image is 1e8). */
export const MAX_IMAGE_PIXELS = 100_000_000;
/** @deprecated the same limit under its first name; use {@link MAX_IMAGE_PIXELS}. */
export const MAX_PNG_PIXELS = MAX_IMAGE_PIXELS;
/** Decoded images beyond this many bytes (width × height × channels) are refused before decoding: 512 MiB. */
export const MAX_DECODED_BYTES = 512 * 1024 * 1024;

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

export function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

const PNG_SAMPLES: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const PNG_DEPTHS: Record<number, readonly number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };

interface PngScan {
  header: ImageHeader;
  colorType: number;
  interlace: number;
  hasTransparency: boolean;
  idat: Uint8Array[];
}

/** Walk a PNG's chunks: CRCs, truncation, IHDR, IDAT (no inflating). */
function scanPng(bytes: Uint8Array, what: string): PngScan {
  if (!isPng(bytes)) throw new Error(`${what}: not a PNG file (bad signature)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 8;
  let ihdr: { width: number; height: number; depth: number; colorType: number; interlace: number } | undefined;
  let hasPalette = false;
  let hasTransparency = false;
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
      ihdr = { width: bv.getUint32(0, false), height: bv.getUint32(4, false), depth: body[8]!, colorType: body[9]!, interlace: body[12]! };
      if (body[10] !== 0 || body[11] !== 0) throw new Error(`${what}: unknown compression or filter method`);
      if (ihdr.interlace > 1) throw new Error(`${what}: unknown interlace method ${ihdr.interlace}`);
    } else if (!ihdr) throw new Error(`${what}: the first chunk is ${type}, not IHDR`);
    else if (type === 'PLTE') hasPalette = true;
    else if (type === 'tRNS') hasTransparency = true;
    else if (type === 'IDAT') idat.push(body);
    else if (type === 'IEND') {
      sawEnd = true;
      break;
    }
  }
  if (!ihdr) throw new Error(`${what}: no IHDR chunk`);
  if (!sawEnd) throw new Error(`${what}: no IEND chunk (truncated?)`);
  if (idat.length === 0) throw new Error(`${what}: no image data (IDAT)`);
  const { width, height, depth, colorType, interlace } = ihdr;
  const spp = PNG_SAMPLES[colorType];
  if (spp === undefined) throw new Error(`${what}: invalid PNG colour type ${colorType}`);
  if (!PNG_DEPTHS[colorType]!.includes(depth)) {
    throw new Error(`${what}: bit depth ${depth} is invalid for colour type ${colorType} (allowed: ${PNG_DEPTHS[colorType]!.join(', ')})`);
  }
  if (colorType === 3 && !hasPalette) throw new Error(`${what}: palette image without a PLTE chunk`);
  const channels = colorType === 3 ? (hasTransparency ? 4 : 3) : spp;
  return { header: { format: 'png', width, height, channels, depth }, colorType, interlace, hasTransparency, idat };
}

const SOF_MARKERS = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);

function jpegHeader(bytes: Uint8Array, what: string): ImageHeader {
  if (!isJpeg(bytes)) throw new Error(`${what}: not a JPEG file (bad signature)`);
  let pos = 2;
  while (pos + 4 <= bytes.length) {
    if (bytes[pos] !== 0xff) throw new Error(`${what}: corrupt JPEG (no marker at byte ${pos})`);
    const marker = bytes[pos + 1]!;
    if (marker === 0xff) {
      pos++;
      continue;
    }
    if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
      pos += 2;
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) break;
    const len = (bytes[pos + 2]! << 8) | bytes[pos + 3]!;
    if (SOF_MARKERS.has(marker)) {
      if (pos + 10 > bytes.length) break;
      const depth = bytes[pos + 4]!;
      const height = (bytes[pos + 5]! << 8) | bytes[pos + 6]!;
      const width = (bytes[pos + 7]! << 8) | bytes[pos + 8]!;
      if (marker !== 0xc0 && marker !== 0xc1 && marker !== 0xc2) {
        throw new Error(`${what}: JPEG coding (marker 0x${marker.toString(16)}: lossless or arithmetic) is not supported; re-save it as baseline or progressive JPEG`);
      }
      return { format: 'jpeg', width, height, channels: 3, depth };
    }
    pos += 2 + len;
  }
  throw new Error(`${what}: JPEG without a frame header (SOF) before the image data (truncated or corrupt)`);
}

/** Read an image's header (PNG or JPEG) without decoding it. */
export function readImageHeader(bytes: Uint8Array, what = 'image'): ImageHeader {
  if (isPng(bytes)) return scanPng(bytes, what).header;
  if (isJpeg(bytes)) return jpegHeader(bytes, what);
  throw new Error(`${what}: neither PNG nor JPEG (unknown signature)`);
}

/** Throws when the header's decoded size passes the limits. */
export function checkDecodedSize(h: ImageHeader, what: string, limits: ImageLimits = {}): void {
  const maxPixels = limits.maxPixels ?? MAX_IMAGE_PIXELS;
  const maxBytes = limits.maxBytes ?? MAX_DECODED_BYTES;
  if (h.width === 0 || h.height === 0) throw new Error(`${what}: empty image ${h.width}×${h.height}`);
  const pixels = h.width * h.height;
  if (pixels > maxPixels) throw new Error(`${what}: ${h.width}×${h.height} is ${pixels} pixels, beyond the ${maxPixels}-pixel limit (maxPixels)`);
  const bytes = pixels * h.channels;
  if (bytes > maxBytes) {
    throw new Error(`${what}: ${h.width}×${h.height}×${h.channels} decodes to ${bytes} bytes, beyond the ${maxBytes}-byte limit (maxBytes)`);
  }
}

/** Bytes of a PNG's filtered image data (a filter byte per row, per Adam7 pass when interlaced). */
function pngFilteredBytes(width: number, height: number, bitsPerPixel: number, interlace: number): number {
  const rows = (w: number, h: number) => (w === 0 || h === 0 ? 0 : h * (1 + Math.ceil((w * bitsPerPixel) / 8)));
  if (interlace === 0) return rows(width, height);
  const passes = [
    [0, 0, 8, 8],
    [4, 0, 8, 8],
    [0, 4, 4, 8],
    [2, 0, 4, 4],
    [0, 2, 2, 4],
    [1, 0, 2, 2],
    [0, 1, 1, 2],
  ] as const;
  let n = 0;
  for (const [x0, y0, dx, dy] of passes) n += rows(Math.ceil((width - x0) / dx), Math.ceil((height - y0) / dy));
  return n;
}

/** Unpack 1/2/4/8-bit single samples per pixel, row by row (rows padded to whole bytes). */
function unpackSamples(data: ArrayLike<number>, width: number, height: number, depth: number): Uint8Array {
  if (depth === 8) return data instanceof Uint8Array ? data : Uint8Array.from(data);
  const out = new Uint8Array(width * height);
  const rowBytes = Math.ceil((width * depth) / 8);
  const mask = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bit = x * depth;
      const byte = data[y * rowBytes + (bit >> 3)]!;
      out[y * width + x] = (byte >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}

/** Decode PNG bytes (fast-png) within the size limits. `what` names the file in errors. */
export async function decodePng(bytes: Uint8Array, what = 'PNG', limits: ImageLimits = {}): Promise<DecodedImage> {
  const scan = scanPng(bytes, what);
  const { width, height, depth } = scan.header;
  checkDecodedSize(scan.header, what, limits);
  const spp = PNG_SAMPLES[scan.colorType]!;
  // The filtered image has an exact size: check that the zlib stream inflates to no more than that, so a small
  // crafted file cannot inflate to gigabytes inside the decoder (which inflates without a bound).
  const needed = pngFilteredBytes(width, height, spp * depth, scan.interlace);
  const compressed = new Uint8Array(scan.idat.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of scan.idat) {
    compressed.set(c, o);
    o += c.length;
  }
  let raw: Uint8Array;
  try {
    raw = await inflateZlib(compressed, what, { maxOutputLength: needed });
  } catch (e) {
    if (/inflates beyond/.test((e as Error).message)) {
      throw new Error(`${what}: image data inflates to more than the ${needed} bytes a ${width}×${height} image of ${spp} sample(s) × ${depth} bits needs (corrupt or crafted file)`);
    }
    throw e;
  }
  if (raw.length < needed) throw new Error(`${what}: image data holds ${raw.length} bytes, ${width}×${height} needs ${needed}`);
  let png: ReturnType<typeof fastPngDecode>;
  try {
    png = fastPngDecode(bytes);
  } catch (e) {
    throw new Error(`${what}: corrupt PNG (${(e as Error).message})`, { cause: e });
  }
  const n = width * height;
  if (scan.colorType === 3) {
    const palette = png.palette!;
    const idx = unpackSamples(png.data, width, height, depth);
    const channels = scan.header.channels;
    const trns = png.transparency;
    const out = new Uint8Array(n * channels);
    for (let i = 0; i < n; i++) {
      const p = idx[i]!;
      const entry = palette[p];
      if (!entry) throw new Error(`${what}: palette index ${p} beyond the ${palette.length}-entry palette`);
      out[i * channels] = entry[0]!;
      out[i * channels + 1] = entry[1]!;
      out[i * channels + 2] = entry[2]!;
      if (channels === 4) out[i * channels + 3] = entry.length > 3 ? entry[3]! : trns && p < trns.length ? trns[p]! : 255;
    }
    return { width, height, channels, data: out };
  }
  let data: Uint8Array;
  if (depth === 16) {
    const src = png.data;
    data = new Uint8Array(n * spp);
    for (let i = 0; i < data.length; i++) data[i] = Math.round((src[i]! * 255) / 65535);
  } else if (depth < 8) {
    data = unpackSamples(png.data, width, height, depth);
    const scale = 255 / ((1 << depth) - 1);
    for (let i = 0; i < data.length; i++) data[i] = Math.round(data[i]! * scale);
  } else {
    const src = png.data;
    data = src instanceof Uint8Array ? src : Uint8Array.from(src);
  }
  return { width, height, channels: spp, data };
}

/** Decode baseline or progressive JPEG bytes (jpeg-js) to RGB within the size limits. */
export async function decodeJpeg(bytes: Uint8Array, what = 'JPEG', limits: ImageLimits = {}): Promise<DecodedImage> {
  const header = jpegHeader(bytes, what);
  checkDecodedSize(header, what, limits);
  const maxBytes = limits.maxBytes ?? MAX_DECODED_BYTES;
  let img: { width: number; height: number; data: Uint8Array };
  try {
    img = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      tolerantDecoding: false,
      maxResolutionInMP: (limits.maxPixels ?? MAX_IMAGE_PIXELS) / 1e6,
      // jpeg-js counts its working buffers too (component planes, coefficient blocks): allow a few times the output.
      maxMemoryUsageInMB: Math.max(16, Math.ceil((4 * maxBytes) / (1024 * 1024))),
    });
  } catch (e) {
    throw new Error(`${what}: cannot decode JPEG (${(e as Error).message})`, { cause: e });
  }
  if (img.width !== header.width || img.height !== header.height || img.data.length !== img.width * img.height * 3) {
    throw new Error(`${what}: JPEG decoded to ${img.width}×${img.height} (${img.data.length} bytes), its header says ${header.width}×${header.height}`);
  }
  return { width: img.width, height: img.height, channels: 3, data: img.data };
}

/** Decode a PNG or JPEG (by its signature) within the size limits. */
export async function decodeImage(bytes: Uint8Array, what = 'image', limits: ImageLimits = {}): Promise<DecodedImage> {
  if (isPng(bytes)) return decodePng(bytes, what, limits);
  if (isJpeg(bytes)) return decodeJpeg(bytes, what, limits);
  throw new Error(`${what}: neither PNG nor JPEG (unknown signature); pass a { decode } function for other formats`);
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
