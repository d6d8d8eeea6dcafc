/**
 * Convolution gradient kernels for the wasm backend (tfjs-backend-wasm 4.22 has none), so models with depth-wise
 * (and general) convolutions train on wasm:
 *
 * - `DepthwiseConv2dNativeBackpropInput`  (gradient of a depth-wise conv w.r.t. its input)
 * - `DepthwiseConv2dNativeBackpropFilter` (… w.r.t. its filter)
 * - `Conv2DBackpropFilter`                (gradient of a regular conv w.r.t. its filter)
 *
 * Depth-wise, one route per gradient: channel multiplier 1, stride 1, dilation 1 (ConvNeXt's 7×7, the token
 * mixers' 3×3) run on softbias' SIMD kernels (depthwise.ts / depthwise.c). The other cases keep the earlier
 * code, reachable directly as `legacyDepthwiseBackpropInput/Filter` for tests and benchmarks: with multiplier 1
 * the gradients are themselves depth-wise convolutions on the backend's own XNNPACK kernel (the input gradient,
 * stride 1: dy with the flipped filter; the filter gradient: each zero-padded image with its dy as the filter);
 * otherwise JavaScript loops directly on the wasm heap (no copies in or out: inputs are viewed in place, the
 * output is allocated with the backend's own allocator and written once), innermost loop along the contiguous
 * channel axis, sums in float64. Any stride, dilation, padding (`same`, `valid`, a number or explicit) and
 * channel multiplier; channels-last data only.
 */
import * as tf from '@tensorflow/tfjs-core';
import { depthwiseKernelSupports, originalWasmDepthwiseConv2d, wasmDepthwiseFilterGrad, wasmDepthwiseInputGrad } from './depthwise.js';
import { kernelsAvailable } from './runtime.js';

/** The parts of tfjs-backend-wasm's `BackendWasm` these kernels use (it is not exported as a type). */
interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

type ConvInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;

function heapF32(backend: WasmHeapBackend, t: tf.TensorInfo, what: string): Float32Array {
  if (t.dtype !== 'float32') throw new Error(`${what}: expected a float32 tensor, got ${t.dtype}`);
  return backend.typedArrayFromHeap(t) as Float32Array;
}

function asBackend(b: unknown): WasmHeapBackend {
  const be = b as Partial<WasmHeapBackend>;
  if (typeof be.makeOutput !== 'function' || typeof be.typedArrayFromHeap !== 'function' || typeof be.disposeData !== 'function') {
    throw new Error('softbias wasm conv backprop kernels: the active backend is not tfjs-backend-wasm');
  }
  return be as WasmHeapBackend;
}

function checkChannelsLast(info: ConvInfo, kernel: string): void {
  if (info.dataFormat !== 'channelsLast') {
    throw new Error(`${kernel} (softbias wasm kernel): only channels-last (NHWC) data is supported`);
  }
}

/** The range [lo, hi) of output rows whose tap `k` lands inside the input: 0 ≤ o·s − pad + k·d < n. */
function validOutRange(n: number, out: number, stride: number, pad: number, tap: number): [number, number] {
  const lo = Math.max(0, Math.ceil((pad - tap) / stride));
  const hi = Math.min(out, Math.floor((n - 1 + pad - tap) / stride) + 1);
  return [lo, Math.max(lo, hi)];
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

/**
 * The convolution both depth-wise gradients describe (input [B, H, W, C], filter [k, k, C, 1]), when softbias'
 * kernel runs it and `dy` has its output shape; else null (the legacy route).
 */
function kernelConvInfo(
  inShape: [number, number, number, number],
  filterShape: [number, number, number, number],
  attrs: { strides: number | [number, number]; dilations?: number | [number, number]; pad: unknown; dimRoundingMode?: 'floor' | 'round' | 'ceil' },
  dy: tf.TensorInfo,
): ConvInfo | null {
  const info = tf.backend_util.computeConv2DInfo(
    inShape,
    filterShape,
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad as Parameters<typeof tf.backend_util.computeConv2DInfo>[4],
    attrs.dimRoundingMode,
    true,
  );
  const fits = dy.shape.length === 4 && dy.shape[0] === info.batchSize && dy.shape[1] === info.outHeight && dy.shape[2] === info.outWidth && dy.shape[3] === info.outChannels;
  return fits && depthwiseKernelSupports(info) ? info : null;
}

/** The depth-wise input gradient: softbias' kernel where it applies, else the legacy route. */
function depthwiseBackpropInput(args: KernelArgs): tf.TensorInfo {
  const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const attrs = args.attrs as unknown as tf.DepthwiseConv2dNativeBackpropInputAttrs;
  if (dy.dtype === 'float32' && filter.dtype === 'float32' && filter.shape.length === 4 && kernelsAvailable(args.backend)) {
    const info = kernelConvInfo(attrs.inputShape, filter.shape as [number, number, number, number], attrs, dy);
    if (info) return wasmDepthwiseInputGrad(args.backend, dy, filter, info);
  }
  return legacyDepthwiseBackpropInput(args);
}

/** The depth-wise filter gradient: softbias' kernel where it applies, else the legacy route. */
function depthwiseBackpropFilter(args: KernelArgs): tf.TensorInfo {
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const attrs = args.attrs as unknown as tf.DepthwiseConv2dNativeBackpropFilterAttrs;
  if (x.dtype === 'float32' && dy.dtype === 'float32' && x.shape.length === 4 && kernelsAvailable(args.backend)) {
    const info = kernelConvInfo(x.shape as [number, number, number, number], attrs.filterShape, attrs, dy);
    if (info) return wasmDepthwiseFilterGrad(args.backend, x, dy, info);
  }
  return legacyDepthwiseBackpropFilter(args);
}

/** The backend's own (XNNPACK) depth-wise convolution, bypassing softbias' override. */
function xnnpackDepthwise(): tf.KernelFunc | null {
  return originalWasmDepthwiseConv2d() ?? tf.getKernel(tf.DepthwiseConv2dNative, 'wasm')?.kernelFunc ?? null;
}

/**
 * The legacy input gradient (any case):
 * dx[b, iy, ix, c] = Σ_{ky, kx, m} dy[b, oy, ox, c·M + m] · w[ky, kx, c, m], with iy = oy·sh − top + ky·dh
 * (and the same for x). Computed per input pixel (a gather, no scatter), channels innermost.
 */
export function legacyDepthwiseBackpropInput(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const backend = asBackend(args.backend);
  const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const attrs = args.attrs as unknown as tf.DepthwiseConv2dNativeBackpropInputAttrs;
  const info = tf.backend_util.computeConv2DInfo(
    attrs.inputShape,
    filter.shape as [number, number, number, number],
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad,
    attrs.dimRoundingMode,
    true,
  );
  checkChannelsLast(info, 'DepthwiseConv2dNativeBackpropInput');
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outHeight: Ho, outWidth: Wo } = info;
  const { filterHeight: KH, filterWidth: KW, strideHeight: sh, strideWidth: sw } = info;
  const { dilationHeight: dh, dilationWidth: dw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const M = info.outChannels / C;
  const CO = info.outChannels;
  if (dy.shape[1] !== Ho || dy.shape[2] !== Wo || dy.shape[3] !== CO) {
    throw new Error(`DepthwiseConv2dNativeBackpropInput: dy [${dy.shape}] does not fit [${B}, ${Ho}, ${Wo}, ${CO}]`);
  }

  // Stride 1, multiplier 1 (ConvNeXt's case): dx is the depth-wise convolution of dy with the spatially
  // flipped filter, padded so the output is H × W. Run it on the backend's own (XNNPACK) kernel: ≈ 2.4× faster
  // than the loops below.
  const padBottom = info.padInfo.bottom;
  const padRight = info.padInfo.right;
  const flip = [(KH - 1) * dh - top, (KH - 1) * dh - padBottom, (KW - 1) * dw - left, (KW - 1) * dw - padRight];
  const dwKernel = xnnpackDepthwise();
  if (sh === 1 && sw === 1 && M === 1 && dwKernel && flip.every((p) => p >= 0)) {
    const flipped = backend.makeOutput([KH, KW, C, 1], 'float32');
    const wv = heapF32(backend, filter, 'DepthwiseConv2dNativeBackpropInput filter');
    const fv = heapF32(backend, flipped, 'DepthwiseConv2dNativeBackpropInput flipped filter');
    for (let ky = 0; ky < KH; ky++)
      for (let kx = 0; kx < KW; kx++) {
        const src = (ky * KW + kx) * C;
        const dst = ((KH - 1 - ky) * KW + (KW - 1 - kx)) * C;
        for (let c = 0; c < C; c++) fv[dst + c] = wv[src + c]!;
      }
    try {
      const attrsFlip = {
        strides: [1, 1],
        pad: [[0, 0], [flip[0], flip[1]], [flip[2], flip[3]], [0, 0]],
        dilations: [dh, dw],
      } as unknown as tf.NamedAttrMap;
      return dwKernel({ inputs: { x: dy, filter: flipped }, backend: args.backend as tf.KernelBackend, attrs: attrsFlip }) as tf.TensorInfo;
    } finally {
      backend.disposeData(flipped.dataId);
    }
  }

  const out = backend.makeOutput([B, H, W, C], 'float32');
  // Views after the allocation (a heap growth would detach earlier ones).
  const dyv = heapF32(backend, dy, 'DepthwiseConv2dNativeBackpropInput dy');
  const wv = heapF32(backend, filter, 'DepthwiseConv2dNativeBackpropInput filter');
  const dxv = heapF32(backend, out, 'DepthwiseConv2dNativeBackpropInput output');
  const acc = new Float64Array(C);
  // Per input row/column: the (filter tap, output index) pairs that read it.
  const rowTaps = tapTable(H, Ho, KH, sh, dh, top);
  const colTaps = tapTable(W, Wo, KW, sw, dw, left);

  for (let b = 0; b < B; b++) {
    for (let iy = 0; iy < H; iy++) {
      const rt = rowTaps[iy]!;
      for (let ix = 0; ix < W; ix++) {
        const ct = colTaps[ix]!;
        acc.fill(0);
        for (let r = 0; r < rt.length; r += 2) {
          const ky = rt[r]!;
          const oy = rt[r + 1]!;
          for (let q = 0; q < ct.length; q += 2) {
            const kx = ct[q]!;
            const ox = ct[q + 1]!;
            const dyOff = ((b * Ho + oy) * Wo + ox) * CO;
            const wOff = (ky * KW + kx) * CO;
            if (M === 1) {
              for (let c = 0; c < C; c++) acc[c] += dyv[dyOff + c]! * wv[wOff + c]!;
            } else {
              for (let c = 0; c < C; c++) {
                let s = 0;
                const base = c * M;
                for (let m = 0; m < M; m++) s += dyv[dyOff + base + m]! * wv[wOff + base + m]!;
                acc[c] += s;
              }
            }
          }
        }
        const o = ((b * H + iy) * W + ix) * C;
        for (let c = 0; c < C; c++) dxv[o + c] = acc[c]!;
      }
    }
  }
  return out;
}

/** For each input index i: flat pairs (tap k, output index o) with o·s − pad + k·d = i, 0 ≤ o < out. */
function tapTable(n: number, out: number, taps: number, stride: number, dil: number, pad: number): Int32Array[] {
  const table: Int32Array[] = [];
  for (let i = 0; i < n; i++) {
    const pairs: number[] = [];
    for (let k = 0; k < taps; k++) {
      const t = i + pad - k * dil;
      if (t < 0 || t % stride !== 0) continue;
      const o = t / stride;
      if (o < out) pairs.push(k, o);
    }
    table.push(Int32Array.from(pairs));
  }
  return table;
}

/**
 * The legacy filter gradient (any case):
 * dw[ky, kx, c, m] = Σ_{b, oy, ox} x[b, oy·sh − top + ky·dh, ox·sw − left + kx·dw, c] · dy[b, oy, ox, c·M + m].
 */
export function legacyDepthwiseBackpropFilter(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const backend = asBackend(args.backend);
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const attrs = args.attrs as unknown as tf.DepthwiseConv2dNativeBackpropFilterAttrs;
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterShape,
    attrs.strides,
    attrs.dilations ?? 1,
    attrs.pad,
    attrs.dimRoundingMode,
    true,
  );
  checkChannelsLast(info, 'DepthwiseConv2dNativeBackpropFilter');
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outHeight: Ho, outWidth: Wo } = info;
  const { filterHeight: KH, filterWidth: KW, strideHeight: sh, strideWidth: sw } = info;
  const { dilationHeight: dh, dilationWidth: dw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const CO = info.outChannels;
  const M = CO / C;
  if (dy.shape[0] !== B || dy.shape[1] !== Ho || dy.shape[2] !== Wo || dy.shape[3] !== CO) {
    throw new Error(`DepthwiseConv2dNativeBackpropFilter: dy [${dy.shape}] does not fit [${B}, ${Ho}, ${Wo}, ${CO}]`);
  }

  const dwKernel = xnnpackDepthwise();
  if (M === 1 && dwKernel) {
    return filterGradXnnpack(backend, args.backend as tf.KernelBackend, dwKernel, x, dy, info);
  }

  const out = backend.makeOutput([KH, KW, C, M], 'float32');
  const xv = heapF32(backend, x, 'DepthwiseConv2dNativeBackpropFilter x');
  const dyv = heapF32(backend, dy, 'DepthwiseConv2dNativeBackpropFilter dy');
  const dwv = heapF32(backend, out, 'DepthwiseConv2dNativeBackpropFilter output');
  const acc = new Float64Array(CO);

  for (let ky = 0; ky < KH; ky++) {
    const [oy0, oy1] = validOutRange(H, Ho, sh, top, ky * dh);
    for (let kx = 0; kx < KW; kx++) {
      const [ox0, ox1] = validOutRange(W, Wo, sw, left, kx * dw);
      acc.fill(0);
      for (let b = 0; b < B; b++) {
        for (let oy = oy0; oy < oy1; oy++) {
          const iy = oy * sh - top + ky * dh;
          for (let ox = ox0; ox < ox1; ox++) {
            const ix = ox * sw - left + kx * dw;
            const xOff = ((b * H + iy) * W + ix) * C;
            const dyOff = ((b * Ho + oy) * Wo + ox) * CO;
            if (M === 1) {
              for (let c = 0; c < C; c++) acc[c] += xv[xOff + c]! * dyv[dyOff + c]!;
            } else {
              for (let c = 0; c < C; c++) {
                const xc = xv[xOff + c]!;
                const base = c * M;
                for (let m = 0; m < M; m++) acc[base + m] += xc * dyv[dyOff + base + m]!;
              }
            }
          }
        }
      }
      const o = (ky * KW + kx) * CO;
      for (let j = 0; j < CO; j++) dwv[o + j] = acc[j]!;
    }
  }
  return out;
}

/**
 * Multiplier 1: per image, dw[ky, kx, c] = Σ_{oy, ox} xp[oy·sh + ky·dh, ox·sw + kx·dw, c] · dy[oy, ox, c] is a
 * depth-wise convolution of the zero-padded image xp with dy as the filter (filter dilation = the forward
 * stride, stride = the forward dilation), whose KH × KW output is the gradient: run on the backend's own
 * (XNNPACK) kernel, ≈ 2× faster than the loops; images are summed in float64.
 */
function filterGradXnnpack(
  backend: WasmHeapBackend,
  kernelBackend: tf.KernelBackend,
  dwConv: tf.KernelFunc,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  info: ConvInfo,
): tf.TensorInfo {
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outHeight: Ho, outWidth: Wo } = info;
  const { filterHeight: KH, filterWidth: KW, strideHeight: sh, strideWidth: sw } = info;
  const { dilationHeight: dh, dilationWidth: dw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  // The padded image, exactly as large as the taps reach.
  const Hp = (Ho - 1) * sh + (KH - 1) * dh + 1;
  const Wp = (Wo - 1) * sw + (KW - 1) * dw + 1;
  const acc = new Float64Array(KH * KW * C);
  const temps: tf.TensorInfo[] = [];
  try {
    for (let b = 0; b < B; b++) {
      const xp = backend.makeOutput([1, Hp, Wp, C], 'float32');
      temps.push(xp);
      const filt = backend.makeOutput([Ho, Wo, C, 1], 'float32');
      temps.push(filt);
      const xv = heapF32(backend, x, 'DepthwiseConv2dNativeBackpropFilter x');
      const dyv = heapF32(backend, dy, 'DepthwiseConv2dNativeBackpropFilter dy');
      const xpv = heapF32(backend, xp, 'DepthwiseConv2dNativeBackpropFilter padded x');
      xpv.fill(0);
      const c0 = Math.max(0, left);
      const c1 = Math.min(Wp, W + left);
      for (let r = 0; r < Hp; r++) {
        const iy = r - top;
        if (iy < 0 || iy >= H || c1 <= c0) continue;
        const src = ((b * H + iy) * W + (c0 - left)) * C;
        xpv.set(xv.subarray(src, src + (c1 - c0) * C), (r * Wp + c0) * C);
      }
      heapF32(backend, filt, 'DepthwiseConv2dNativeBackpropFilter dy filter').set(dyv.subarray(b * Ho * Wo * C, (b + 1) * Ho * Wo * C));
      const attrs = { strides: [dh, dw], pad: 'valid', dilations: [sh, sw] } as unknown as tf.NamedAttrMap;
      const g = dwConv({ inputs: { x: xp, filter: filt }, backend: kernelBackend, attrs }) as tf.TensorInfo;
      temps.push(g);
      if (g.shape[1] !== KH || g.shape[2] !== KW) {
        throw new Error(`DepthwiseConv2dNativeBackpropFilter: internal shape [${g.shape}], expected [1, ${KH}, ${KW}, ${C}]`);
      }
      const gv = heapF32(backend, g, 'DepthwiseConv2dNativeBackpropFilter partial');
      for (let i = 0; i < acc.length; i++) acc[i] += gv[i]!;
      for (const t of temps.splice(0)) backend.disposeData(t.dataId);
    }
  } finally {
    for (const t of temps) backend.disposeData(t.dataId);
  }
  const out = backend.makeOutput([KH, KW, C, 1], 'float32');
  heapF32(backend, out, 'DepthwiseConv2dNativeBackpropFilter output').set(acc);
  return out;
}

/**
 * Regular conv filter gradient: dw[ky, kx, ci, co] = Σ_{b, oy, ox} x[b, iy, ix, ci] · dy[b, oy, ox, co]
 * (dilation 1, as tfjs' conv2d gradient requires).
 */
function conv2dBackpropFilter(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}): tf.TensorInfo {
  const backend = asBackend(args.backend);
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const attrs = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  const dataFormat = tf.backend_util.convertConv2DDataFormat(attrs.dataFormat ?? 'NHWC');
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterShape,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    dataFormat,
  );
  checkChannelsLast(info, 'Conv2DBackpropFilter');
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: CI, outHeight: Ho, outWidth: Wo } = info;
  const { filterHeight: KH, filterWidth: KW, strideHeight: sh, strideWidth: sw, outChannels: CO } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  if (dy.shape[0] !== B || dy.shape[1] !== Ho || dy.shape[2] !== Wo || dy.shape[3] !== CO) {
    throw new Error(`Conv2DBackpropFilter: dy [${dy.shape}] does not fit [${B}, ${Ho}, ${Wo}, ${CO}]`);
  }

  const out = backend.makeOutput([KH, KW, CI, CO], 'float32');
  const xv = heapF32(backend, x, 'Conv2DBackpropFilter x');
  const dyv = heapF32(backend, dy, 'Conv2DBackpropFilter dy');
  const dwv = heapF32(backend, out, 'Conv2DBackpropFilter output');
  const acc = new Float64Array(CI * CO);

  for (let ky = 0; ky < KH; ky++) {
    const [oy0, oy1] = validOutRange(H, Ho, sh, top, ky);
    for (let kx = 0; kx < KW; kx++) {
      const [ox0, ox1] = validOutRange(W, Wo, sw, left, kx);
      acc.fill(0);
      for (let b = 0; b < B; b++) {
        for (let oy = oy0; oy < oy1; oy++) {
          const iy = oy * sh - top + ky;
          for (let ox = ox0; ox < ox1; ox++) {
            const ix = ox * sw - left + kx;
            const xOff = ((b * H + iy) * W + ix) * CI;
            const dyOff = ((b * Ho + oy) * Wo + ox) * CO;
            for (let ci = 0; ci < CI; ci++) {
              const xc = xv[xOff + ci]!;
              if (xc === 0) continue;
              const row = ci * CO;
              for (let co = 0; co < CO; co++) acc[row + co] += xc * dyv[dyOff + co]!;
            }
          }
        }
      }
      const o = (ky * KW + kx) * CI * CO;
      for (let j = 0; j < CI * CO; j++) dwv[o + j] = acc[j]!;
    }
  }
  return out;
}

const KERNELS: { kernelName: string; kernelFunc: tf.KernelFunc }[] = [
  { kernelName: tf.DepthwiseConv2dNativeBackpropInput, kernelFunc: depthwiseBackpropInput as unknown as tf.KernelFunc },
  { kernelName: tf.DepthwiseConv2dNativeBackpropFilter, kernelFunc: depthwiseBackpropFilter as unknown as tf.KernelFunc },
  { kernelName: tf.Conv2DBackpropFilter, kernelFunc: conv2dBackpropFilter as unknown as tf.KernelFunc },
];

/** Kernel names this module provides for the wasm backend. */
export const WASM_BACKPROP_KERNELS: readonly string[] = KERNELS.map((k) => k.kernelName);

/**
 * Register the kernels for the `wasm` backend where tfjs-backend-wasm has none (idempotent; a kernel the
 * installed tfjs-backend-wasm already provides is left alone). Returns the names registered by this call.
 */
export function registerWasmKernels(): string[] {
  const added: string[] = [];
  for (const k of KERNELS) {
    if (tf.getKernel(k.kernelName, 'wasm')) continue;
    tf.registerKernel({ kernelName: k.kernelName, backendName: 'wasm', kernelFunc: k.kernelFunc });
    added.push(k.kernelName);
  }
  return added;
}
