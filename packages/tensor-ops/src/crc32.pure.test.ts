import { describe, it, expect } from 'vitest';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { crc32 } from '@softbias/tensor-ops';

describe('crc32 (plain JavaScript, browser-safe)', () => {
  it('matches zlib on lengths 0…40 and 1 MB, and continues across pieces', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    const big = new Uint8Array(1 << 20);
    for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 13;
    for (let n = 0; n <= 40; n++) expect(crc32(big.subarray(3, 3 + n))).toBe(zlibCrc32(big.subarray(3, 3 + n)));
    expect(crc32(big)).toBe(zlibCrc32(big));
    expect(crc32(big.subarray(12345), crc32(big.subarray(0, 12345)))).toBe(crc32(big));
  });
});
