/**
 * Relative patch positions of a (rows × cols) patch grid, as GPSA's positional attention consumes them.
 *
 * Patch token n sits at (y = ⌊n / cols⌋, x = n mod cols) (row-major, what a conv patch embedding followed by
 * a flatten produces). For query q and key k: r[q, k] = [kx − qx, ky − qy, (kx − qx)² + (ky − qy)²].
 */
import { patchDistances } from '@softbias/attention';

function checkGrid(rows: number, cols: number): void {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1) {
    throw new Error(`relative indices: grid must be two positive integers [rows, cols], got [${rows}, ${cols}]`);
  }
}

/** [N·N·3] row-major (query, key, channel) with N = rows·cols: channel 0 = Δx, 1 = Δy, 2 = Δx² + Δy². */
export function relativeIndices(rows: number, cols: number): Float32Array {
  checkGrid(rows, cols);
  const n = rows * cols;
  const out = new Float32Array(n * n * 3);
  for (let q = 0; q < n; q++) {
    const qy = Math.floor(q / cols);
    const qx = q - qy * cols;
    for (let k = 0; k < n; k++) {
      const ky = Math.floor(k / cols);
      const kx = k - ky * cols;
      const dx = kx - qx;
      const dy = ky - qy;
      const o = (q * n + k) * 3;
      out[o] = dx;
      out[o + 1] = dy;
      out[o + 2] = dx * dx + dy * dy;
    }
  }
  return out;
}

/**
 * [N·N] Euclidean distance between the query's and the key's patch centres, in patches.
 * @deprecated Use @softbias/attention's `patchDistances([rows, cols])` (the same matrix); this alias goes in the
 * next minor release.
 */
export function relativeDistances(rows: number, cols: number): Float32Array {
  checkGrid(rows, cols);
  return patchDistances([rows, cols]);
}
