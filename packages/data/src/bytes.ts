/**
 * Byte sources and decompression. Node uses `node:zlib`; a browser uses `DecompressionStream`. Files are
 * read with `node:fs` in Node and with `fetch` elsewhere (URLs).
 */

import { fetchBytes } from '@softbias/tensor-ops';

const isNodeRuntime =
  typeof process !== 'undefined' && typeof process.versions === 'object' && typeof process.versions.node === 'string';

/** Where a data file comes from: bytes, a Node file path, or a URL. */
export type ByteSource = Uint8Array | ArrayBuffer | string | URL;

const dynamicImport = (name: string): Promise<any> => import(/* @vite-ignore */ /* webpackIgnore: true */ name);

/** True for gzip data (magic 1f 8b). */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Thrown (inside `decompress`) when the output would pass `maxOutputLength`. */
class TooLarge extends Error {}

async function decompress(bytes: Uint8Array, format: 'gzip' | 'deflate', what: string, maxOutputLength?: number): Promise<Uint8Array> {
  const tooLarge = () => new Error(`${what}: ${format} data inflates beyond ${maxOutputLength} bytes, more than it may hold`);
  if (isNodeRuntime) {
    const zlib = await dynamicImport('node:zlib');
    try {
      const opts = maxOutputLength !== undefined ? { maxOutputLength: Math.max(1, maxOutputLength) } : {};
      const out: Uint8Array = format === 'gzip' ? zlib.gunzipSync(bytes, opts) : zlib.inflateSync(bytes, opts);
      return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    } catch (e) {
      if (maxOutputLength !== undefined && ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError)) throw tooLarge();
      throw new Error(`${what}: corrupt ${format} data (${(e as Error).message})`);
    }
  }
  if (typeof DecompressionStream === 'undefined') {
    throw new Error(`${what}: this runtime has neither node:zlib nor DecompressionStream to inflate ${format} data`);
  }
  try {
    const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new DecompressionStream(format));
    if (maxOutputLength === undefined) return new Uint8Array(await new Response(stream).arrayBuffer());
    // Read chunk by chunk and stop as soon as the bound is passed (never holds more than the bound + a chunk).
    const reader = stream.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxOutputLength) {
        await reader.cancel().catch(() => {});
        throw new TooLarge();
      }
      chunks.push(value);
    }
    const out = new Uint8Array(total);
    let o = 0;
    for (const c of chunks) {
      out.set(c, o);
      o += c.byteLength;
    }
    return out;
  } catch (e) {
    if (e instanceof TooLarge) throw tooLarge();
    throw new Error(`${what}: corrupt ${format} data (${(e as Error).message})`);
  }
}

/** Gunzip when the bytes start with the gzip magic; otherwise return them unchanged. */
export async function maybeGunzip(bytes: Uint8Array, what = 'data'): Promise<Uint8Array> {
  return isGzip(bytes) ? decompress(bytes, 'gzip', what) : bytes;
}

/**
 * Inflate a zlib stream (RFC 1950), as PNG's IDAT data. With `maxOutputLength`, fail as soon as the output
 * would pass it (a few KB of crafted data can otherwise inflate to gigabytes).
 */
export function inflateZlib(bytes: Uint8Array, what = 'data', opts: { maxOutputLength?: number } = {}): Promise<Uint8Array> {
  return decompress(bytes, 'deflate', what, opts.maxOutputLength);
}

/** Read a byte source into memory (a URL through tensor-ops' fetchBytes: `signal`, `timeoutMs`). */
export async function readSource(source: ByteSource, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<Uint8Array> {
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  const str = source instanceof URL ? source.href : String(source);
  const isUrl = /^(https?|file|blob|data):/i.test(str);
  if (isNodeRuntime && (!isUrl || str.startsWith('file:'))) {
    const fs = await dynamicImport('node:fs/promises');
    const path = str.startsWith('file:') ? new URL(str) : str;
    try {
      const buf: Uint8Array = await fs.readFile(path);
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch (e) {
      throw new Error(`cannot read ${str}: ${(e as Error).message}`);
    }
  }
  // Timeout, signal and the content-length check; errors are FetchErrors naming the URL.
  return fetchBytes(str, opts);
}

/** Node only: whether a path exists. Always false in a browser. */
export async function pathExists(path: string): Promise<boolean> {
  if (!isNodeRuntime) return false;
  const fs = await dynamicImport('node:fs/promises');
  try {
    await fs.access(path);
    return true;
  } catch {
    return false;
  }
}

export { isNodeRuntime, dynamicImport };
