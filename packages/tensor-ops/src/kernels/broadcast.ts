/**
 * `Add` and `Multiply` of a float32 tensor [..., C] with a row vector over its last axis ([C], or [1, …, 1, C]) on
 * the wasm backend, with softbias' SIMD kernels (broadcast.c): bias adds and per-channel scales. tfjs-backend-wasm's
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

/** The row vector's length when (big, small) is a last-axis broadcast this kernel runs, else 0. */
export function rowBroadcastLength(big: readonly number[], small: readonly number[]): number {
  if (big.length === 0 || small.length === 0 || small.length > big.length) return 0;
  const C = big[big.length - 1]!;
  if (small[small.length - 1] !== C || C === 0) return 0;
  for (let i = 0; i < small.length - 1; i++) if (small[i] !== 1) return 0;
  const rows = tf.util.sizeFromShape(big as number[]) / C;
  return rows >= 2 ? C : 0; // a single row is a same-shape op
}

function binary(name: 'Add' | 'Multiply', fn: string) {
  return (args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const delegate = () => originals.get(name)!(args as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || !kernelsAvailable(args.backend)) return delegate();
    let [big, vec] = [a, b];
    let C = rowBroadcastLength(a.shape, b.shape);
    if (!C) {
      C = rowBroadcastLength(b.shape, a.shape);
      [big, vec] = [b, a];
    }
    if (!C) return delegate();
    const backend = args.backend as WasmHeapBackend;
    const out = backend.makeOutput([...big.shape], 'float32');
    const size = tf.util.sizeFromShape(big.shape);
    const rows = size / C;
    const tasks = size < MIN_PARALLEL ? 1 : Math.min(rows, 4 * kernelThreads(backend));
    parallelFor(backend, `broadcast.${fn}`, tasks, [heapAddress(backend, big), heapAddress(backend, vec), heapAddress(backend, out), rows, C]);
    return out;
  };
}

/** Register the row-broadcast Add/Multiply for the wasm backend (idempotent). Returns the kernels registered now. */
export function registerWasmBroadcastKernels(): string[] {
  const done: string[] = [];
  for (const [name, fn] of [['Add', 'add_rows_f32'], ['Multiply', 'mul_rows_f32']] as const) {
    const current = tf.getKernel(name, 'wasm');
    if (!current || (current.kernelFunc as { softbias?: boolean }).softbias) continue;
    originals.set(name, current.kernelFunc);
    const kernelFunc = binary(name, fn) as unknown as tf.KernelFunc & { softbias?: boolean };
    kernelFunc.softbias = true;
    tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({ ...current, kernelFunc });
    done.push(name);
  }
  return done;
}

/** tfjs-backend-wasm's own Add / Multiply (tests and benchmarks), or null before registration. */
export function originalWasmBinary(name: 'Add' | 'Multiply'): tf.KernelFunc | null {
  return originals.get(name) ?? null;
}
