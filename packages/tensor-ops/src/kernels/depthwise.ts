/**
 * Depth-wise 2-D convolution on the wasm backend with softbias' SIMD kernels (depthwise.c): the forward pass
 * (`DepthwiseConv2dNative`, and `FusedDepthwiseConv2D` with a bias and no activation) and both gradients (called
 * by wasm-conv-backprop.ts), for channel multiplier 1, stride 1, dilation 1, float32, channels-last data, any
 * kernel size up to 64 rows and any padding ('same', 'valid', a number, explicit) — ConvNeXt's 7×7 and the
 * token mixers' 3×3 cases. Everything else goes to tfjs-backend-wasm's own kernel (XNNPACK), kept reachable as
 * `originalWasmDepthwiseConv2d()` for tests and benchmarks.
 *
 * - forward: channels in f32x4 blocks (C not a multiple of 4: the last block is zero-padded), 4 output pixels of
 *   a row per register strip; each task walks its output rows through a ring of KH zero-padded input rows.
 * - input gradient: the same kernel on dy with the spatially flipped filter and pads (KH − 1 − top, KW − 1 − left).
 * - filter gradient: per-part sums over disjoint output rows (the number of parts is fixed by the shape, not by
 *   the thread count), then a reduction over the parts in order.
 *
 * Arithmetic: float32, one multiply and one add per term (no FMA), in a fixed order; results are identical for
 * any thread count. Forward/input-gradient sums have KH·KW terms; the filter gradient sums Wout terms per row,
 * rows in order within a part, then the parts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { freeScratch, heapAddress, kernelThreads, kernelsAvailable, mallocScratch, parallelFor, type WasmHeapBackend } from './runtime.js';

type ConvInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;

const MAX_KH = 64;
/** Parts of the filter gradient: fixed by the shape so the sum order never depends on the thread count. */
const FILTER_GRAD_PARTS = 16;
/** … each at least 8 output rows (a part re-reads KH − 1 rows to fill its ring, and is reduced at the end). */
const MIN_ROWS_PER_PART = 8;
/** Below this many multiply-adds (≈ 0.1 ms) one task on the calling thread beats waking the pool. */
const MIN_PARALLEL_MACS = 1 << 20;

const round4 = (c: number) => (c + 3) & ~3;

/**
 * Whether softbias' depth-wise kernels run this convolution: multiplier 1, stride 1, dilation 1, channels-last,
 * at most 64 filter rows, non-empty (dtype and backend are checked by the callers).
 */
export function depthwiseKernelSupports(info: ConvInfo): boolean {
  return (
    info.dataFormat === 'channelsLast' &&
    info.outChannels === info.inChannels &&
    info.strideHeight === 1 &&
    info.strideWidth === 1 &&
    info.dilationHeight === 1 &&
    info.dilationWidth === 1 &&
    info.filterHeight <= MAX_KH &&
    info.batchSize > 0 &&
    info.inChannels > 0 &&
    info.outHeight > 0 &&
    info.outWidth > 0 &&
    info.inHeight > 0 &&
    info.inWidth > 0
  );
}

function backendOk(backend: unknown, ...ts: (tf.TensorInfo | null | undefined)[]): boolean {
  return ts.every((t) => !t || t.dtype === 'float32') && kernelsAvailable(backend);
}

interface Geometry {
  B: number;
  Hin: number;
  Win: number;
  C: number;
  Hout: number;
  Wout: number;
  KH: number;
  KW: number;
  pt: number;
  pl: number;
}

/** y = conv(x, filter (flipped when `flip`)) (+ bias), stride 1, on the C kernel. */
function runConv(backend: WasmHeapBackend, x: tf.TensorInfo, filter: tf.TensorInfo, bias: tf.TensorInfo | null, g: Geometry, flip: boolean): tf.TensorInfo {
  const { B, Hin, Win, C, Hout, Wout, KH, KW, pt, pl } = g;
  const Cp = round4(C);
  const out = backend.makeOutput([B, Hout, Wout, C], 'float32');
  const rows = B * Hout;
  const threads = kernelThreads(backend);
  const small = rows * Wout * C * KH * KW < MIN_PARALLEL_MACS;
  const ntasks = threads > 1 && !small ? Math.min(rows, 4 * threads) : 1;
  const packed = mallocScratch(backend, (KH * KW + 1) * Cp * 4);
  let ring = 0;
  try {
    ring = mallocScratch(backend, ntasks * KH * (Wout + KW - 1) * Cp * 4);
    const w = heapAddress(backend, filter);
    parallelFor(backend, 'depthwise.dw_pack_filter', 1, [w, bias ? heapAddress(backend, bias) : 0, packed, KH, KW, C, flip ? 1 : 0]);
    const args = [heapAddress(backend, x), packed, heapAddress(backend, out), ring, B, Hin, Win, C, Hout, Wout, KH, KW, pt, pl, bias ? 1 : 0];
    parallelFor(backend, 'depthwise.dw_conv2d', ntasks, args);
  } catch (e) {
    backend.disposeData(out.dataId);
    throw e;
  } finally {
    freeScratch(backend, ring);
    freeScratch(backend, packed);
  }
  return out;
}

/** Depth-wise convolution `x` [B, H, W, C] ⊛ `filter` [KH, KW, C, 1] (+ `bias` [C]) for a supported `info`. */
export function wasmDepthwiseConv2d(backend: unknown, x: tf.TensorInfo, filter: tf.TensorInfo, bias: tf.TensorInfo | null, info: ConvInfo): tf.TensorInfo {
  return runConv(
    backend as WasmHeapBackend,
    x,
    filter,
    bias,
    {
      B: info.batchSize,
      Hin: info.inHeight,
      Win: info.inWidth,
      C: info.inChannels,
      Hout: info.outHeight,
      Wout: info.outWidth,
      KH: info.filterHeight,
      KW: info.filterWidth,
      pt: info.padInfo.top,
      pl: info.padInfo.left,
    },
    false,
  );
}

/** dx [B, H, W, C] of a supported depth-wise convolution, from `dy` [B, Hout, Wout, C] and `filter`. */
export function wasmDepthwiseInputGrad(backend: unknown, dy: tf.TensorInfo, filter: tf.TensorInfo, info: ConvInfo): tf.TensorInfo {
  const KH = info.filterHeight;
  const KW = info.filterWidth;
  return runConv(
    backend as WasmHeapBackend,
    dy,
    filter,
    null,
    {
      B: info.batchSize,
      Hin: info.outHeight,
      Win: info.outWidth,
      C: info.inChannels,
      Hout: info.inHeight,
      Wout: info.inWidth,
      KH,
      KW,
      pt: KH - 1 - info.padInfo.top,
      pl: KW - 1 - info.padInfo.left,
    },
    true,
  );
}

/** dW [KH, KW, C, 1] of a supported depth-wise convolution, from `x` and `dy`. */
export function wasmDepthwiseFilterGrad(backend: unknown, x: tf.TensorInfo, dy: tf.TensorInfo, info: ConvInfo): tf.TensorInfo {
  const be = backend as WasmHeapBackend;
  const { batchSize: B, inHeight: Hin, inWidth: Win, inChannels: C, outHeight: Hout, outWidth: Wout } = info;
  const { filterHeight: KH, filterWidth: KW } = info;
  const Cp = round4(C);
  const small = B * Hout * Wout * C * KH * KW < MIN_PARALLEL_MACS;
  const nparts = small ? 1 : Math.max(1, Math.min(FILTER_GRAD_PARTS, Math.floor((B * Hout) / MIN_ROWS_PER_PART)));
  const out = be.makeOutput([KH, KW, C, 1], 'float32');
  const partials = mallocScratch(be, nparts * KH * KW * Cp * 4);
  let scratch = 0;
  try {
    scratch = mallocScratch(be, nparts * (KH * (Wout + KW - 1) + Wout) * Cp * 4);
    const args = [heapAddress(be, x), heapAddress(be, dy), partials, scratch, B, Hin, Win, C, Hout, Wout, KH, KW, info.padInfo.top, info.padInfo.left];
    parallelFor(be, 'depthwise.dw_filter_grad', nparts, args);
    const threads = kernelThreads(be);
    const vectors = (KH * KW * Cp) / 4;
    parallelFor(be, 'depthwise.dw_filter_reduce', Math.max(1, Math.min(threads, Math.floor(vectors / 64))), [partials, heapAddress(be, out), nparts, KH, KW, C]);
  } catch (e) {
    be.disposeData(out.dataId);
    throw e;
  } finally {
    freeScratch(be, scratch);
    freeScratch(be, partials);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// The row ("sparse") form, for @softbias/sparse-conv: kernels of softbias' own, registered for wasm only
// ---------------------------------------------------------------------------------------------------------

/**
 * Kernel names of the row-form depth-wise convolution (wasm only; other backends do not have them):
 * - `SoftbiasRowDepthwise`: inputs `x` [V, C], `nbr` [V, KK] int32 (neighbour row per offset j = ky·k + kx, or
 *   V for a zero row), `filter` [k, k, C, 1], optional `bias` [C]; attr `flip` (the filter rotated by 180°, for
 *   the input gradient) → y [V, C], y[v] = (bias +) Σ_j x[nbr[v, j]] ⊙ w[j].
 * - `SoftbiasRowDepthwiseFilterGrad`: inputs `x`, `nbr`, `dy` [V, C] → [KK, C], Σ_v x[nbr[v, j]] ⊙ dy[v].
 */
export const ROW_DEPTHWISE_KERNEL = 'SoftbiasRowDepthwise';
export const ROW_DEPTHWISE_FILTER_GRAD_KERNEL = 'SoftbiasRowDepthwiseFilterGrad';

/** Whether the active backend has the row-form depth-wise kernels (wasm with softbias' kernels registered). */
export function hasRowDepthwiseKernels(): boolean {
  return tf.getKernel(ROW_DEPTHWISE_KERNEL, tf.getBackend()) !== undefined && kernelsAvailable(tf.backend());
}

function checkRows(x: tf.TensorInfo, nbr: tf.TensorInfo, what: string): { V: number; C: number; KK: number } {
  if (x.shape.length !== 2 || nbr.shape.length !== 2 || nbr.shape[0] !== x.shape[0] || nbr.dtype !== 'int32' || x.dtype !== 'float32') {
    throw new Error(`${what}: expected float32 x [V, C] and int32 nbr [V, KK], got [${x.shape}] ${x.dtype} and [${nbr.shape}] ${nbr.dtype}`);
  }
  const KK = nbr.shape[1]!;
  if (KK > 256) throw new Error(`${what}: at most 256 kernel offsets, got ${KK}`);
  return { V: x.shape[0]!, C: x.shape[1]!, KK };
}

function rowDepthwise(args: KernelArgs): tf.TensorInfo {
  const { x, nbr, filter, bias } = args.inputs as { x: tf.TensorInfo; nbr: tf.TensorInfo; filter: tf.TensorInfo; bias?: tf.TensorInfo };
  const { V, C, KK } = checkRows(x, nbr, ROW_DEPTHWISE_KERNEL);
  if (tf.util.sizeFromShape(filter.shape) !== KK * C || filter.dtype !== 'float32' || (bias && (bias.shape.length !== 1 || bias.shape[0] !== C))) {
    throw new Error(`${ROW_DEPTHWISE_KERNEL}: filter [${filter.shape}] / bias do not fit ${KK} offsets × ${C} channels`);
  }
  const be = args.backend as WasmHeapBackend;
  const out = be.makeOutput([V, C], 'float32');
  if (V === 0 || C === 0) return out;
  const flip = (args.attrs as { flip?: boolean } | undefined)?.flip ? 1 : 0;
  const threads = kernelThreads(be);
  const ntasks = threads > 1 && V * KK * C >= MIN_PARALLEL_MACS ? Math.min(V, 4 * threads) : 1;
  const a = [heapAddress(be, x), heapAddress(be, nbr), heapAddress(be, filter), bias ? heapAddress(be, bias) : 0, heapAddress(be, out), V, C, KK, flip];
  try {
    parallelFor(be, 'depthwise.dw_rows', ntasks, a);
  } catch (e) {
    be.disposeData(out.dataId);
    throw e;
  }
  return out;
}

function rowDepthwiseFilterGrad(args: KernelArgs): tf.TensorInfo {
  const { x, nbr, dy } = args.inputs as { x: tf.TensorInfo; nbr: tf.TensorInfo; dy: tf.TensorInfo };
  const { V, C, KK } = checkRows(x, nbr, ROW_DEPTHWISE_FILTER_GRAD_KERNEL);
  if (dy.shape.length !== 2 || dy.shape[0] !== V || dy.shape[1] !== C || dy.dtype !== 'float32') {
    throw new Error(`${ROW_DEPTHWISE_FILTER_GRAD_KERNEL}: dy [${dy.shape}] does not fit [${V}, ${C}]`);
  }
  const be = args.backend as WasmHeapBackend;
  const out = be.makeOutput([KK, C], 'float32');
  if (KK * C === 0) return out;
  // Parts fixed by the shape (each ≥ 64 rows), so the sum order does not depend on the thread count.
  const nparts = V * KK * C < MIN_PARALLEL_MACS ? 1 : Math.max(1, Math.min(FILTER_GRAD_PARTS, Math.floor(V / 64)));
  const parts = mallocScratch(be, nparts * KK * C * 4);
  try {
    parallelFor(be, 'depthwise.dw_rows_filter_grad', nparts, [heapAddress(be, x), heapAddress(be, nbr), heapAddress(be, dy), parts, V, C, KK]);
    const n = KK * C;
    parallelFor(be, 'depthwise.dw_sum_parts', Math.max(1, Math.min(kernelThreads(be), Math.floor(n / 4096))), [parts, heapAddress(be, out), nparts, n]);
  } catch (e) {
    be.disposeData(out.dataId);
    throw e;
  } finally {
    freeScratch(be, parts);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// The forward kernels' registration
// ---------------------------------------------------------------------------------------------------------

let originalForward: tf.KernelFunc | null = null;
let originalFused: tf.KernelFunc | null = null;

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

function forwardInfo(x: tf.TensorInfo, filter: tf.TensorInfo, attrs: tf.NamedAttrMap | undefined): ConvInfo | null {
  const a = (attrs ?? {}) as unknown as tf.DepthwiseConv2dNativeAttrs;
  if (x.shape.length !== 4 || filter.shape.length !== 4) return null;
  return tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filter.shape as [number, number, number, number],
    a.strides,
    a.dilations ?? 1,
    a.pad,
    a.dimRoundingMode,
    true,
    tf.backend_util.convertConv2DDataFormat(a.dataFormat ?? 'NHWC'),
  );
}

function depthwiseConv2dNative(args: KernelArgs): tf.TensorInfo {
  const { x, filter } = args.inputs as { x: tf.TensorInfo; filter: tf.TensorInfo };
  const info = forwardInfo(x, filter, args.attrs);
  if (!info || !depthwiseKernelSupports(info) || !backendOk(args.backend, x, filter)) {
    return originalForward!(args as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  }
  return wasmDepthwiseConv2d(args.backend, x, filter, null, info);
}

function fusedDepthwiseConv2d(args: KernelArgs): tf.TensorInfo {
  const { x, filter, bias, preluActivationWeights } = args.inputs as {
    x: tf.TensorInfo;
    filter: tf.TensorInfo;
    bias?: tf.TensorInfo;
    preluActivationWeights?: tf.TensorInfo;
  };
  const a = (args.attrs ?? {}) as unknown as tf.FusedDepthwiseConv2DAttrs;
  const info = forwardInfo(x, filter, args.attrs);
  const plain = (a.activation ?? 'linear') === 'linear' && !preluActivationWeights;
  const biasOk = !bias || (bias.shape.length === 1 && bias.shape[0] === info?.outChannels);
  if (!info || !plain || !biasOk || !depthwiseKernelSupports(info) || !backendOk(args.backend, x, filter, bias)) {
    return originalFused!(args as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  }
  return wasmDepthwiseConv2d(args.backend, x, filter, bias ?? null, info);
}

function override(name: string, fn: (args: KernelArgs) => tf.TensorInfo): tf.KernelFunc | null {
  const current = tf.getKernel(name, 'wasm');
  if (!current || (current.kernelFunc as { softbias?: boolean }).softbias) return null;
  const kernelFunc = fn as unknown as tf.KernelFunc & { softbias?: boolean };
  kernelFunc.softbias = true;
  tf.unregisterKernel(name, 'wasm');
  tf.registerKernel({ ...current, kernelName: name, backendName: 'wasm', kernelFunc });
  return current.kernelFunc;
}

/**
 * Route tfjs-backend-wasm's `DepthwiseConv2dNative` and `FusedDepthwiseConv2D` through softbias' kernels for the
 * supported cases (idempotent). Returns true when this call registered them.
 */
export function registerWasmDepthwiseConv2d(): boolean {
  if (typeof WebAssembly === 'undefined') return false;
  const f = override(tf.DepthwiseConv2dNative, depthwiseConv2dNative);
  if (f) originalForward = f;
  const g = override(tf.FusedDepthwiseConv2D, fusedDepthwiseConv2d);
  if (g) originalFused = g;
  if (f) {
    for (const [kernelName, fn] of [
      [ROW_DEPTHWISE_KERNEL, rowDepthwise],
      [ROW_DEPTHWISE_FILTER_GRAD_KERNEL, rowDepthwiseFilterGrad],
    ] as const) {
      if (!tf.getKernel(kernelName, 'wasm')) tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: fn as unknown as tf.KernelFunc });
    }
  }
  return f !== null;
}

/** tfjs-backend-wasm's own `DepthwiseConv2dNative` (XNNPACK), or null before registration (tests, benchmarks). */
export function originalWasmDepthwiseConv2d(): tf.KernelFunc | null {
  return originalForward;
}

/** tfjs-backend-wasm's own `FusedDepthwiseConv2D`, or null before registration. */
export function originalWasmFusedDepthwiseConv2d(): tf.KernelFunc | null {
  return originalFused;
}
