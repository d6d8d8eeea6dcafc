/**
 * Depth-wise k×k convolution (stride 1, zero padding (k−1)/2, bias) evaluated on the visible rows only.
 *
 * A sparse conv sums over visible neighbours only, which equals a dense conv of the zero-filled grid read at
 * the visible sites. Here, for each of the k² kernel offsets, every visible row picks its neighbour at that
 * offset (a masked or out-of-grid neighbour reads a zero row) and the weighted picks are summed: `V·k²·C`
 * multiply-adds against `B·H·W·k²·C` for the dense conv, and on tfjs-backend-wasm faster than its dense
 * depth-wise kernel at mask ratio 0.6. The gradient is written out and needs no conv backprop kernel (which
 * tfjs-backend-wasm lacks): the input gradient is the same sparse conv of the upstream gradient with the kernel
 * rotated by 180° (the visible-neighbour relation is symmetric), the kernel gradient the picked input times the
 * upstream gradient, summed over rows. Three strategies, same numbers (see {@link DepthwiseStrategy}).
 */
import * as tf from '@tensorflow/tfjs-core';
import { hasRowDepthwiseKernels, ROW_DEPTHWISE_FILTER_GRAD_KERNEL, ROW_DEPTHWISE_KERNEL } from '@softbias/tensor-ops';
import type { SiteIndex } from './sites.js';
import { rowIndexTensor } from './rows.js';

/** Offsets summed per `addN` (bounds the live picked tensors to this many). */
const GROUP = 7;

/**
 * How the neighbours are picked: `kernel` — softbias' row-form kernels (tensor-ops' `SoftbiasRowDepthwise`, wasm
 * only: one pass over the neighbour table for the conv, one for each gradient, the bias fused); `offsets` — one
 * `[V, C]` pick per kernel offset, summed (few bytes live; fastest op-by-op on cpu and wasm, where a pick is a
 * cheap row copy); `single` — all `V·k²` neighbours in one pick and one reduction (a handful of GPU dispatches
 * instead of ~3·k²; `V·k²·C` floats live).
 */
export type DepthwiseStrategy = 'kernel' | 'offsets' | 'single';

export function defaultDepthwiseStrategy(): DepthwiseStrategy {
  const b = tf.getBackend();
  if (b === 'wasm' && hasRowDepthwiseKernels()) return 'kernel';
  return b === 'cpu' || b === 'wasm' ? 'offsets' : 'single';
}

/**
 * The `kernel` strategy: `y = Σ_j x[nbr_j] ⊙ w[j] (+ bias)` with its gradients (dx: the same kernel on dy with
 * the filter rotated by 180°; dw: the row-form filter-gradient kernel; dbias: Σ_v dy).
 */
function kernelConv(rows: tf.Tensor, sites: SiteIndex, weight: tf.Tensor, bias: tf.Tensor | null, k: number): tf.Tensor2D {
  const V = sites.numRows;
  const C = rows.shape[1]!;
  const table = sites.neighbours(k);
  const nbrTensor = () => tf.tensor2d(table, [V, k * k], 'int32');
  const run = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor | null, flip: boolean) =>
    tf.tidy(() => {
      const nbr = nbrTensor();
      const inputs: tf.NamedTensorMap = b ? { x, nbr, filter: w, bias: b } : { x, nbr, filter: w };
      return tf.engine().runKernel(ROW_DEPTHWISE_KERNEL, inputs, { flip } as unknown as tf.NamedAttrMap) as tf.Tensor;
    });
  const grads = (dy: tf.Tensor, x: tf.Tensor, w: tf.Tensor): [tf.Tensor, tf.Tensor] => [
    run(dy, w, null, true),
    tf.tidy(() => {
      const g = tf.engine().runKernel(ROW_DEPTHWISE_FILTER_GRAD_KERNEL, { x, nbr: nbrTensor(), dy }) as tf.Tensor;
      return tf.reshape(g, [k, k, C, 1]);
    }),
  ];
  if (bias) {
    const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [x, w, b, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
      save([x, w]);
      return {
        value: run(x, w, b, false),
        gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
          const g = dy as tf.Tensor;
          return [...grads(g, saved[0]!, saved[1]!), tf.sum(g, 0)];
        },
      };
    });
    return f(rows, weight, bias) as tf.Tensor2D;
  }
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x, w, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([x, w]);
    return { value: run(x, w, null, false), gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => grads(dy as tf.Tensor, saved[0]!, saved[1]!) };
  });
  return f(rows, weight) as tf.Tensor2D;
}

/** `y[v] = Σ_j src[nbr_j(v)] ⊙ w[j]`, `src` [V+1, C] (zero last row), `w` [k², C]. */
function convRows(src: tf.Tensor, w: tf.Tensor, sites: SiteIndex, k: number, strategy: DepthwiseStrategy): tf.Tensor {
  const kk = w.shape[0]!;
  const C = w.shape[1]!;
  const V = sites.numRows;
  return tf.tidy(() => {
    if (strategy === 'single') {
      const g = tf.reshape(tf.gatherND(src, rowIndexTensor(sites.neighbours(k))), [V, kk, C]);
      return tf.sum(tf.mul(g, w), 1);
    }
    const nbrT = sites.neighboursByOffset(k);
    const wj = tf.unstack(tf.reshape(w, [kk, 1, C])); // one op for all k² kernel rows
    const partial: tf.Tensor[] = [];
    for (let j0 = 0; j0 < kk; j0 += GROUP) {
      const terms: tf.Tensor[] = [];
      for (let j = j0; j < Math.min(kk, j0 + GROUP); j++) {
        const picked = tf.gatherND(src, rowIndexTensor(nbrT.subarray(j * V, (j + 1) * V)));
        terms.push(tf.mul(picked, wj[j]!));
      }
      partial.push(terms.length === 1 ? terms[0]! : tf.addN(terms));
    }
    return partial.length === 1 ? partial[0]! : tf.addN(partial);
  });
}

/** `dw[j] = Σ_v dy[v] ⊙ src[nbr_j(v)]` → `[k², C]`. */
function kernelGrad(src: tf.Tensor, dy: tf.Tensor, sites: SiteIndex, k: number, strategy: DepthwiseStrategy): tf.Tensor {
  const C = dy.shape[1]!;
  const V = sites.numRows;
  const kk = k * k;
  return tf.tidy(() => {
    if (strategy === 'single') {
      const g = tf.reshape(tf.gatherND(src, rowIndexTensor(sites.neighbours(k))), [V, kk, C]);
      return tf.sum(tf.mul(g, tf.reshape(dy, [V, 1, C])), 0);
    }
    // the row sum as a [1, V] × [V, C] matmul (2-D, the wasm fast path)
    const nbrT = sites.neighboursByOffset(k);
    const ones = tf.ones([1, V]);
    const rows: tf.Tensor[] = [];
    for (let j = 0; j < kk; j++) {
      const picked = tf.gatherND(src, rowIndexTensor(nbrT.subarray(j * V, (j + 1) * V)));
      rows.push(tf.matMul(ones, tf.mul(picked, dy)));
    }
    return tf.concat(rows, 0);
  });
}

function withZeroRow(rows: tf.Tensor): tf.Tensor {
  return tf.concat([rows, tf.zeros([1, rows.shape[1]!])], 0);
}

/**
 * Sparse depth-wise conv on rows `[V, C]` of `sites`, kernel in the tfjs depth-wise layout `[k, k, C, 1]`,
 * bias `[C]` or null → `[V, C]`. Differentiable on every backend.
 */
export function sparseDepthwiseConv(
  rows: tf.Tensor,
  sites: SiteIndex,
  weight: tf.Tensor,
  bias: tf.Tensor | null,
  opts: { strategy?: DepthwiseStrategy } = {},
): tf.Tensor2D {
  if (rows.rank !== 2 || rows.shape[0] !== sites.numRows) {
    throw new Error(`sparseDepthwiseConv: expected [${sites.numRows}, C] rows, got shape [${rows.shape}]`);
  }
  const C = rows.shape[1]!;
  const k = weight.shape[0]!;
  if (weight.rank !== 4 || weight.shape[1] !== k || weight.shape[2] !== C || weight.shape[3] !== 1 || k % 2 !== 1) {
    throw new Error(`sparseDepthwiseConv: expected a [k, k, ${C}, 1] kernel with odd k, got shape [${weight.shape}]`);
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== C)) {
    throw new Error(`sparseDepthwiseConv: expected a [${C}] bias, got shape [${bias.shape}]`);
  }
  const kk = k * k;
  const strategy = opts.strategy ?? defaultDepthwiseStrategy();
  if (strategy === 'kernel') {
    if (!hasRowDepthwiseKernels()) {
      throw new Error(`sparseDepthwiseConv: the 'kernel' strategy needs softbias' wasm kernels (backend '${tf.getBackend()}')`);
    }
    return kernelConv(rows, sites, weight, bias, k);
  }
  const conv = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x, w, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([x, w]);
    const value = tf.tidy(() => convRows(withZeroRow(x), tf.reshape(w, [kk, C]), sites, k, strategy));
    return {
      value,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const g = dy as tf.Tensor;
        const [xs, ws] = saved as [tf.Tensor, tf.Tensor];
        // dx: the same sparse conv of dy with the kernel rotated by 180° (offset j ↔ k² − 1 − j).
        const dx = convRows(withZeroRow(g), tf.reverse(tf.reshape(ws, [kk, C]), 0), sites, k, strategy);
        const dw = tf.reshape(kernelGrad(withZeroRow(xs), g, sites, k, strategy), [k, k, C, 1]);
        return [dx, dw];
      },
    };
  });
  return tf.tidy(() => {
    const y = conv(rows, weight);
    return (bias ? tf.add(y, bias) : y) as tf.Tensor2D;
  });
}
