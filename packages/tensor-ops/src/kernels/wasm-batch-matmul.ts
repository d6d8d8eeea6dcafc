/**
 * A faster `BatchMatMul` for tfjs-backend-wasm 4.22 when the (broadcast) batch is larger than 1, or when a
 * transpose flag is set.
 *
 * tfjs-backend-wasm sends every such matmul to a scalar C++ loop (~0.35 GMAC/s measured here); only a single
 * flag-free 2-D product reaches XNNPACK. This kernel instead runs a small WebAssembly SIMD GEMM whose binary is
 * emitted at start-up by the encoder below (no build tool), instantiated on the backend's own
 * `WebAssembly.Memory`: it reads the inputs and writes the output tensor in place, no copies. Register tiles of
 * 4 rows × 8 columns (f32x4 accumulators), the k loop innermost; edge tiles of 4 columns and of 1–3 columns, and
 * single rows, cover any size. transposeA is a stride; a transposed B is first transposed by the backend's own
 * (O(n)) Transpose kernel. Broadcast batches reuse the same operand addresses (no copies either).
 *
 * Sums run in float32 over k in order, one multiply and one add per term (no FMA in wasm SIMD), the same
 * arithmetic as tfjs' own loop. Batch dimensions broadcast NumPy-style (a dimension of 1 repeats); this agrees
 * with tfjs wherever tfjs' flattened-batch indexing is itself correct. Other dtypes go to the backend's original
 * kernel, and so do single flag-free products where XNNPACK is faster (see `wasmBatchMatMulRoute`).
 */
import * as tf from '@tensorflow/tfjs-core';

/** The parts of tfjs-backend-wasm's `BackendWasm` used here (it is not exported as a type). */
interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(info: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

// ---------------------------------------------------------------------------------------------------------
// A minimal WebAssembly encoder for one function, gemm, that works in place on the backend's own memory.
// ---------------------------------------------------------------------------------------------------------

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    const done = (n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const utf8 = (s: string): number[] => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];

const I32 = 0x7f;
const V128 = 0x7b;
const op = {
  block: 0x02, loop: 0x03, if: 0x04, br: 0x0c, brIf: 0x0d, end: 0x0b, void: 0x40,
  get: 0x20, set: 0x21, f32store: 0x38,
  i32const: 0x41, i32eqz: 0x45, i32ltU: 0x49, i32gtU: 0x4b, i32add: 0x6a, i32sub: 0x6b, i32mul: 0x6c, i32shl: 0x74,
  simd: 0xfd,
} as const;
/** SIMD opcodes (after the 0xfd prefix, LEB128). */
const simd = { load: 0x00, load32Splat: 0x09, store: 0x0b, const: 0x0c, f32x4extract: 0x1f, f32x4add: 0xe4, f32x4mul: 0xe6 } as const;
const memarg = (alignLog2: number, offset: number): number[] => [alignLog2, ...uleb(offset)];

// Parameters (i32): byte addresses a, b, c; sizes M, N, K; A's element strides (row, k) in floats.
const [PA, PB, PC, PM, PN, PK, PSI, PSK] = [0, 1, 2, 3, 4, 5, 6, 7];
// Locals (i32): i, j, k, a row-0 pointer, A row step (bytes), A k step (bytes), b pointer, B/C row step, c pointer.
const [LI, LJ, LK, LAP, LRS, LKS, LBP, LNB, LCP] = [8, 9, 10, 11, 12, 13, 14, 15, 16];
const NUM_I32_LOCALS = 9;
// Locals (v128): acc[r][h] at 17 + 2r + h (r < 4, h < 2), then b0, b1, the broadcast a value.
const acc = (r: number, h: number) => 17 + 2 * r + h;
const [LB0, LB1, LAV] = [25, 26, 27];
const NUM_V128_LOCALS = 11;

const get = (l: number) => [op.get, l];
const set = (l: number) => [op.set, l];
const i32 = (n: number) => [op.i32const, ...sleb(n)];
const sop = (code: number, ...imm: number[]) => [op.simd, ...uleb(code), ...imm];

/**
 * One register tile: rows i..i+R-1 (R = 4 or 1) by columns j..j+4V-1 (V = 2 or 1 vectors); `lanes` < 4 stores
 * only that many columns of a single vector (the last < 4 columns: B's row is read 4 wide, the extra lanes are
 * never stored). Sums over k in order: acc += a[i, k] · b[k, j..].
 */
function tile(R: number, V: number, lanes = 4): number[] {
  const code: number[] = [];
  const emit = (...parts: number[][]) => parts.forEach((p) => code.push(...p));
  for (let r = 0; r < R; r++) for (let h = 0; h < V; h++) emit(sop(simd.const, ...new Array(16).fill(0)), set(acc(r, h)));
  // ap = a + i · rowStep ; bp = b + j · 4 ; k = K
  emit(get(PA), get(LI), get(LRS), [op.i32mul], [op.i32add], set(LAP));
  emit(get(PB), get(LJ), i32(2), [op.i32shl], [op.i32add], set(LBP), get(PK), set(LK));
  emit([op.block, op.void, op.loop, op.void]);
  emit(get(LK), [op.i32eqz], [op.brIf, 1]);
  emit(get(LBP), sop(simd.load, ...memarg(2, 0)), set(LB0));
  if (V === 2) emit(get(LBP), sop(simd.load, ...memarg(2, 16)), set(LB1));
  for (let r = 0; r < R; r++) {
    emit(get(LAP));
    for (let q = 0; q < r; q++) emit(get(LRS), [op.i32add]);
    emit(sop(simd.load32Splat, ...memarg(2, 0)), set(LAV));
    for (let h = 0; h < V; h++) {
      emit(get(acc(r, h)), get(LAV), get(h === 0 ? LB0 : LB1), sop(simd.f32x4mul), sop(simd.f32x4add), set(acc(r, h)));
    }
  }
  emit(get(LAP), get(LKS), [op.i32add], set(LAP));
  emit(get(LBP), get(LNB), [op.i32add], set(LBP));
  emit(get(LK), i32(1), [op.i32sub], set(LK));
  emit([op.br, 0], [op.end, op.end]);
  // cp = c + (i · N + j) · 4
  emit(get(PC), get(LI), get(PN), [op.i32mul], get(LJ), [op.i32add], i32(2), [op.i32shl], [op.i32add], set(LCP));
  for (let r = 0; r < R; r++) {
    if (lanes === 4) {
      for (let h = 0; h < V; h++) emit(get(LCP), get(acc(r, h)), sop(simd.store, ...memarg(2, 16 * h)));
    } else {
      for (let l = 0; l < lanes; l++) emit(get(LCP), get(acc(r, 0)), sop(simd.f32x4extract, l), [op.f32store, ...memarg(2, 4 * l)]);
    }
    if (r < R - 1) emit(get(LCP), get(LNB), [op.i32add], set(LCP));
  }
  return code;
}

/** All column tiles for a row block of R rows at row i: 8 wide, then one 4 wide, then 1–3 columns. */
function rowBlock(R: number): number[] {
  const code: number[] = [];
  const emit = (...parts: number[][]) => parts.forEach((p) => code.push(...p));
  emit(i32(0), set(LJ));
  // while (j + 8 <= N) { tile(R, 2); j += 8 }
  emit([op.block, op.void, op.loop, op.void]);
  emit(get(LJ), i32(8), [op.i32add], get(PN), [op.i32gtU], [op.brIf, 1]);
  emit(tile(R, 2), get(LJ), i32(8), [op.i32add], set(LJ), [op.br, 0], [op.end, op.end]);
  // if (j + 4 <= N) { tile(R, 1); j += 4 }
  emit(get(LJ), i32(4), [op.i32add], get(PN), [op.i32gtU], [op.i32eqz], [op.if, op.void]);
  emit(tile(R, 1), get(LJ), i32(4), [op.i32add], set(LJ), [op.end]);
  // the last N - j (0..3) columns
  for (const lanes of [1, 2, 3]) {
    emit(get(PN), get(LJ), [op.i32sub], i32(lanes), [op.i32sub], [op.i32eqz], [op.if, op.void], tile(R, 1, lanes), [op.end]);
  }
  return code;
}

/**
 * gemm(a, b, c, M, N, K, sAi, sAk): c[i, j] = Σ_k a[i·sAi + k·sAk] · b[k·N + j] (floats; a, b, c byte
 * addresses in the imported memory; c is M × N row-major). B's last row may be read up to 3 floats past its end.
 */
function buildGemmModule(shared: boolean): Uint8Array<ArrayBuffer> {
  const body: number[] = [];
  const emit = (...parts: number[][]) => parts.forEach((p) => body.push(...p));
  emit(get(PSI), i32(2), [op.i32shl], set(LRS), get(PSK), i32(2), [op.i32shl], set(LKS));
  emit(get(PN), i32(2), [op.i32shl], set(LNB), i32(0), set(LI));
  // while (i + 4 <= M) { rowBlock(4); i += 4 }
  emit([op.block, op.void, op.loop, op.void]);
  emit(get(LI), i32(4), [op.i32add], get(PM), [op.i32gtU], [op.brIf, 1]);
  emit(rowBlock(4), get(LI), i32(4), [op.i32add], set(LI), [op.br, 0], [op.end, op.end]);
  // while (i < M) { rowBlock(1); i += 1 }
  emit([op.block, op.void, op.loop, op.void]);
  emit(get(LI), get(PM), [op.i32ltU], [op.i32eqz], [op.brIf, 1]);
  emit(rowBlock(1), get(LI), i32(1), [op.i32add], set(LI), [op.br, 0], [op.end, op.end]);
  emit([op.end]);

  const locals = vec([[...uleb(NUM_I32_LOCALS), I32], [...uleb(NUM_V128_LOCALS), V128]]);
  const code = [...locals, ...body];
  const funcType = [0x60, ...vec(new Array(8).fill([I32])), ...vec([])];
  // The backend's memory: plain, or shared (threaded build; then a maximum must be declared: 4 GiB).
  const limits = shared ? [0x03, ...uleb(0), ...uleb(65536)] : [0x00, ...uleb(0)];
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([funcType])), // types
    ...section(2, vec([[...utf8('env'), ...utf8('mem'), 0x02, ...limits]])), // import the memory
    ...section(3, vec([uleb(0)])), // functions: gemm has type 0
    ...section(7, vec([[...utf8('gemm'), 0x00, 0x00]])), // exports
    ...section(10, vec([[...uleb(code.length), ...code]])), // code
  ]);
}

type GemmFunc = (a: number, b: number, c: number, m: number, n: number, k: number, sAi: number, sAk: number) => void;

/** One instance per backend memory. */
const instances = new WeakMap<WebAssembly.Memory, GemmFunc | null>();

/** The backend's WebAssembly.Memory (Emscripten: `asm.memory` single-threaded, `wasmMemory` threaded). */
function backendMemory(backend: unknown): WebAssembly.Memory | null {
  const mod = (backend as { wasm?: { asm?: { memory?: unknown }; wasmMemory?: unknown } }).wasm;
  const mem = mod?.wasmMemory ?? mod?.asm?.memory;
  return typeof WebAssembly !== 'undefined' && mem instanceof WebAssembly.Memory ? mem : null;
}

/** The SIMD GEMM bound to this backend's memory, compiled once (a few hundred bytes). Null without SIMD. */
function getGemm(backend: unknown): GemmFunc | null {
  const memory = backendMemory(backend);
  if (!memory) return null;
  if (instances.has(memory)) return instances.get(memory)!;
  let fn: GemmFunc | null = null;
  try {
    const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
    const bytes = buildGemmModule(shared);
    if (WebAssembly.validate(bytes)) {
      const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { mem: memory } });
      fn = (inst.exports as unknown as { gemm: GemmFunc }).gemm;
    }
  } catch {
    fn = null;
  }
  instances.set(memory, fn);
  return fn;
}

/** True when the SIMD GEMM is bound to this (wasm) backend's memory, i.e. the kernel does not delegate. */
export function wasmGemmAvailable(backend: unknown): boolean {
  return getGemm(backend) !== null;
}

/** The bytes of the emitted GEMM module (for tests: it must validate). */
export function wasmGemmModuleBytes(shared = false): Uint8Array<ArrayBuffer> {
  return buildGemmModule(shared);
}

// ---------------------------------------------------------------------------------------------------------
// The kernel
// ---------------------------------------------------------------------------------------------------------

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

/** Longest inner dimension for which a single flag-free product is faster here than single-threaded XNNPACK. */
const XNNPACK_MIN_K = 256;

/**
 * Which kernel runs a product: 'original' (tfjs-backend-wasm's XNNPACK path) for one flag-free product when
 * XNNPACK runs on more than one thread or the inner dimension exceeds 256 (XNNPACK's packed, k-blocked GEMM
 * wins there; measured with scripts/bench-batch-matmul.mjs), 'simd' for everything else.
 */
export function wasmBatchMatMulRoute(
  aShape: number[],
  bShape: number[],
  transposeA: boolean,
  transposeB: boolean,
  threads = 1,
): 'simd' | 'original' {
  const batch = tf.util.sizeFromShape(tf.broadcast_util.assertAndGetBroadcastShape(aShape.slice(0, -2), bShape.slice(0, -2)));
  if (batch > 1 || transposeA || transposeB) return 'simd';
  const K = aShape[aShape.length - 1]!;
  return threads > 1 || K > XNNPACK_MIN_K ? 'original' : 'simd';
}

/** XNNPACK's thread count in this backend (1 when unknown). */
function backendThreads(backend: unknown): number {
  const fn = (backend as { wasm?: { _get_threads_count?: () => number } }).wasm?._get_threads_count;
  const n = typeof fn === 'function' ? fn() : 1;
  return Number.isInteger(n) && n > 0 ? n : 1;
}

let original: tf.KernelFunc | null = null;

function batchMatMul(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA = false, transposeB = false } = (args.attrs ?? {}) as unknown as { transposeA?: boolean; transposeB?: boolean };
  const delegate = () => original!(args as Parameters<tf.KernelFunc>[0]) as tf.TensorInfo;
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length < 2 || b.shape.length < 2) return delegate();
  if (wasmBatchMatMulRoute(a.shape, b.shape, transposeA, transposeB, backendThreads(args.backend)) === 'original') {
    return delegate();
  }
  const gemm = getGemm(args.backend);
  if (!gemm) return delegate();
  const backend = args.backend as WasmHeapBackend;
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

  // B must be K × N row-major: a transposed B is transposed by the backend's own kernel (O(n), rank ≤ 3).
  let bt: tf.TensorInfo | null = null;
  if (transposeB) {
    const perm = b.shape.map((_, i) => i);
    [perm[rb - 2], perm[rb - 1]] = [rb - 1, rb - 2];
    const transpose = tf.getKernel(tf.Transpose, 'wasm')!.kernelFunc;
    bt = transpose({ inputs: { x: b }, backend: args.backend as tf.KernelBackend, attrs: { perm } }) as tf.TensorInfo;
  }
  try {
    // Addresses after every allocation (one may grow the heap; offsets stay valid).
    const aAddr = backend.typedArrayFromHeap(a).byteOffset;
    const bView = backend.typedArrayFromHeap(bt ?? b);
    const bAddr = bView.byteOffset;
    const cAddr = backend.typedArrayFromHeap(out).byteOffset;
    // The last column tile reads B's last row up to 3 floats past its end: it must stay inside the memory.
    if (bAddr + bView.byteLength + 16 > bView.buffer.byteLength) {
      backend.disposeData(out.dataId);
      return delegate();
    }
    // A's element (i, k) at i·sAi + k·sAk floats.
    const [sAi, sAk] = transposeA ? [1, M] : [K, 1];
    const aStep = M * K * 4;
    const bStep = K * N * 4;
    const cStep = M * N * 4;
    const mapA = tf.util.sizeFromShape(aDims) === batch ? null : batchIndexMap(outDims, aDims);
    const mapB = tf.util.sizeFromShape(bDims) === batch ? null : batchIndexMap(outDims, bDims);
    for (let o = 0; o < batch; o++) {
      const qa = mapA ? mapA[o]! : o;
      const qb = mapB ? mapB[o]! : o;
      gemm(aAddr + qa * aStep, bAddr + qb * bStep, cAddr + o * cStep, M, N, K, sAi, sAk);
    }
    return out;
  } finally {
    if (bt) backend.disposeData(bt.dataId);
  }
}

/**
 * Register the SIMD `BatchMatMul` for the `wasm` backend, keeping tfjs' own kernel for the cases it does
 * faster (idempotent). Returns true when this call registered it.
 */
export function registerWasmBatchMatMul(): boolean {
  const current = tf.getKernel('BatchMatMul', 'wasm');
  if (!current) return false; // tfjs-backend-wasm not loaded
  if ((current.kernelFunc as { softbias?: boolean }).softbias) return false;
  if (typeof WebAssembly === 'undefined' || !WebAssembly.validate(buildGemmModule(false))) return false; // no SIMD
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
