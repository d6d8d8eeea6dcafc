/**
 * Separable antialiased bicubic resampling on the host (float64 arithmetic), the filter PyTorch uses for
 * `F.interpolate(mode='bicubic', antialias=True)` and PIL for `Image.resize(BICUBIC)`: cubic kernel with
 * a = −0.5, support widened by the scale when shrinking, weights normalised per output sample, pixel centres
 * at (i + 0.5) (align_corners = False). Used for `pos_embed` resampling (timm's `resample_abs_pos_embed`) and
 * for image preprocessing.
 */

function cubic(x: number): number {
  const a = -0.5;
  const t = Math.abs(x);
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

/** For each output index: the first input index and the normalised weights of its window. */
export function resampleWeights(inSize: number, outSize: number): { start: number; weights: Float64Array }[] {
  if (!Number.isInteger(inSize) || !Number.isInteger(outSize) || inSize < 1 || outSize < 1) {
    throw new Error(`resample: sizes must be positive integers, got ${inSize} → ${outSize}`);
  }
  const scale = inSize / outSize;
  const support = scale >= 1 ? 2 * scale : 2;
  const invScale = scale >= 1 ? 1 / scale : 1;
  const out: { start: number; weights: Float64Array }[] = [];
  for (let i = 0; i < outSize; i++) {
    const center = scale * (i + 0.5);
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize);
    const w = new Float64Array(Math.max(xmax - xmin, 0));
    let total = 0;
    for (let j = 0; j < w.length; j++) {
      w[j] = cubic((j + xmin - center + 0.5) * invScale);
      total += w[j]!;
    }
    if (total !== 0) for (let j = 0; j < w.length; j++) w[j] = w[j]! / total;
    out.push({ start: xmin, weights: w });
  }
  return out;
}

/**
 * Resample an [H, W, C] row-major image/feature map to [outH, outW, C] (rows first, then columns).
 * Returns float32 data.
 */
export function resampleBicubic(
  data: ArrayLike<number>,
  [H, W, C]: readonly [number, number, number],
  [outH, outW]: readonly [number, number],
): Float32Array {
  if (data.length !== H * W * C) throw new Error(`resample: ${data.length} values do not fill [${H}, ${W}, ${C}]`);
  const rowsW = resampleWeights(H, outH);
  const colsW = resampleWeights(W, outW);
  // Vertical pass: [H, W, C] → [outH, W, C].
  const tmp = new Float64Array(outH * W * C);
  for (let i = 0; i < outH; i++) {
    const { start, weights } = rowsW[i]!;
    const o = i * W * C;
    for (let j = 0; j < weights.length; j++) {
      const wgt = weights[j]!;
      if (wgt === 0) continue;
      const src = (start + j) * W * C;
      for (let t = 0; t < W * C; t++) tmp[o + t] = tmp[o + t]! + wgt * data[src + t]!;
    }
  }
  // Horizontal pass: [outH, W, C] → [outH, outW, C].
  const out = new Float32Array(outH * outW * C);
  for (let i = 0; i < outH; i++) {
    for (let x = 0; x < outW; x++) {
      const { start, weights } = colsW[x]!;
      for (let c = 0; c < C; c++) {
        let acc = 0;
        for (let j = 0; j < weights.length; j++) acc += weights[j]! * tmp[(i * W + start + j) * C + c]!;
        out[(i * outW + x) * C + c] = acc;
      }
    }
  }
  return out;
}
