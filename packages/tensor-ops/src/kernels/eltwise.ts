/**
 * Fused element-wise kernels for tfjs-backend-wasm (C sources in eltwise.c, WebAssembly SIMD, threads through
 * `parallelFor`):
 *
 * - `SoftbiasGelu` / `SoftbiasGeluGrad`: exact GELU x·Φ(x) with a float32 vectorised Φ (see eltwise.c for the
 *   approximation and eltwise.test.ts for its measured error), and its gradient dy·(Φ(x) + x·φ(x)) from the saved
 *   input alone. Replaces the op graph `0.5·x·(1 + erf(x/√2))` (5 kernels; tfjs-wasm's Erf is scalar and
 *   single-threaded).
 * - `SoftbiasLayerNorm` / `SoftbiasLayerNormGrad`: LayerNorm over the last axis (PyTorch semantics: biased
 *   variance, eps inside the sqrt) with weight and bias, one kernel forward; the gradient gives dx, dweight and
 *   dbias in one pass over the rows plus a deterministic reduction of per-block partial sums (the number of
 *   blocks depends on the shape only, so 1 and 2 threads give identical results).
 *
 * The kernels exist on the wasm backend only; `gelu()` and `layerNorm()` (layers/) call them through
 * `fusedGelu` / `fusedLayerNorm` when the active backend is wasm with softbias' kernels, and keep tfjs' op graph
 * everywhere else (cpu, webgpu, tensorflow) and for non-float32 inputs. `setFusedEltwise(false)` restores the op
 * graph on wasm too (benchmarks, comparisons). The gradient kernels have no gradients themselves (no
 * second-order derivatives through the fused ops).
 */
import * as tf from '@tensorflow/tfjs-core';
import { freeScratch, heapAddress, kernelThreads, kernelsAvailable, mallocScratch, parallelFor, type WasmHeapBackend } from './runtime.js';

export const GELU_KERNEL = 'SoftbiasGelu';
export const GELU_GRAD_KERNEL = 'SoftbiasGeluGrad';
export const LAYER_NORM_KERNEL = 'SoftbiasLayerNorm';
export const LAYER_NORM_GRAD_KERNEL = 'SoftbiasLayerNormGrad';

/** Elements per task below which a kernel runs as one task. */
const MIN_TASK_ELEMENTS = 32 * 1024;
/** Rows per partial-sum block of the LayerNorm gradient (at most MAX_PARTS blocks). */
const ROWS_PER_PART = 64;
const MAX_PARTS = 256;

type KernelArgs = {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
};

function tasksFor(backend: unknown, units: number, unitSize: number): number {
  const threads = kernelThreads(backend);
  if (threads <= 1 || units * unitSize < 2 * MIN_TASK_ELEMENTS) return 1;
  return Math.max(1, Math.min(units, 4 * threads, Math.floor((units * unitSize) / MIN_TASK_ELEMENTS)));
}

function checkF32(t: tf.TensorInfo, what: string): void {
  if (t.dtype !== 'float32') throw new Error(`${what}: expected float32, got ${t.dtype}`);
}

function geluKernel({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const { x } = inputs as { x: tf.TensorInfo };
  checkF32(x, GELU_KERNEL);
  const be = backend as WasmHeapBackend;
  const out = be.makeOutput([...x.shape], 'float32');
  const n = tf.util.sizeFromShape(x.shape);
  if (n > 0) parallelFor(be, 'eltwise.gelu_f32', tasksFor(be, Math.ceil(n / 4), 4), [heapAddress(be, x), heapAddress(be, out), n]);
  return out;
}

function geluGradKernel({ inputs, backend }: KernelArgs): tf.TensorInfo {
  const { dy, x } = inputs as { dy: tf.TensorInfo; x: tf.TensorInfo };
  checkF32(x, GELU_GRAD_KERNEL);
  checkF32(dy, GELU_GRAD_KERNEL);
  const be = backend as WasmHeapBackend;
  const out = be.makeOutput([...x.shape], 'float32');
  const n = tf.util.sizeFromShape(x.shape);
  if (n > 0) {
    parallelFor(be, 'eltwise.gelu_grad_f32', tasksFor(be, Math.ceil(n / 4), 4), [
      heapAddress(be, x),
      heapAddress(be, dy),
      heapAddress(be, out),
      n,
    ]);
  }
  return out;
}

function lnShape(x: tf.TensorInfo, weight: tf.TensorInfo, bias: tf.TensorInfo, what: string): { rows: number; c: number } {
  for (const t of [x, weight, bias]) checkF32(t, what);
  const c = x.shape[x.shape.length - 1] ?? 1;
  if (x.shape.length < 1 || weight.shape.length !== 1 || weight.shape[0] !== c || bias.shape.length !== 1 || bias.shape[0] !== c) {
    throw new Error(`${what}: x [${x.shape}] needs weight and bias of shape [${c}], got [${weight.shape}], [${bias.shape}]`);
  }
  return { rows: c === 0 ? 0 : tf.util.sizeFromShape(x.shape) / c, c };
}

function layerNormKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { x, weight, bias } = inputs as {
    x: tf.TensorInfo;
    weight: tf.TensorInfo;
    bias: tf.TensorInfo;
  };
  const { eps } = attrs as unknown as { eps: number };
  const { rows, c } = lnShape(x, weight, bias, LAYER_NORM_KERNEL);
  const be = backend as WasmHeapBackend;
  const out = be.makeOutput([...x.shape], 'float32');
  if (rows > 0) {
    const args = [heapAddress(be, x), heapAddress(be, weight), heapAddress(be, bias), heapAddress(be, out), rows, c, eps];
    parallelFor(be, 'eltwise.layernorm_f32', tasksFor(be, rows, c), args);
  }
  return out;
}

/** The number of partial-sum blocks of the LayerNorm gradient for `rows` rows (shape only: deterministic). */
export function layerNormGradParts(rows: number): number {
  return Math.max(1, Math.min(MAX_PARTS, Math.ceil(rows / ROWS_PER_PART)));
}

function layerNormGradKernel({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const { dy, x, weight } = inputs as {
    dy: tf.TensorInfo;
    x: tf.TensorInfo;
    weight: tf.TensorInfo;
  };
  const { eps } = attrs as unknown as { eps: number };
  const { rows, c } = lnShape(x, weight, weight, LAYER_NORM_GRAD_KERNEL);
  checkF32(dy, LAYER_NORM_GRAD_KERNEL);
  const be = backend as WasmHeapBackend;
  const dx = be.makeOutput([...x.shape], 'float32');
  const dw = be.makeOutput([c], 'float32');
  const db = be.makeOutput([c], 'float32');
  if (rows === 0) {
    if (c > 0) {
      (be.typedArrayFromHeap(dw) as Float32Array).fill(0);
      (be.typedArrayFromHeap(db) as Float32Array).fill(0);
    }
    return [dx, dw, db];
  }
  const nparts = layerNormGradParts(rows);
  const part = mallocScratch(be, nparts * 2 * c * 4);
  try {
    const args = [heapAddress(be, x), heapAddress(be, weight), heapAddress(be, dy), heapAddress(be, dx), part, rows, c, eps];
    parallelFor(be, 'eltwise.layernorm_grad_f32', nparts, args);
    const reduceTasks = Math.max(1, Math.min(kernelThreads(be), Math.floor((2 * c * nparts) / MIN_TASK_ELEMENTS)));
    parallelFor(be, 'eltwise.layernorm_grad_reduce', reduceTasks, [part, nparts, c, heapAddress(be, dw), heapAddress(be, db)]);
  } finally {
    freeScratch(be, part);
  }
  return [dx, dw, db];
}

let gradientsRegistered = false;

function registerGradients(): void {
  if (gradientsRegistered) return;
  gradientsRegistered = true;
  if (!tf.getGradient(GELU_KERNEL)) {
    tf.registerGradient({
      kernelName: GELU_KERNEL,
      inputsToSave: ['x'],
      gradFunc: (dy, saved) => {
        const [x] = saved as tf.Tensor[];
        return {
          x: () =>
            tf.engine().runKernel(GELU_GRAD_KERNEL, {
              dy: dy as tf.Tensor,
              x: x!,
            }) as tf.Tensor,
        };
      },
    });
  }
  if (!tf.getGradient(LAYER_NORM_KERNEL)) {
    tf.registerGradient({
      kernelName: LAYER_NORM_KERNEL,
      inputsToSave: ['x', 'weight'],
      gradFunc: (dy, saved, attrs) => {
        const [x, weight] = saved as tf.Tensor[];
        // One kernel gives all three gradients: run it here (the closures run inside tidies of their own, which
        // would dispose the other two outputs); the backward pass's tidy disposes whichever is not used.
        const [dx, dw, db] = tf
          .engine()
          .runKernel(LAYER_NORM_GRAD_KERNEL, { dy: dy as tf.Tensor, x: x!, weight: weight! }, attrs) as tf.Tensor[];
        return { x: () => dx!, weight: () => dw!, bias: () => db! };
      },
    });
  }
}

/**
 * Register the fused element-wise kernels for the `wasm` backend and their gradients (idempotent). Returns the
 * names this call registered.
 */
export function registerWasmEltwiseKernels(): string[] {
  if (!tf.getKernel('Add', 'wasm')) return []; // tfjs-backend-wasm not loaded
  registerGradients();
  const done: string[] = [];
  const kernels: [string, unknown][] = [
    [GELU_KERNEL, geluKernel],
    [GELU_GRAD_KERNEL, geluGradKernel],
    [LAYER_NORM_KERNEL, layerNormKernel],
    [LAYER_NORM_GRAD_KERNEL, layerNormGradKernel],
  ];
  for (const [kernelName, fn] of kernels) {
    if (tf.getKernel(kernelName, 'wasm')) continue;
    tf.registerKernel({
      kernelName,
      backendName: 'wasm',
      kernelFunc: fn as tf.KernelFunc,
    });
    done.push(kernelName);
  }
  return done;
}

let enabled = true;

/** Use the fused kernels on wasm (default true); false sends `gelu`/`layerNorm` to tfjs' op graph everywhere. */
export function setFusedEltwise(on: boolean): void {
  enabled = on;
}

/** Whether `gelu()`/`layerNorm()` on a float32 tensor now run the fused kernel `kernelName`. */
export function fusedEltwiseActive(kernelName: string = GELU_KERNEL): boolean {
  return enabled && tf.getBackend() === 'wasm' && tf.getKernel(kernelName, 'wasm') !== undefined && kernelsAvailable(tf.backend());
}

/** GELU by the fused kernel, or null when it does not apply (not wasm, not float32, disabled). */
export function fusedGelu(x: tf.Tensor): tf.Tensor | null {
  if (x.dtype !== 'float32' || !fusedEltwiseActive(GELU_KERNEL)) return null;
  return tf.engine().runKernel(GELU_KERNEL, { x }) as tf.Tensor;
}

/**
 * LayerNorm over the last axis by the fused kernel (a missing weight is ones, a missing bias zeros), or null when
 * it does not apply.
 */
export function fusedLayerNorm(x: tf.Tensor, weight: tf.Tensor | null, bias: tf.Tensor | null, eps: number): tf.Tensor | null {
  if (x.dtype !== 'float32' || x.rank < 1 || !fusedEltwiseActive(LAYER_NORM_KERNEL)) return null;
  const c = x.shape[x.rank - 1]!;
  for (const t of [weight, bias]) if (t && (t.dtype !== 'float32' || t.rank !== 1 || t.shape[0] !== c)) return null;
  return tf.tidy(() => {
    const w = weight ?? tf.ones([c]);
    const b = bias ?? tf.zeros([c]);
    return tf.engine().runKernel(LAYER_NORM_KERNEL, { x, weight: w, bias: b }, { eps }) as tf.Tensor;
  });
}
