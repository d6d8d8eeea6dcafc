/**
 * ConvNeXt V2's feature-collapse measure: for a feature map X of one image, [H, W, C], each channel X_i
 * flattened to an H·W vector, the average pairwise cosine distance
 *
 *     d(X) = 1/C² · Σ_i Σ_j (1 − cos(X_i, X_j)) / 2,
 *
 * averaged over images. Near 0: channels are copies of each other (collapse); higher: more diverse features.
 * Computed without the C×C matrix: Σ_i Σ_j cos(X_i, X_j) = ‖Σ_i X_i/‖X_i‖‖², so d = (1 − ‖Σ_i X̂_i‖² / C²) / 2.
 * A channel that is zero everywhere has cosine 0 with every channel, itself included (as PyTorch's
 * `cosine_similarity`, which clamps the norm at eps = 1e-8).
 */
import * as tf from '@tensorflow/tfjs-core';

/** Per-image collapse distance of a batch of feature maps [B, H, W, C] (or tokens [B, N, C]) → [B] values. */
export async function featureCollapse(features: tf.Tensor, eps = 1e-8): Promise<Float32Array> {
  if (features.rank !== 4 && features.rank !== 3) {
    throw new Error(`featureCollapse: expected features [B, H, W, C] or [B, N, C], got shape [${features.shape}]`);
  }
  const B = features.shape[0]!;
  const C = features.shape[features.rank - 1]!;
  const d = tf.tidy(() => {
    const x = tf.reshape(features, [B, -1, C]);
    const norms = tf.sqrt(tf.sum(tf.square(x), 1, true)); // [B, 1, C]
    const unit = tf.div(x, tf.maximum(norms, eps));
    const s = tf.sum(unit, 2); // [B, HW]: Σ_i X̂_i
    const sq = tf.sum(tf.square(s), 1); // [B]
    return tf.mul(tf.sub(1, tf.div(sq, C * C)), 0.5);
  });
  const out = (await d.data()) as Float32Array;
  d.dispose();
  return out;
}

/** Averages the collapse distance per layer over a dataset (images weighted equally). */
export class FeatureCollapseMeter {
  private sums: number[] = [];
  private counts: number[] = [];
  /** Add one batch: `layers[l]` is layer l's features [B, H, W, C]. Does not dispose them. */
  async update(layers: readonly tf.Tensor[]): Promise<void> {
    for (let l = 0; l < layers.length; l++) {
      const v = await featureCollapse(layers[l]!);
      this.sums[l] = (this.sums[l] ?? 0) + v.reduce((a, b) => a + b, 0);
      this.counts[l] = (this.counts[l] ?? 0) + v.length;
    }
  }
  /** Mean distance per layer. */
  result(): number[] {
    return this.sums.map((s, l) => s / this.counts[l]!);
  }
}
