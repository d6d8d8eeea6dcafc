/**
 * Registers tfjs-core's gradient functions with the app's own (peer) tfjs-core.
 *
 * tfjs-core's Node entry registers none and its `register_all_gradients` module cannot be imported by Node as
 * published; `generated/gradients.js` is that module bundled by `scripts/bundle-gradients.mjs` with every
 * public symbol (engine, registries, ops) taken from the peer `@tensorflow/tfjs-core`. Importing anything from
 * `@softbias/tensor-ops` runs this once. Re-registering a gradient is harmless (tfjs warns only for kernels).
 */
import * as tf from '@tensorflow/tfjs-core';
import './generated/gradients.js';
import { useLeanGradients } from './lean-gradients.js';

// The backward pass that frees each tape node's saved tensors as soon as it is done (lean-gradients.ts).
useLeanGradients(true);

/**
 * BatchMatMul's gradient: with transpose flags where they are free (softbias' wasm GEMM, cpu), else
 * without them.
 *
 * tfjs' stock gradient computes `dA = dY·Bᵀ` and `dB = Aᵀ·dY` with `transposeA/B` flags; the wasm backend's
 * XNNPACK path takes only flag-free matmuls, so every matmul gradient fell into its scalar loop (~10× slower;
 * see ../shared/notes/cpu-baseline.md). Here the transposes are explicit (rank ≤ 3 transposes are fast) and the
 * matmuls flag-free, for every combination of the forward's flags; that form is kept for the wasm backend
 * without softbias' GEMM (see `flagsAreFree`). Broadcast batch dimensions are summed back
 * to each input's shape (tfjs' own gradient returns the broadcast shape there and fails).
 */
function swapLast(t: tf.Tensor): tf.Tensor {
  const perm = t.shape.map((_, i) => i);
  perm[t.rank - 1] = t.rank - 2;
  perm[t.rank - 2] = t.rank - 1;
  return tf.transpose(t, perm);
}

/** Sum a gradient computed at the broadcast batch shape back to its input's shape. */
function unbroadcast(g: tf.Tensor, shape: readonly number[]): tf.Tensor {
  if (tf.util.arraysEqual(g.shape, shape as number[])) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank - 2; i++) if (i < lead || shape[i - lead] === 1) axes.push(i);
  return tf.reshape(tf.sum(g, axes), shape as number[]);
}

/**
 * Transpose flags cost nothing on softbias' wasm GEMM (they are strides) and on tfjs-cpu; tfjs-backend-wasm's
 * original kernel (no SIMD GEMM registered) sends flagged products to a scalar loop, and tfjs-backend-webgpu
 * 4.22 computes some transposeB products wrongly (long K, small output: see vitest.exclusions.ts), so those two
 * keep the explicit transposes.
 */
function flagsAreFree(): boolean {
  const backend = tf.getBackend();
  if (backend === 'webgpu') return false;
  if (backend !== 'wasm') return true;
  const k = tf.getKernel('BatchMatMul', 'wasm');
  return !!k && (k.kernelFunc as { softbias?: boolean }).softbias === true;
}

const matMulGradConfig: tf.GradConfig & { softbias: true } = {
  kernelName: 'BatchMatMul',
  inputsToSave: ['a', 'b'],
  softbias: true,
  gradFunc: (dy, saved, attrs) => {
    let [a, b] = saved as [tf.Tensor, tf.Tensor];
    const g = dy as tf.Tensor;
    const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
    const aShape = a.shape;
    const bShape = b.shape;
    // Broadcast batch dimensions: compute at the output's batch shape, then sum back.
    const batch = g.shape.slice(0, -2);
    if (!tf.util.arraysEqual(a.shape.slice(0, -2), batch)) a = tf.broadcastTo(a, [...batch, ...a.shape.slice(-2)]);
    if (!tf.util.arraysEqual(b.shape.slice(0, -2), batch)) b = tf.broadcastTo(b, [...batch, ...b.shape.slice(-2)]);
    let da: () => tf.Tensor;
    let db: () => tf.Tensor;
    if (flagsAreFree()) {
      // The same products with transpose flags (no transposed copies): tfjs' own formulas.
      const mm = (x: tf.Tensor, y: tf.Tensor, tx: boolean, ty: boolean) => tf.matMul(x, y, tx, ty);
      if (!transposeA && !transposeB) [da, db] = [() => mm(g, b, false, true), () => mm(a, g, true, false)];
      else if (transposeA && !transposeB) [da, db] = [() => mm(b, g, false, true), () => mm(a, g, false, false)];
      else if (!transposeA && transposeB) [da, db] = [() => mm(g, b, false, false), () => mm(g, a, true, false)];
      else [da, db] = [() => mm(b, g, true, true), () => mm(g, a, true, true)];
      return { a: () => unbroadcast(da(), aShape), b: () => unbroadcast(db(), bShape) };
    }
    const mm = (x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y);
    if (!transposeA && !transposeB) [da, db] = [() => mm(g, swapLast(b)), () => mm(swapLast(a), g)];
    else if (transposeA && !transposeB) [da, db] = [() => mm(b, swapLast(g)), () => mm(a, g)];
    else if (!transposeA && transposeB) [da, db] = [() => mm(g, b), () => mm(swapLast(g), a)];
    else [da, db] = [() => mm(swapLast(b), swapLast(g)), () => mm(swapLast(g), swapLast(a))];
    return { a: () => unbroadcast(da(), aShape), b: () => unbroadcast(db(), bShape) };
  },
};
tf.registerGradient(matMulGradConfig);

/** Kernel names that must have gradients for softbias models to train (checked in tests). */
export const REQUIRED_GRADIENTS = [
  'Add', 'Sub', 'Multiply', 'RealDiv', 'BatchMatMul', 'Reshape', 'Transpose', 'Sum', 'Mean', 'Max', 'Exp',
  'Erf', 'Sqrt', 'Rsqrt', 'Square', 'Softmax', 'Sigmoid', 'Concat', 'Slice', 'GatherV2', 'DepthwiseConv2dNative',
  'Conv2D', 'PadV2', 'Tile', 'Cast', 'Neg', 'Log', 'Maximum', 'Pow',
] as const;

/** True when every gradient softbias needs is registered in the (shared) tfjs-core registry. */
export function gradientsRegistered(): boolean {
  return REQUIRED_GRADIENTS.every((k) => tf.getGradient(k) != null);
}
