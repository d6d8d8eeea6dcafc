/**
 * Host-side index of the visible sites of a `[B, H, W]` grid: the row form keeps the visible sites as
 * `[V, C]` rows, image by image, each image's sites in row-major (y, x) order.
 */
import { upsampleMaskData } from './mask.js';

export class SiteIndex {
  /** Number of visible sites (rows). */
  readonly numRows: number;
  /** Flat site `(b·H + y)·W + x` of every row. */
  readonly siteOfRow: Int32Array;
  /** Row of every site, −1 where the site is masked. */
  readonly rowOfSite: Int32Array;
  /** First row of image b (length B + 1; image b owns rows `[rowStart[b], rowStart[b + 1])`). */
  readonly rowStart: Int32Array;
  private readonly cache = new Map<string, Int32Array>();
  private readonly childCache = new WeakMap<SiteIndex, Int32Array>();

  private constructor(
    readonly batch: number,
    readonly height: number,
    readonly width: number,
    visible: Uint8Array,
  ) {
    const n = batch * height * width;
    this.rowOfSite = new Int32Array(n).fill(-1);
    this.rowStart = new Int32Array(batch + 1);
    let v = 0;
    for (let s = 0; s < n; s++) if (visible[s]) v++;
    this.siteOfRow = new Int32Array(v);
    v = 0;
    for (let b = 0; b < batch; b++) {
      this.rowStart[b] = v;
      for (let s = b * height * width; s < (b + 1) * height * width; s++) {
        if (!visible[s]) continue;
        this.rowOfSite[s] = v;
        this.siteOfRow[v++] = s;
      }
    }
    this.rowStart[batch] = v;
    this.numRows = v;
  }

  /** From a site mask (`[B, H, W]` flattened, 1 = removed, 0 = visible). */
  static fromMask(mask: ArrayLike<number>, batch: number, height: number, width: number): SiteIndex {
    if (mask.length !== batch * height * width) {
      throw new Error(`SiteIndex: expected a [${batch}, ${height}, ${width}] mask, got ${mask.length} values`);
    }
    const visible = new Uint8Array(mask.length);
    for (let i = 0; i < mask.length; i++) {
      const m = mask[i]!;
      if (m !== 0 && m !== 1) throw new Error(`SiteIndex: mask values must be 0 (visible) or 1 (removed), got ${m}`);
      visible[i] = m === 0 ? 1 : 0;
    }
    return new SiteIndex(batch, height, width, visible);
  }

  /** From a patch mask `[B, gh·gw]` upsampled by `scale` (the reference's `upsample_mask`). */
  static fromPatchMask(mask: ArrayLike<number>, batch: number, grid: readonly [number, number], scale: number): SiteIndex {
    return SiteIndex.fromMask(upsampleMaskData(mask, batch, grid, scale), batch, grid[0] * scale, grid[1] * scale);
  }

  /** Visible rows of image b. */
  rowsOf(b: number): number {
    return this.rowStart[b + 1]! - this.rowStart[b]!;
  }

  /** True when every image has the same number of visible rows (random masks always do). */
  get uniformRows(): boolean {
    const n = this.rowsOf(0);
    for (let b = 1; b < this.batch; b++) if (this.rowsOf(b) !== n) return false;
    return true;
  }

  /** The site mask `[B·H·W]`, 1 = removed. */
  maskData(): Float32Array {
    const out = new Float32Array(this.rowOfSite.length);
    for (let s = 0; s < out.length; s++) out[s] = this.rowOfSite[s]! < 0 ? 1 : 0;
    return out;
  }

  /**
   * The grid after a k×k stride-k step (sizes floored): a coarse cell is visible iff all its k² children are
   * (always the case for patch masks aligned with the stride, where a cell's children share one value).
   */
  coarsen(k = 2): SiteIndex {
    const H = Math.floor(this.height / k);
    const W = Math.floor(this.width / k);
    if (H < 1 || W < 1) throw new Error(`SiteIndex.coarsen: a ${this.height}×${this.width} grid is smaller than ${k}×${k}`);
    const vis = new Uint8Array(this.batch * H * W);
    for (let b = 0; b < this.batch; b++) {
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          let all = 1;
          for (let dy = 0; dy < k && all; dy++) {
            for (let dx = 0; dx < k; dx++) {
              if (this.rowOfSite[(b * this.height + y * k + dy) * this.width + x * k + dx]! < 0) {
                all = 0;
                break;
              }
            }
          }
          vis[(b * H + y) * W + x] = all;
        }
      }
    }
    return new SiteIndex(this.batch, H, W, vis);
  }

  /**
   * For each row of `coarse` (this grid coarsened by k), the rows of its k² children in window order
   * (dy, dx), i.e. HWIO order: `[Vc·k²]`.
   */
  childRows(coarse: SiteIndex, k = 2): Int32Array {
    let cached = this.childCache.get(coarse);
    if (cached) return cached;
    if (Math.floor(this.height / k) !== coarse.height || Math.floor(this.width / k) !== coarse.width || coarse.batch !== this.batch) {
      throw new Error(`SiteIndex.childRows: [${coarse.batch}, ${coarse.height}, ${coarse.width}] is not this grid coarsened by ${k}`);
    }
    {
      const out = new Int32Array(coarse.numRows * k * k);
      for (let r = 0; r < coarse.numRows; r++) {
        const s = coarse.siteOfRow[r]!;
        const b = Math.floor(s / (coarse.height * coarse.width));
        const rem = s - b * coarse.height * coarse.width;
        const y = Math.floor(rem / coarse.width);
        const x = rem - y * coarse.width;
        for (let dy = 0; dy < k; dy++) {
          for (let dx = 0; dx < k; dx++) {
            const row = this.rowOfSite[(b * this.height + y * k + dy) * this.width + x * k + dx]!;
            if (row < 0) throw new Error('SiteIndex.childRows: a visible coarse cell has a masked child');
            out[r * k * k + dy * k + dx] = row;
          }
        }
      }
      cached = out;
    }
    this.childCache.set(coarse, cached);
    return cached;
  }

  /**
   * Neighbourhood table of a k×k window (k odd, centred, zero padding): `[V, k²]` row-major with entry
   * `(v, ky·k + kx)` = the row at offset (ky − k/2, kx − k/2) from row v, or `numRows` (the zero row) where
   * that site is masked or outside the grid.
   */
  neighbours(k: number): Int32Array {
    return this.memo(`nbr:${k}`, () => {
      if (k % 2 !== 1) throw new Error(`SiteIndex.neighbours: kernel size must be odd, got ${k}`);
      const r = (k - 1) / 2;
      const V = this.numRows;
      const out = new Int32Array(V * k * k);
      const H = this.height;
      const W = this.width;
      for (let v = 0; v < V; v++) {
        const s = this.siteOfRow[v]!;
        const b = Math.floor(s / (H * W));
        const rem = s - b * H * W;
        const y = Math.floor(rem / W);
        const x = rem - y * W;
        for (let ky = 0; ky < k; ky++) {
          const yy = y + ky - r;
          for (let kx = 0; kx < k; kx++) {
            const xx = x + kx - r;
            let row = V;
            if (yy >= 0 && yy < H && xx >= 0 && xx < W) {
              const q = this.rowOfSite[(b * H + yy) * W + xx]!;
              if (q >= 0) row = q;
            }
            out[v * k * k + ky * k + kx] = row;
          }
        }
      }
      return out;
    });
  }

  /** The neighbourhood table transposed to `[k², V]` (offset-major). */
  neighboursByOffset(k: number): Int32Array {
    return this.memo(`nbrT:${k}`, () => {
      const n = this.neighbours(k);
      const V = this.numRows;
      const kk = k * k;
      const out = new Int32Array(V * kk);
      for (let v = 0; v < V; v++) for (let j = 0; j < kk; j++) out[j * V + v] = n[v * kk + j]!;
      return out;
    });
  }

  /** Number of (row, offset) pairs of a k×k window that land on a visible row (the MACs a sum over visible neighbours only would need, per channel). */
  visibleNeighbourPairs(k: number): number {
    const n = this.neighbours(k);
    let c = 0;
    for (let i = 0; i < n.length; i++) if (n[i]! !== this.numRows) c++;
    return c;
  }

  private memo(key: string, make: () => Int32Array): Int32Array {
    let v = this.cache.get(key);
    if (!v) {
      v = make();
      this.cache.set(key, v);
    }
    return v;
  }
}
