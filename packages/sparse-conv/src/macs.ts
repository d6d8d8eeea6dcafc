/**
 * An explicit multiply-add counter: every op of the dense-masked and sparse encoders reports what it computes.
 *
 * Conventions (per op, from the shapes actually computed):
 * - linear / 1×1 conv / non-overlapping k×k conv: `rows × fanIn × out`;
 * - depth-wise k×k conv: `outputSites × k² × C` (zero-padded taps included, as a dense conv computes them);
 * - LayerNorm: 3 per element (square-accumulate for the variance, normalise, affine);
 * - GRN: 3 per element (square-accumulate for the norm, `x·Nx`, `γ·(x·Nx) + β + x`);
 * - GELU, a mask multiply, a residual add: 1 per element.
 */
export interface MacEntry {
  op: string;
  macs: number;
}

export class MacCounter {
  readonly entries: MacEntry[] = [];

  add(op: string, macs: number): void {
    this.entries.push({ op, macs });
  }

  /** Total multiply-adds counted. */
  get total(): number {
    return this.entries.reduce((s, e) => s + e.macs, 0);
  }

  /** Totals per op kind (the part of the name before the first ':'), e.g. `linear`, `dwconv`. */
  byKind(): Map<string, number> {
    const out = new Map<string, number>();
    for (const e of this.entries) {
      const kind = e.op.split(':')[0]!;
      out.set(kind, (out.get(kind) ?? 0) + e.macs);
    }
    return out;
  }

  reset(): void {
    this.entries.length = 0;
  }
}
