/**
 * Top-k accuracy and the confusion matrix, from logits (tensors or host arrays) and integer labels.
 *
 * Top-k: a sample counts when its label is among the k highest logits. Ties are broken by class index (the
 * lower index ranks first), so the result does not depend on a sort's stability.
 */
import * as tf from '@tensorflow/tfjs-core';

type Labels = tf.Tensor | ArrayLike<number>;

async function hostLogits(logits: tf.Tensor | ArrayLike<number>, numClasses?: number): Promise<{ data: ArrayLike<number>; rows: number; classes: number }> {
  if (logits instanceof tf.Tensor) {
    if (logits.rank !== 2) throw new Error(`accuracy: expected logits [N, numClasses], got shape [${logits.shape}]`);
    return { data: (await logits.data()) as Float32Array, rows: logits.shape[0]!, classes: logits.shape[1]! };
  }
  if (numClasses === undefined) throw new Error('accuracy: host logits need numClasses');
  if (logits.length % numClasses !== 0) throw new Error(`accuracy: ${logits.length} logits are not rows of ${numClasses}`);
  return { data: logits, rows: logits.length / numClasses, classes: numClasses };
}

async function hostLabels(labels: Labels, rows: number): Promise<ArrayLike<number>> {
  const l = labels instanceof tf.Tensor ? await labels.data() : labels;
  if (l.length !== rows) throw new Error(`accuracy: ${rows} rows of logits but ${l.length} labels`);
  return l;
}

/** Rank of the label among the row's logits (0 = top), ties broken by class index. */
function rankOf(data: ArrayLike<number>, row: number, classes: number, label: number): number {
  if (!(Number.isInteger(label) && label >= 0 && label < classes)) throw new Error(`accuracy: label ${label} is out of range for ${classes} classes`);
  const base = row * classes;
  const v = data[base + label]!;
  if (Number.isNaN(v)) return classes; // a NaN logit is never correct
  let r = 0;
  for (let c = 0; c < classes; c++) {
    const u = data[base + c]!;
    if (u > v || (u === v && c < label)) r++;
  }
  return r;
}

/** Number of rows whose label is in the top k, for each k. */
export async function topKCorrect(
  logits: tf.Tensor | ArrayLike<number>,
  labels: Labels,
  ks: readonly number[] = [1, 5],
  numClasses?: number,
): Promise<{ counts: number[]; total: number }> {
  const { data, rows, classes } = await hostLogits(logits, numClasses);
  const l = await hostLabels(labels, rows);
  const counts = ks.map(() => 0);
  for (let r = 0; r < rows; r++) {
    const rank = rankOf(data, r, classes, Number(l[r]));
    ks.forEach((k, i) => {
      if (rank < k) counts[i]!++;
    });
  }
  return { counts, total: rows };
}

/** Top-k accuracy in [0, 1] for each k (k is clamped to the number of classes). */
export async function accuracy(logits: tf.Tensor | ArrayLike<number>, labels: Labels, ks: readonly number[] = [1], numClasses?: number): Promise<number[]> {
  const { counts, total } = await topKCorrect(logits, labels, ks, numClasses);
  return counts.map((c) => (total === 0 ? NaN : c / total));
}

/** Accumulates top-1 / top-5 (or any ks) over batches. */
export class AccuracyMeter {
  private counts: number[];
  private n = 0;
  constructor(readonly ks: readonly number[] = [1, 5]) {
    this.counts = ks.map(() => 0);
  }
  /** Add a batch (logits [B, K] tensor, labels [B]). Does not dispose its arguments. */
  async update(logits: tf.Tensor | ArrayLike<number>, labels: Labels, numClasses?: number): Promise<void> {
    const r = await topKCorrect(logits, labels, this.ks, numClasses);
    r.counts.forEach((c, i) => {
      this.counts[i]! += c;
    });
    this.n += r.total;
  }
  get count(): number {
    return this.n;
  }
  /** `{ top1, top5, … , count }` as fractions in [0, 1]. */
  result(): Record<string, number> {
    const out: Record<string, number> = { count: this.n };
    this.ks.forEach((k, i) => {
      out[`top${k}`] = this.n === 0 ? NaN : this.counts[i]! / this.n;
    });
    return out;
  }
  reset(): void {
    this.counts = this.ks.map(() => 0);
    this.n = 0;
  }
}

/** Predicted class per row (argmax, ties → lowest index). */
export async function predictions(logits: tf.Tensor | ArrayLike<number>, numClasses?: number): Promise<Int32Array> {
  const { data, rows, classes } = await hostLogits(logits, numClasses);
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (data[r * classes + c]! > data[r * classes + best]!) best = c;
    out[r] = best;
  }
  return out;
}

/** A confusion matrix: `matrix[t · K + p]` counts samples of true class t predicted as p. */
export class ConfusionMatrix {
  readonly matrix: Int32Array;
  constructor(readonly numClasses: number) {
    if (!(Number.isInteger(numClasses) && numClasses > 0)) throw new RangeError(`numClasses must be a positive integer, got ${numClasses}`);
    this.matrix = new Int32Array(numClasses * numClasses);
  }

  /** Add predicted classes (or logits [B, K], argmax taken) against labels. */
  async update(predictedOrLogits: tf.Tensor | ArrayLike<number>, labels: Labels): Promise<void> {
    let preds: ArrayLike<number>;
    if (predictedOrLogits instanceof tf.Tensor && predictedOrLogits.rank === 2) preds = await predictions(predictedOrLogits);
    else preds = predictedOrLogits instanceof tf.Tensor ? await predictedOrLogits.data() : predictedOrLogits;
    const l = labels instanceof tf.Tensor ? await labels.data() : labels;
    if (preds.length !== l.length) throw new Error(`confusion matrix: ${preds.length} predictions but ${l.length} labels`);
    const K = this.numClasses;
    for (let i = 0; i < l.length; i++) {
      const t = Number(l[i]);
      const p = Number(preds[i]);
      if (!(t >= 0 && t < K && p >= 0 && p < K)) throw new Error(`confusion matrix: class ${t < 0 || t >= K ? t : p} out of range for ${K} classes`);
      this.matrix[t * K + p]!++;
    }
  }

  get total(): number {
    return this.matrix.reduce((a, b) => a + b, 0);
  }
  /** Fraction on the diagonal. */
  accuracy(): number {
    let d = 0;
    for (let c = 0; c < this.numClasses; c++) d += this.matrix[c * this.numClasses + c]!;
    return d / this.total;
  }
  /** Per true class: correct / samples of that class (NaN for a class with no samples). */
  recall(): number[] {
    const K = this.numClasses;
    return Array.from({ length: K }, (_, t) => {
      let row = 0;
      for (let p = 0; p < K; p++) row += this.matrix[t * K + p]!;
      return this.matrix[t * K + t]! / row;
    });
  }
  /** Per predicted class: correct / predictions of that class (NaN when never predicted). */
  precision(): number[] {
    const K = this.numClasses;
    return Array.from({ length: K }, (_, p) => {
      let col = 0;
      for (let t = 0; t < K; t++) col += this.matrix[t * K + p]!;
      return this.matrix[p * K + p]! / col;
    });
  }
  /** Rows of counts (true class) for JSON. */
  toRows(): number[][] {
    const K = this.numClasses;
    return Array.from({ length: K }, (_, t) => Array.from(this.matrix.subarray(t * K, (t + 1) * K)));
  }
  /** A fixed-width text table (rows: true class, columns: predicted). */
  format(classNames?: readonly string[]): string {
    const K = this.numClasses;
    const names = classNames ?? Array.from({ length: K }, (_, i) => String(i));
    const w = Math.max(...names.map((n) => n.length), ...Array.from(this.matrix, (v) => String(v).length), 4);
    const pad = (s: string) => s.padStart(w);
    const lines = [[pad('true\\pred'.slice(0, w)), ...names.map((n) => pad(n))].join(' ')];
    for (let t = 0; t < K; t++) lines.push([pad(names[t]!), ...Array.from(this.matrix.subarray(t * K, (t + 1) * K), (v) => pad(String(v)))].join(' '));
    return lines.join('\n');
  }
}
