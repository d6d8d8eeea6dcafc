/**
 * CRC-32 (ISO 3309 / zlib / PNG: polynomial 0xEDB88320, reflected, initial and final XOR 0xFFFFFFFF) in plain
 * JavaScript, so it runs the same in Node and in browsers (no `node:crypto`, no `zlib`). Slicing-by-8:
 * roughly 1 GB/s in V8.
 */

let tables: Uint32Array[] | undefined;

function makeTables(): Uint32Array[] {
  const t: Uint32Array[] = Array.from({ length: 8 }, () => new Uint32Array(256));
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[0]![n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[0]![n]!;
    for (let k = 1; k < 8; k++) {
      c = t[0]![c & 0xff]! ^ (c >>> 8);
      t[k]![n] = c >>> 0;
    }
  }
  return t;
}

/**
 * CRC-32 of `bytes`, continuing from `previous` (the CRC of the bytes before; 0 to start), so a stream can be
 * checksummed piece by piece: `crc32(b, crc32(a)) === crc32(a ++ b)`. Returns an unsigned 32-bit integer.
 */
export function crc32(bytes: Uint8Array, previous = 0): number {
  tables ??= makeTables();
  const [t0, t1, t2, t3, t4, t5, t6, t7] = tables as [Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array, Uint32Array];
  let c = (previous ^ 0xffffffff) >>> 0;
  const n = bytes.length;
  let i = 0;
  for (const end8 = n - (n % 8); i < end8; i += 8) {
    const a = c ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
    c =
      t7[a & 0xff]! ^
      t6[(a >>> 8) & 0xff]! ^
      t5[(a >>> 16) & 0xff]! ^
      t4[a >>> 24]! ^
      t3[bytes[i + 4]!]! ^
      t2[bytes[i + 5]!]! ^
      t1[bytes[i + 6]!]! ^
      t0[bytes[i + 7]!]!;
  }
  for (; i < n; i++) c = t0[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
