/**
 * `Add` and `Multiply` of a float32 tensor [..., C] with a vector over its last axis ([C] or [1, …, 1, C], or one
 * per image: [B, 1, …, 1, C]) on the wasm backend, with softbias' SIMD kernels (broadcast.c): bias adds,
 * per-channel scales, GRN's per-image factors; large same-shape tensors (residual adds) when there are threads to
 * share the pass; and GRN's sum of squares over positions. tfjs-backend-wasm's
 * threaded build runs this broadcast 5× slower than its single-threaded one (measured on [1568, 768] + [768]:
 * 0.33 ms at 1 thread, 1.7–2.6 ms at 2), and every linear layer's bias goes through it. Exactly one IEEE
 * operation per element, so results equal tfjs' to the bit. Every other case (other broadcasts, other dtypes,
 * same shapes) goes to tfjs' own kernel, kept reachable as `originalWasmBinary(name)`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { heapAddress, kernelThreads, kernelsAvailable, parallelFor, type WasmHeapBackend } from './runtime.js';

/** Below this many elements one task on the calling thread beats waking the pool. */
const MIN_PARALLEL = 1 << 16;

const originals = new Map<string, tf.KernelFunc>();

export interface BroadcastPlan {
  /** Groups of rows sharing one vector (1, or the batch size for a per-image vector). */
  groups: number;
  rows: number;
  /** The vector's length (the last axis). */
  n: number;
}

/**
 * How this kernel runs (big op small), or null: `small` is a vector over `big`'s last axis, shaped [C] or
 * [1, …, 1, C] (one group), or [B, 1, …, 1, C] against [B, …, C] (a vector per image), and each group has at
 * least two rows (otherwise it is a same-shape op, left to tfjs).
 */
export function broadcastPlan(big: readonly number[], small: readonly number[]): BroadcastPlan | null {
  if (big.length === 0 || small.length === 0 || small.length > big.length) return null;
  const n = big[big.length - 1]!;
  if (small[small.length - 1] !== n || n === 0) return null;
  const size = tf.util.sizeFromShape(big as number[]);
  let groups = 1;
  let first = 0;
  if (small.length === big.length && small[0] === big[0] && big[0]! > 1) {
    groups = big[0]!;
    first = 1;
  }
  for (let i = first; i < small.length - 1; i++) if (small[i] !== 1) return null;
  const rows = size / (groups * n);
  return rows >= 2 ? { groups, rows, n } : null;
}

/** The row vector's length when (big, small) is a one-group last-axis broadcast, else 0. */
export function rowBroadcastLength(big: readonly number[], small: readonly number[]): number {
  const p = broadcastPlan(big, small);
  return p && p.groups === 1 ? p.n : 0;
}

function binary(name: 'Add' | 'Multiply', fn: string) {
  return (args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const delegate = () => originals.get(name)!(args as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || !kernelsAvailable(args.backend)) return delegate();
    const backend = args.backend as WasmHeapBackend;
    const size = tf.util.sizeFromShape(a.shape);
    if (size >= MIN_PARALLEL && tf.util.arraysEqual(a.shape, b.shape)) {
      // Same shapes (residual adds): worth it only when threads can share the pass.
      if (kernelThreads(backend) < 2) return delegate();
      const out = backend.makeOutput([...a.shape], 'float32');
      const tasks = 4 * kernelThreads(backend);
      parallelFor(backend, `broadcast.${fn.replace('rows', 'same')}`, tasks, [heapAddress(backend, a), heapAddress(backend, b), heapAddress(backend, out), size]);
      return out;
    }
    let [big, vec] = [a, b];
    let plan = broadcastPlan(a.shape, b.shape);
    if (!plan) {
      plan = broadcastPlan(b.shape, a.shape);
      [big, vec] = [b, a];
    }
    if (!plan) return delegate();
    const out = backend.makeOutput([...big.shape], 'float32');
    const bigSize = tf.util.sizeFromShape(big.shape);
    const tasks = bigSize < MIN_PARALLEL ? 1 : Math.min(plan.groups * plan.rows, 4 * kernelThreads(backend));
    parallelFor(backend, `broadcast.${fn}`, tasks, [heapAddress(backend, big), heapAddress(backend, vec), heapAddress(backend, out), plan.groups, plan.rows, plan.n]);
    return out;
  };
}

// ------------------------------------------------------------------------------------------------------------
// Sum of squares over the positions of each image: [B, …, C] → [B, 1, …, 1, C] (GRN's statistics).

export const SUM_SQUARES_KERNEL = 'SoftbiasSumSquares';

function sumSquaresKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const backend = args.backend as WasmHeapBackend;
  const B = x.shape[0]!;
  const n = x.shape[x.shape.length - 1]!;
  const rows = tf.util.sizeFromShape(x.shape) / (B * n);
  const out = backend.makeOutput([B, ...x.shape.slice(1, -1).map(() => 1), n], 'float32');
  const tasks = B * rows * n < MIN_PARALLEL ? 1 : Math.min(B * Math.ceil(n / 16), 4 * kernelThreads(backend));
  parallelFor(backend, 'broadcast.sumsq_rows_f32', tasks, [heapAddress(backend, x), heapAddress(backend, out), B, rows, n]);
  return out;
}

/**
 * Σ over every position (all axes but the first and the last) of x², keeping dims: [B, …, C] → [B, 1, …, 1, C].
 * On wasm one SIMD pass (threaded); elsewhere `sum(square(x))`. Gradient 2·x·dy on every backend.
 */
export function sumOfSquaresOverPositions(x: tf.Tensor): tf.Tensor {
  if (x.rank < 3) throw new Error(`sumOfSquaresOverPositions: expected [B, …, C], got [${x.shape}]`);
  if (x.dtype === 'float32' && x.size > 0 && tf.getBackend() === 'wasm' && tf.getKernel(SUM_SQUARES_KERNEL, 'wasm') && kernelsAvailable(tf.backend())) {
    return tf.engine().runKernel(SUM_SQUARES_KERNEL, { x }) as tf.Tensor;
  }
  const axes = Array.from({ length: x.rank - 2 }, (_, i) => i + 1);
  return tf.tidy(() => tf.sum(tf.square(x), axes, true));
}

// ------------------------------------------------------------------------------------------------------------
// Sum over leading axes ([R…, C…] → [C…]: bias gradients, the gradients of row broadcasts). tfjs-backend-wasm
// transposes the reduced axes to the end first (a full copy); here one pass reads the rows in order. Each output
// is Σ_r in increasing r from +0, as tfjs' own Sum does after its transpose: the same numbers.

function sumKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { axis, keepDims = false } = (args.attrs ?? {}) as unknown as { axis: number | number[]; keepDims?: boolean };
  const delegate = () => originals.get('Sum')!(args as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  if (x.dtype !== 'float32' || !kernelsAvailable(args.backend)) return delegate();
  // Only axes given as 0, 1, …, k−1 in this order (tfjs sums other orders in that order: other numbers).
  const axes = tf.util.parseAxisParam(axis, x.shape);
  const k = axes.length;
  if (k === 0 || k >= x.shape.length || !axes.every((a, i) => a === i)) return delegate();
  const rows = tf.util.sizeFromShape(x.shape.slice(0, k));
  const n = tf.util.sizeFromShape(x.shape.slice(k));
  if (rows === 0 || n === 0) return delegate();
  const backend = args.backend as WasmHeapBackend;
  const outShape = keepDims ? x.shape.map((d, i) => (i < k ? 1 : d)) : x.shape.slice(k);
  const out = backend.makeOutput(outShape, 'float32');
  const tasks = rows * n < MIN_PARALLEL ? 1 : Math.min(Math.ceil(n / 16), 4 * kernelThreads(backend));
  parallelFor(backend, 'broadcast.sum_rows_f32', tasks, [heapAddress(backend, x), heapAddress(backend, out), 1, rows, n]);
  return out;
}

// ------------------------------------------------------------------------------------------------------------
// Row gathers: y[i] = x[idx[i]] (a zero row for idx[i] < 0), x [N, C], idx [M] int32 → [M, C].

export const GATHER_ROWS_KERNEL = 'SoftbiasGatherRows';

function gatherRowsKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const { x, idx } = args.inputs as { x: tf.TensorInfo; idx: tf.TensorInfo };
  if (x.dtype !== 'float32' || idx.dtype !== 'int32' || x.shape.length !== 2 || idx.shape.length !== 1) {
    throw new Error(`${GATHER_ROWS_KERNEL}: expected float32 x [N, C] and int32 idx [M], got ${x.dtype} [${x.shape}], ${idx.dtype} [${idx.shape}]`);
  }
  const backend = args.backend as WasmHeapBackend;
  const [N, C] = x.shape as [number, number];
  const M = idx.shape[0]!;
  const table = backend.typedArrayFromHeap(idx) as Int32Array;
  for (let i = 0; i < M; i++) {
    if (table[i]! >= N) throw new RangeError(`${GATHER_ROWS_KERNEL}: row index ${table[i]} out of range for ${N} rows`);
  }
  const out = backend.makeOutput([M, C], 'float32');
  if (M === 0 || C === 0) return out;
  const tasks = M * C < MIN_PARALLEL ? 1 : Math.min(M, 4 * kernelThreads(backend));
  parallelFor(backend, 'broadcast.gather_rows_f32', tasks, [heapAddress(backend, x), heapAddress(backend, idx), heapAddress(backend, out), M, C]);
  return out;
}

/**
 * `y[i] = x[pick[i]]` for float32 x [N, C] (a zero row where pick[i] < 0) by softbias' threaded kernel on wasm;
 * null where it does not apply (other backends, dtypes): then use tfjs' gatherND. Not differentiable by itself.
 */
export function gatherRowsFused(x: tf.Tensor, pick: Int32Array): tf.Tensor | null {
  if (x.dtype !== 'float32' || x.rank !== 2 || tf.getBackend() !== 'wasm' || !tf.getKernel(GATHER_ROWS_KERNEL, 'wasm') || !kernelsAvailable(tf.backend())) return null;
  return tf.tidy(() => tf.engine().runKernel(GATHER_ROWS_KERNEL, { x, idx: tf.tensor1d(pick, 'int32') }) as tf.Tensor);
}

/**
 * Register the row-broadcast Add/Multiply and the leading-axes Sum for the wasm backend (idempotent). Returns the
 * kernels registered now.
 */
export function registerWasmBroadcastKernels(): string[] {
  const done: string[] = [];
  for (const [name, fn] of [['Add', 'add_rows_f32'], ['Multiply', 'mul_rows_f32'], ['Sum', '']] as const) {
    const current = tf.getKernel(name, 'wasm');
    if (!current || (current.kernelFunc as { softbias?: boolean }).softbias) continue;
    originals.set(name, current.kernelFunc);
    const kernelFunc = (name === 'Sum' ? sumKernel : binary(name, fn)) as unknown as tf.KernelFunc & { softbias?: boolean };
    kernelFunc.softbias = true;
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({ ...current, kernelFunc });
    done.push(name);
  }
  if (!tf.getKernel(GATHER_ROWS_KERNEL, 'wasm')) {
    tf.registerKernel({ kernelName: GATHER_ROWS_KERNEL, backendName: 'wasm', kernelFunc: gatherRowsKernel as unknown as tf.KernelFunc });
    done.push(GATHER_ROWS_KERNEL);
  }
  if (!tf.getKernel(SUM_SQUARES_KERNEL, 'wasm')) {
    tf.registerKernel({ kernelName: SUM_SQUARES_KERNEL, backendName: 'wasm', kernelFunc: sumSquaresKernel as unknown as tf.KernelFunc });
    tf.registerGradient({
      kernelName: SUM_SQUARES_KERNEL,
      inputsToSave: ['x'],
      gradFunc: (dy, saved) => ({ x: () => tf.mul(tf.mul(saved[0]!, 2), dy as tf.Tensor) }),
    });
    done.push(SUM_SQUARES_KERNEL);
  }
  return done;
}

/** tfjs-backend-wasm's own Add / Multiply / Sum (tests and benchmarks), or null before registration. */
export function originalWasmBinary(name: 'Add' | 'Multiply' | 'Sum'): tf.KernelFunc | null {
  return originals.get(name) ?? null;
}
