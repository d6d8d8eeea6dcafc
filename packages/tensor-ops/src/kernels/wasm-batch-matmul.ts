/**
 * softbias' `BatchMatMul` for tfjs-backend-wasm 4.22: every float32 product (any rank ≥ 2, any transpose flags,
 * NumPy-broadcast batch dimensions) runs on the packed, register-blocked WebAssembly SIMD GEMM of gemm.c,
 * in place on the backend's heap, on the kernel worker pool's threads (`parallelFor`).
 *
 * tfjs-backend-wasm itself sends batched or flagged products to a scalar C++ loop (~0.35 GMAC/s here) and only a
 * single flag-free 2-D product to XNNPACK. Here transposeA / transposeB are strides (never an explicit Transpose):
 * B is packed once per call into 8-column panels (once in all when it is broadcast over the batch; read in place
 * instead for a row-major B with N a multiple of 8 and fewer than 128 rows of A), A is packed
 * 4 rows at a time on the kernel's stack, and a 4 × 8 register tile runs over each panel. See gemm.c for the
 * blocking and the summation order.
 *
 * Sums: float32, one multiply and one add per term in increasing k (no FMA), from +0: the same order as a plain
 * loop, whatever the thread count or task split, so 1 and 2 threads give bit-identical results. Only a long K
 * (K ≥ 2048 with a tiny output or K ≥ 8·max(M, N): weight gradients) is split into chunks chosen from the shape
 * alone (again independent of the thread count) whose partial sums are added in chunk order (`gemmKSplit`).
 *
 * Routing: every float32 product runs here when the GEMM is available (tfjs-backend-wasm with SIMD); other
 * dtypes and a backend without the kernels go to the original kernel (`originalWasmBatchMatMul`, kept for
 * tests and benchmarks). Measured against XNNPACK on the models' flag-free linears at 1 and 2 threads (see
 * `wasmBatchMatMulRoute`).
 */
import * as tf from '@tensorflow/tfjs-core';
import { plain as gemmModuleBase64 } from '../generated/kernels/gemm.js';
import { freeScratch, heapAddress, kernel, kernelThreads, mallocScratch, parallelFor, type WasmHeapBackend } from './runtime.js';

/** Register tile of gemm.c: MR rows × NR columns. */
const MR = 4;
const NR = 8;
/** gemm_f32_ksplit's chunks are multiples of gemm.c's k block. */
const KC = 256;
/** Units of work per thread a product is cut into (more: better balance, less reuse of packed B per unit). */
let UNITS_PER_THREAD = 8;

/** Units per thread the GEMM cuts a product into (default 8; tests use more to stress the pool). Results do not change. */
export function setGemmUnitsPerThread(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`setGemmUnitsPerThread: ${n}`);
  UNITS_PER_THREAD = n;
}

/** For each output batch index, the flat batch index into an operand with batch dims `dims` (NumPy rules). */
function batchIndexMap(outDims: number[], dims: number[]): Int32Array {
  const total = tf.util.sizeFromShape(outDims);
  const map = new Int32Array(total);
  const lead = outDims.length - dims.length;
  const strides = new Array<number>(dims.length).fill(0);
  for (let d = dims.length - 1, s = 1; d >= 0; d--) {
    strides[d] = dims[d] === 1 ? 0 : s;
    s *= dims[d]!;
  }
  for (let o = 0; o < total; o++) {
    let rem = o;
    let idx = 0;
    for (let d = outDims.length - 1; d >= lead; d--) {
      const size = outDims[d]!;
      const coord = rem % size;
      rem = (rem - coord) / size;
      idx += coord * strides[d - lead]!;
    }
    map[o] = idx;
  }
  return map;
}

/**
 * Which kernel runs a float32 product: 'simd' (softbias' GEMM) or 'original' (tfjs-backend-wasm's own kernel,
 * XNNPACK for a flag-free 2-D product). Every float32 product goes to the GEMM: measured on the models' flag-free
 * linears at 1 and 2 threads it beats XNNPACK (which repacks its weights on every call here).
 */
export function wasmBatchMatMulRoute(
  aShape: number[],
  bShape: number[],
  transposeA: boolean,
  transposeB: boolean,
  threads = 1,
): 'simd' | 'original' {
  void aShape, bShape, transposeA, transposeB, threads;
  return 'simd';
}

/**
 * How the products are cut into units (row blocks of `mb` rows × panel blocks of `pb` panels) for `threads`
 * threads: about 8 units per thread, whole products when the batch alone gives that many, cutting the longer
 * side of C first (a unit reuses its B block over its rows and its A rows over its panels). The split never
 * changes the results (each C element is summed the same way in any unit).
 */
export function gemmBlocking(batch: number, M: number, N: number, threads: number): { mb: number; pb: number; units: number } {
  const tilesM = Math.ceil(M / MR);
  const np = Math.ceil(N / NR);
  const want = threads > 1 ? UNITS_PER_THREAD * threads : 1;
  let rowBlocks = 1;
  let panelBlocks = 1;
  if (batch < want) {
    const per = Math.ceil(want / batch);
    if (M >= N) {
      rowBlocks = Math.min(tilesM, per);
      panelBlocks = Math.min(np, Math.ceil(per / rowBlocks));
    } else {
      panelBlocks = Math.min(np, per);
      rowBlocks = Math.min(tilesM, Math.ceil(per / panelBlocks));
    }
  }
  const mb = MR * Math.ceil(tilesM / rowBlocks);
  const pb = Math.ceil(np / panelBlocks);
  return { mb, pb, units: batch * Math.ceil(M / mb) * Math.ceil(np / pb) };
}

/**
 * K chunks for a long K (decided by the shape alone, so by no thread count): 1 = no split. Split when K ≥ 2048
 * and either the output has fewer than 16 register tiles or K ≥ 8·max(M, N) (weight gradients xᵀ·dy: a task
 * then streams only its chunk of A and B once, instead of every task streaming all of one of them).
 */
export function gemmKSplit(batch: number, M: number, N: number, K: number): { chunks: number; chunk: number } {
  const tiles = batch * Math.ceil(M / MR) * Math.ceil(N / NR);
  if (K < 2048 || (tiles >= 16 && K < 8 * Math.max(M, N))) return { chunks: 1, chunk: K };
  const chunks = Math.min(32, Math.floor(K / 1024));
  const chunk = KC * Math.ceil(K / chunks / KC);
  return { chunks: Math.ceil(K / chunk), chunk };
}

let original: tf.KernelFunc | null = null;

function batchMatMul(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA = false, transposeB = false } = (args.attrs ?? {}) as unknown as { transposeA?: boolean; transposeB?: boolean };
  const delegate = () => original!(args as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2) return delegate();
  const backend = args.backend as WasmHeapBackend;
  const threads = kernelThreads(backend);
  if (wasmBatchMatMulRoute(a.shape, b.shape, transposeA, transposeB, threads) === 'original') return delegate();
  if (!kernel(backend, 'gemm.gemm_f32')) return delegate();
  return gemm(backend, a, b, transposeA, transposeB, null);
}

/** The fused epilogue of a product: a bias row added to C (heap address), then GELU when `act` is 1. */
interface Epilogue {
  bias: number;
  act: 0 | 1;
}

/** C = op(A)·op(B) (+ epilogue) on softbias' GEMM; the caller checked dtypes, ranks and that the GEMM is bound. */
function gemm(backend: WasmHeapBackend, a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean, epi: Epilogue | null): tf.TensorInfo {
  const threads = kernelThreads(backend);
  const ra = a.shape.length;
  const rb = b.shape.length;
  const M = transposeA ? a.shape[ra - 1]! : a.shape[ra - 2]!;
  const Ka = transposeA ? a.shape[ra - 2]! : a.shape[ra - 1]!;
  const Kb = transposeB ? b.shape[rb - 1]! : b.shape[rb - 2]!;
  const N = transposeB ? b.shape[rb - 2]! : b.shape[rb - 1]!;
  if (Ka !== Kb) {
    throw new Error(
      `Error in matMul: inner shapes (${Ka}) and (${Kb}) of Tensors with shapes ${a.shape} and ${b.shape} and ` +
        `transposeA=${transposeA} and transposeB=${transposeB} must match.`,
    );
  }
  const K = Ka;
  const aDims = a.shape.slice(0, -2);
  const bDims = b.shape.slice(0, -2);
  const outDims = tf.broadcast_util.assertAndGetBroadcastShape(aDims, bDims);
  const batch = tf.util.sizeFromShape(outDims);
  const out = backend.makeOutput([...outDims, M, N], 'float32');
  if (batch === 0 || M === 0 || N === 0) return out;
  if (K === 0) {
    (backend.typedArrayFromHeap(out) as Float32Array).fill(0);
    return out;
  }
  const aBatch = tf.util.sizeFromShape(aDims);
  const bBatch = tf.util.sizeFromShape(bDims);
  const np = Math.ceil(N / NR);
  const panelFloats = np * K * NR;
  // B read in place (no packing pass) when it is row-major with whole panels and A has few rows: packing would
  // cost about as much as the product there (weight gradients xᵀ·dy: M = channels, K = pixels).
  const direct = !transposeB && N % NR === 0 && M < 128;
  // Operand batch q of output batch o: identity, broadcast (one matrix) or a table.
  const mapA = aBatch === batch || aBatch === 1 ? null : batchIndexMap(outDims, aDims);
  const mapB = bBatch === batch || bBatch === 1 ? null : batchIndexMap(outDims, bDims);
  const { chunks, chunk } = gemmKSplit(batch, M, N, K);
  // One scratch block: packed B | A's table | B's table | K-split partial sums.
  const packedBytes = direct ? 0 : bBatch * panelFloats * 4;
  const mapBytes = (mapA ? 4 * batch : 0) + (mapB ? 4 * batch : 0);
  const partBytes = chunks > 1 ? chunks * batch * M * N * 4 : 0;
  const scratch = mallocScratch(backend, Math.max(16, packedBytes + mapBytes + partBytes));
  try {
    const packed = scratch;
    const mapAAddr = mapA ? packed + packedBytes : 0;
    const mapBAddr = mapB ? packed + packedBytes + (mapA ? 4 * batch : 0) : 0;
    const part = packed + packedBytes + mapBytes;
    // Addresses after every allocation (growing the heap keeps offsets valid).
    const aAddr = heapAddress(backend, a);
    const bAddr = heapAddress(backend, b);
    const cAddr = heapAddress(backend, out);
    const heap = new Int32Array(backend.typedArrayFromHeap(out).buffer);
    if (mapA) heap.set(mapA, mapAAddr >>> 2);
    if (mapB) heap.set(mapB, mapBAddr >>> 2);
    // A's element (i, k) at i·sai + k·sak floats; B's (k, j) at k·sbk + j·sbn.
    const [sai, sak] = transposeA ? [1, M] : [K, 1];
    const [sbk, sbn] = transposeB ? [1, K] : [N, 1];
    if (!direct) {
      const packTasks = Math.min(bBatch * np, threads > 1 ? 8 * threads : 1);
      parallelFor(backend, 'gemm.gemm_pack_b', packTasks, [bAddr, packed, bBatch, K, N, sbk, sbn, K * N]);
    }
    const bp = direct ? bAddr : packed;
    const [bstep, pstep] = direct ? [N, NR] : [NR, K * NR];
    const sab = aBatch === 1 ? 0 : M * K;
    const sbp = bBatch === 1 ? 0 : direct ? K * N : panelFloats;
    const units = batch * chunks;
    const { mb, pb, units: blocks } = gemmBlocking(units, M, N, threads);
    const ntasks = Math.min(blocks, 4095);
    if (chunks === 1) {
      parallelFor(backend, 'gemm.gemm_f32', ntasks, [
        aAddr, bp, cAddr, mapAAddr, mapBAddr, batch, M, N, K, sai, sak, sab, sbp, mb, pb, bstep, pstep, epi?.bias ?? 0, epi?.act ?? 0,
      ]);
    } else {
      if (epi) throw new Error('softbias GEMM: a fused epilogue needs an unsplit K (the caller checks gemmKSplit)');
      parallelFor(backend, 'gemm.gemm_f32_ksplit', ntasks, [
        aAddr, bp, part, mapAAddr, mapBAddr, batch, M, N, K, sai, sak, sab, sbp, mb, pb, bstep, pstep, chunk,
      ]);
      const len = batch * M * N;
      parallelFor(backend, 'gemm.gemm_reduce', Math.min(Math.ceil(len / 4096), threads > 1 ? 4 * threads : 1), [part, cAddr, len, chunks]);
    }
    return out;
  } catch (e) {
    backend.disposeData(out.dataId);
    throw e;
  } finally {
    freeScratch(backend, scratch);
  }
}

export const LINEAR_KERNEL = 'SoftbiasLinear';

/**
 * `SoftbiasLinear`: y = x·w (+ bias), then GELU when `activation` is 'gelu', for x [..., K] (M rows), w [K, N], bias [N] (optional; all
 * float32) in one GEMM call: the bias and GELU are applied per register tile as it is stored (gemm.c's epilogue),
 * the same float32 operations as BatchMatMul + Add (+ SoftbiasGelu), so the result is bit-identical to the
 * unfused ops. Only for an unsplit K (`fusedLinearApplies`).
 */
function linearKernel(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { x, weight, bias } = args.inputs as { x: tf.TensorInfo; weight: tf.TensorInfo; bias?: tf.TensorInfo };
  const { activation = 'none' } = (args.attrs ?? {}) as unknown as { activation?: 'none' | 'gelu' };
  const backend = args.backend as WasmHeapBackend;
  for (const t of [x, weight, bias]) {
    if (t && t.dtype !== 'float32') throw new Error(`${LINEAR_KERNEL}: expected float32 inputs, got ${t.dtype}`);
  }
  const r = x.shape.length;
  if (r < 2 || weight.shape.length !== 2 || x.shape[r - 1] !== weight.shape[0] || (bias && (bias.shape.length !== 1 || bias.shape[0] !== weight.shape[1]))) {
    throw new Error(`${LINEAR_KERNEL}: expected x [..., K], weight [K, N], bias [N], got [${x.shape}], [${weight.shape}], [${bias?.shape ?? "none"}]`);
  }
  if (!kernel(backend, 'gemm.gemm_f32')) throw new Error(`${LINEAR_KERNEL}: softbias' GEMM is not bound to this backend`);
  const K = x.shape[r - 1]!;
  const M = K === 0 ? 0 : tf.util.sizeFromShape(x.shape) / K;
  const N = weight.shape[1]!;
  if (gemmKSplit(1, M, N, K).chunks > 1) throw new Error(`${LINEAR_KERNEL}: K = ${K} is split for [${M}, ${N}]; use matMul + add`);
  // Rows of any leading shape are one [M, K] operand (contiguous): no reshape kernels around the product.
  const x2 = r === 2 ? x : { ...x, shape: [M, K] };
  const act = activation === 'gelu' ? 1 : 0;
  const y = gemm(backend, x2, weight, false, false, bias || act ? { bias: bias ? heapAddress(backend, bias) : 0, act } : null);
  return r === 2 ? y : { ...y, shape: [...x.shape.slice(0, -1), N] };
}

let fusedLinearEnabled = true;

/** Use `SoftbiasLinear` on wasm (default true); false keeps matMul + add (+ gelu) as separate kernels everywhere. */
export function setFusedLinear(on: boolean): void {
  fusedLinearEnabled = on;
}

/**
 * Whether a float32 [M, K]·[K, N] + bias linear runs as one `SoftbiasLinear` call now: wasm with softbias' GEMM
 * bound, the fusion enabled, and an unsplit K (shape only).
 */
export function fusedLinearApplies(M: number, K: number, N: number): boolean {
  return (
    fusedLinearEnabled &&
    tf.getBackend() === 'wasm' &&
    tf.getKernel(LINEAR_KERNEL, 'wasm') !== undefined &&
    kernel(tf.backend(), 'gemm.gemm_f32') !== null &&
    gemmKSplit(1, M, N, K).chunks === 1
  );
}

/**
 * Whether the ops run now are taped for a gradient (inside tf.grad / variableGrads, and not inside a
 * custom-gradient forward such as a checkpointed block's, whose ops tfjs does not record): no inference-only
 * fusions then. tfjs' own test, `engine().isTapeOn()`, as attention and GPSA use.
 */
export function recordingGradients(): boolean {
  return tf.engine().isTapeOn();
}

let linearGradientRegistered = false;

/**
 * Register `SoftbiasLinear` for the `wasm` backend and its gradient (idempotent; after `registerWasmBatchMatMul`).
 * The gradient is the one of matMul + add (transpose flags, the bias gradient a sum over rows); a GELU epilogue is
 * for inference only: `linear` never runs it while a gradient is being recorded.
 */
export function registerWasmLinear(): boolean {
  if (!tf.getKernel('BatchMatMul', 'wasm') || !hasSimdBatchMatMul()) return false;
  if (!linearGradientRegistered && !tf.getGradient(LINEAR_KERNEL)) {
    linearGradientRegistered = true;
    tf.registerGradient({
      kernelName: LINEAR_KERNEL,
      inputsToSave: ['x', 'weight'],
      gradFunc: (dy, saved, attrs) => {
        if ((attrs as { activation?: string }).activation === 'gelu') {
          throw new Error(`${LINEAR_KERNEL}: the GELU epilogue has no gradient (linear() uses it outside gradients only)`);
        }
        const [x, weight] = saved as tf.Tensor[];
        const N = weight!.shape[1]!;
        const K = weight!.shape[0]!;
        const g = (dy as tf.Tensor).rank === 2 ? (dy as tf.Tensor) : tf.reshape(dy as tf.Tensor, [-1, N]);
        const x2 = x!.rank === 2 ? x! : tf.reshape(x!, [-1, K]);
        return {
          x: () => (x!.rank === 2 ? tf.matMul(g, weight!, false, true) : tf.reshape(tf.matMul(g, weight!, false, true), x!.shape)),
          weight: () => tf.matMul(x2, g, true, false),
          bias: () => tf.sum(g, 0),
        };
      },
    });
  }
  if (tf.getKernel(LINEAR_KERNEL, 'wasm')) return false;
  tf.registerKernel({ kernelName: LINEAR_KERNEL, backendName: 'wasm', kernelFunc: linearKernel as unknown as tf.KernelFunc });
  return true;
}

/** True when softbias' GEMM is bound to this (wasm) backend's memory, i.e. the kernel does not delegate. */
export function wasmGemmAvailable(backend: unknown): boolean {
  return kernel(backend, 'gemm.gemm_f32') !== null;
}

function simdAvailable(): boolean {
  if (typeof WebAssembly === 'undefined' || typeof atob !== 'function') return false;
  const s = atob(gemmModuleBase64);
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  return WebAssembly.validate(bytes);
}

/**
 * Register the SIMD `BatchMatMul` for the `wasm` backend, keeping tfjs' own kernel reachable (idempotent).
 * Returns true when this call registered it.
 */
export function registerWasmBatchMatMul(): boolean {
  const current = tf.getKernel('BatchMatMul', 'wasm');
  if (!current) return false; // tfjs-backend-wasm not loaded
  if ((current.kernelFunc as { softbias?: boolean }).softbias) return false;
  if (!simdAvailable()) return false; // no SIMD
  original = current.kernelFunc;
  const kernelFunc = batchMatMul as unknown as tf.KernelFunc & { softbias?: boolean };
  kernelFunc.softbias = true;
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel({ ...current, kernelName: 'BatchMatMul', backendName: 'wasm', kernelFunc });
  return true;
}

/**
 * Whether the `wasm` backend's BatchMatMul is this package's SIMD kernel (registered by `setupBackend('wasm')`
 * or `registerSoftbiasWasmKernels()`). With it, batched and transposed products run at 2-D speed; without it
 * tfjs sends them to a scalar loop, and attention is faster as per-head 2-D matmuls.
 */
export function hasSimdBatchMatMul(): boolean {
  const k = tf.getKernel('BatchMatMul', 'wasm');
  return !!k && (k.kernelFunc as { softbias?: boolean }).softbias === true;
}

/** The original tfjs-backend-wasm kernel (for tests and the benchmark), or null before registration. */
export function originalWasmBatchMatMul(): tf.KernelFunc | null {
  return original;
}
