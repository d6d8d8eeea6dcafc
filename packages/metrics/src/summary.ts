/**
 * Per-layer summaries over a dataset, for values a model reports per layer and head (ConViT's nonlocality
 * per layer and head, its gates sigmoid(λ) per layer and head, …). The measuring function comes from the
 * model package (e.g. `(x) => model.nonlocality(x)`); this averages it over batches, weighting each batch by its
 * size. A layer without values (`null`, e.g. a layer with no attention map) stays `null`.
 */
import type * as tf from '@tensorflow/tfjs-core';

/** values[layer][head] (one value per layer: values[layer] = [v]); null for a layer that has none. */
export type LayerValues = readonly (ArrayLike<number> | null)[];

export interface LayerStats {
  /** Mean over heads. */
  mean: number;
  heads: number[];
  min: number;
  max: number;
}

export interface LayerSummary {
  /** Per layer: the mean over heads, the per-head values and the min / max head (null where the layer had none). */
  layers: (LayerStats | null)[];
  /** Total weight averaged (samples for a dataset; 0 for a dataset-independent summary). */
  samples: number;
}

function stats(heads: ArrayLike<number>): LayerStats {
  const h = Array.from(heads);
  return { heads: h, mean: h.reduce((a, b) => a + b, 0) / h.length, min: Math.min(...h), max: Math.max(...h) };
}

/** Summarise one set of per-layer, per-head values (e.g. gates, which do not depend on the input). */
export function summarizeLayers(values: LayerValues, samples = 0): LayerSummary {
  return { samples, layers: values.map((h) => (h === null ? null : stats(h))) };
}

const shapeOf = (v: LayerValues) => `[${v.map((h) => (h === null ? 'null' : h.length)).join(', ')}]`;

/** Running weighted mean of per-layer, per-head values. */
export class LayerMeter {
  private sums: (number[] | null)[] | undefined;
  private weight = 0;
  add(values: LayerValues, weight = 1): void {
    if (!(weight > 0)) throw new RangeError(`LayerMeter: weight must be > 0, got ${weight}`);
    if (!this.sums) this.sums = values.map((h) => (h === null ? null : new Array<number>(h.length).fill(0)));
    const sums = this.sums;
    const same = values.length === sums.length && values.every((h, l) => (h === null ? sums[l] === null : sums[l] !== null && sums[l]!.length === h.length));
    if (!same) {
      throw new Error(`LayerMeter: got values shaped ${shapeOf(values)}, earlier batches were ${shapeOf(sums.map((s) => s ?? null))}`);
    }
    values.forEach((h, l) => {
      if (h === null) return;
      for (let i = 0; i < h.length; i++) sums[l]![i]! += h[i]! * weight;
    });
    this.weight += weight;
  }
  result(): LayerSummary {
    if (!this.sums) return { samples: 0, layers: [] };
    return summarizeLayers(this.sums.map((h) => (h === null ? null : h.map((s) => s / this.weight))), this.weight);
  }
}

export interface SummarizeOptions {
  /** Stop after this many batches. */
  maxBatches?: number;
  /** Dispose each batch's `x` and `y` after measuring (default true). */
  dispose?: boolean;
}

/**
 * Average `measure(x)` (per-layer, per-head values for a batch) over a dataset's batches, weighted by batch
 * size.
 */
export async function summarizeOverDataset(
  batches: AsyncIterable<{ x: tf.Tensor; y?: tf.Tensor }> | Iterable<{ x: tf.Tensor; y?: tf.Tensor }>,
  measure: (x: tf.Tensor) => LayerValues | Promise<LayerValues>,
  opts: SummarizeOptions = {},
): Promise<LayerSummary> {
  const meter = new LayerMeter();
  let n = 0;
  for await (const b of batches as AsyncIterable<{ x: tf.Tensor; y?: tf.Tensor }>) {
    try {
      meter.add(await measure(b.x), b.x.shape[0]!);
    } finally {
      if (opts.dispose ?? true) {
        b.x.dispose();
        b.y?.dispose();
      }
    }
    if (opts.maxBatches !== undefined && ++n >= opts.maxBatches) break;
  }
  return meter.result();
}
