/**
 * The forward of batched scaled dot-product attention as one wasm kernel (attention.c), for
 * @softbias/attention's `scaledDotAttention` (MHSA, window attention, GPSA): per (batch, head) block
 * S = scale·q·kᵀ, c = softmax(S), optionally GPSA's mix p = (c·keep + gated) / z with z its row sums, and
 * o = p·v, without materialising S or p as tensors. It returns o, c (and z): what the op-by-op backward saves.
 *
 * Kernel `SoftbiasAttention` (wasm only): inputs q [..., M, D], k [..., N, D], v [..., N, E] (the same batch
 * dimensions, float32) and, mixed, keep and gated; attr `scale`. Outputs o [..., M, E], c [..., M, N] and, mixed,
 * z [..., M, 1]. keep broadcasts as [..., 1, 1] and gated as [..., M, N] against [..., M, N], where the batch
 * dimensions of each are either all 1 or equal to q's, except the last (heads) which may be 1 or equal on its
 * own: [H, 1, 1] / [H, M, N] / [1, H, M, N] / [B, H, …] / scalars. Other layouts: `fusedAttentionForward` returns
 * null and callers keep the op graph. With `tokenMajorHeads: H` q, k, v are the token-major [B, M, H·D] outputs of
 * the linears and o comes back as [B, M, H·E] (no head transposes; for inference, see @softbias/attention's core).
 *
 * Numerics (float32): S and o are sums in increasing index order like softbias' GEMM; S is rounded before × scale
 * (as matMul then mul); exp is a vectorised float32 exp with max relative error 1.37·2⁻²⁴ (attention.c); c = e/Σe
 * and p = a/z are divisions, Σ in 4 lanes. Results do not depend on the thread count.
 */
import * as tf from '@tensorflow/tfjs-core';
import { heapAddress, kernelThreads, kernelsAvailable, mallocScratch, freeScratch, parallelFor, type WasmHeapBackend } from './runtime.js';

export const ATTENTION_KERNEL = 'SoftbiasAttention';

/** Below this many multiply-adds (≈ 0.1 ms) one task on the calling thread beats waking the pool. */
const MIN_PARALLEL_MACS = 1 << 20;

const round8 = (n: number) => (n + 7) & ~7;

/** Floats of one task's scratch slot (attention.c: slot_floats). */
function slotFloats(N: number, D: number, E: number): number {
  const np = round8(N);
  return D * np + N * round8(E) + 4 * np;
}

interface Layout {
  batch: number[];
  nblk: number;
  H: number;
  M: number;
  N: number;
  D: number;
  E: number;
}

function layout(q: tf.TensorInfo, k: tf.TensorInfo, v: tf.TensorInfo): Layout | null {
  const r = q.shape.length;
  if (r < 2 || k.shape.length !== r || v.shape.length !== r) return null;
  const batch = q.shape.slice(0, -2);
  for (let i = 0; i < r - 2; i++) if (k.shape[i] !== batch[i] || v.shape[i] !== batch[i]) return null;
  const [M, D] = q.shape.slice(-2) as [number, number];
  const [N, Dk] = k.shape.slice(-2) as [number, number];
  const [Nv, E] = v.shape.slice(-2) as [number, number];
  if (Dk !== D || Nv !== N) return null;
  const nblk = batch.reduce((a, b) => a * b, 1);
  if (nblk === 0 || M === 0 || N === 0 || D === 0 || E === 0) return null;
  return { batch, nblk, H: batch.length ? batch[batch.length - 1]! : 1, M, N, D, E };
}

/**
 * Strides (in elements) of block (bb, h) into a broadcast operand whose last two dims must be `tail`, or null when
 * its layout is not one the kernel reads (see the header).
 */
function strides(t: tf.TensorInfo, L: Layout, tail: [number, number]): { bs: number; hs: number } | null {
  const r = L.batch.length + 2;
  if (t.shape.length > r) return null;
  const shape = [...new Array(r - t.shape.length).fill(1), ...t.shape] as number[];
  if (shape[r - 2] !== tail[0] || shape[r - 1] !== tail[1]) return null;
  const per = tail[0] * tail[1];
  const lead = shape.slice(0, Math.max(0, r - 3)); // batch dims before the heads
  const batchLead = L.batch.slice(0, -1);
  const h = r >= 3 ? shape[r - 3]! : 1;
  let hs: number;
  if (h === L.H) hs = per;
  else if (h === 1) hs = 0;
  else return null;
  let bs: number;
  if (lead.every((d) => d === 1)) bs = 0;
  else if (lead.every((d, i) => d === batchLead[i])) bs = h * per;
  else return null;
  return { bs, hs };
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };

/**
 * The layout of q, k, v and o: `heads` (default) [..., M, D] per block as above; `tokens` q [B, M, H·D],
 * k [B, N, H·D], v [B, N, H·E] and o [B, M, H·E] (the heads interleaved in each token's row: the linears' own
 * output, so no transposes), with `heads` = H; c and z stay [B, H, M, N] / [B, H, M, 1].
 */
function tokenLayout(q: tf.TensorInfo, k: tf.TensorInfo, v: tf.TensorInfo, H: number): Layout | null {
  if (q.shape.length !== 3 || k.shape.length !== 3 || v.shape.length !== 3 || !(H >= 1)) return null;
  const [B, M, C] = q.shape as [number, number, number];
  const [Bk, N, Ck] = k.shape as [number, number, number];
  const [Bv, Nv, Cv] = v.shape as [number, number, number];
  if (Bk !== B || Bv !== B || Nv !== N || Ck !== C || C % H !== 0 || Cv % H !== 0) return null;
  const D = C / H;
  const E = Cv / H;
  if (B === 0 || M === 0 || N === 0 || D === 0 || E === 0) return null;
  return { batch: [B, H], nblk: B * H, H, M, N, D, E };
}

function attentionKernel(args: KernelArgs): tf.TensorInfo[] {
  const { q, k, v, keep, gated } = args.inputs as { q: tf.TensorInfo; k: tf.TensorInfo; v: tf.TensorInfo; keep?: tf.TensorInfo; gated?: tf.TensorInfo };
  const attrs = (args.attrs ?? {}) as { scale?: number; layout?: 'heads' | 'tokens'; heads?: number };
  const scale = Number(attrs.scale ?? 1);
  const tokens = attrs.layout === 'tokens';
  const be = args.backend as WasmHeapBackend;
  const L = tokens ? tokenLayout(q, k, v, Number(attrs.heads)) : layout(q, k, v);
  const mixed = keep !== undefined && gated !== undefined;
  if (!L || (keep === undefined) !== (gated === undefined)) throw new Error(`${ATTENTION_KERNEL}: unsupported shapes q [${q.shape}] k [${k.shape}] v [${v.shape}]`);
  for (const t of [q, k, v, keep, gated]) if (t && t.dtype !== 'float32') throw new Error(`${ATTENTION_KERNEL}: float32 only`);
  const ks = mixed ? strides(keep!, L, [1, 1]) : { bs: 0, hs: 0 };
  const gs = mixed ? strides(gated!, L, [L.M, L.N]) : { bs: 0, hs: 0 };
  if (!ks || !gs) throw new Error(`${ATTENTION_KERNEL}: keep [${keep?.shape}] / gated [${gated?.shape}] do not broadcast as supported`);
  const { batch, nblk, H, M, N, D, E } = L;
  const o = be.makeOutput(tokens ? [batch[0]!, M, H * E] : [...batch, M, E], 'float32');
  // Strides (floats) of block (bb, h) and of rows for q, k, v, o (attention.c's `lay`).
  const lay = tokens
    ? [M * H * D, D, H * D, N * H * D, D, H * D, N * H * E, E, H * E, M * H * E, E, H * E]
    : [H * M * D, M * D, D, H * N * D, N * D, D, H * N * E, N * E, E, H * M * E, M * E, E];
  const c = be.makeOutput([...batch, M, N], 'float32');
  const z = mixed ? be.makeOutput([...batch, M, 1], 'float32') : null;
  const threads = kernelThreads(be);
  const macs = nblk * M * N * (D + E);
  let ntasks = 1;
  let rowsplit = 1;
  if (threads > 1 && macs >= MIN_PARALLEL_MACS) {
    rowsplit = Math.max(1, Math.min(Math.ceil(M / 8), Math.ceil((4 * threads) / nblk)));
    ntasks = Math.min(nblk * rowsplit, 4 * threads);
  }
  let scratch = 0;
  try {
    const slots = ntasks * slotFloats(N, D, E) * 4;
    scratch = mallocScratch(be, slots + 4 * lay.length);
    new Int32Array((be.typedArrayFromHeap(o) as Float32Array).buffer, scratch + slots, lay.length).set(lay);
    const a = [
      heapAddress(be, q),
      heapAddress(be, k),
      heapAddress(be, v),
      mixed ? heapAddress(be, keep!) : 0,
      mixed ? heapAddress(be, gated!) : 0,
      heapAddress(be, o),
      heapAddress(be, c),
      z ? heapAddress(be, z) : 0,
      scratch,
      nblk,
      H,
      M,
      N,
      D,
      E,
      scale,
      ks.bs,
      ks.hs,
      gs.bs,
      gs.hs,
      rowsplit,
      scratch + slots,
    ];
    parallelFor(be, 'attention.attn_forward', ntasks, a);
  } catch (e) {
    for (const t of [o, c, z]) if (t) be.disposeData(t.dataId);
    throw e;
  } finally {
    freeScratch(be, scratch);
  }
  return z ? [o, c, z] : [o, c];
}

/** Register `SoftbiasAttention` for the wasm backend (idempotent). Returns true when this call registered it. */
export function registerWasmAttention(): boolean {
  if (!tf.getKernel('Add', 'wasm') || tf.getKernel(ATTENTION_KERNEL, 'wasm')) return false;
  tf.registerKernel({ kernelName: ATTENTION_KERNEL, backendName: 'wasm', kernelFunc: attentionKernel as unknown as tf.KernelFunc });
  return true;
}

let enabled = true;

/** Use the fused attention kernel on wasm (default true); false keeps scaledDotAttention on the op graph. */
export function setFusedAttention(on: boolean): void {
  enabled = on;
}

/** Whether `fusedAttentionForward` can run now (wasm backend, kernel registered, kernels available, enabled). */
export function fusedAttentionActive(): boolean {
  return enabled && tf.getBackend() === 'wasm' && tf.getKernel(ATTENTION_KERNEL, 'wasm') !== undefined && kernelsAvailable(tf.backend());
}

/**
 * The attention forward by the fused kernel: o = p·v with c = softmax(scale·q·kᵀ) and p = c, or, with `keep` and
 * `gated`, p = (c·keep + gated)/z, z = Σ_k(c·keep + gated). Returns null when it does not apply (not wasm, not
 * float32, disabled, a layout the kernel does not read): then use the op graph.
 */
export function fusedAttentionForward(
  q: tf.Tensor,
  k: tf.Tensor,
  v: tf.Tensor,
  scale: number,
  keep?: tf.Tensor,
  gated?: tf.Tensor,
  opts: { tokenMajorHeads?: number } = {},
): { o: tf.Tensor; c: tf.Tensor; z?: tf.Tensor } | null {
  if ((keep === undefined) !== (gated === undefined) || !fusedAttentionActive()) return null;
  for (const t of [q, k, v, keep, gated]) if (t && t.dtype !== 'float32') return null;
  const H = opts.tokenMajorHeads;
  const L = H === undefined ? layout(q, k, v) : tokenLayout(q, k, v, H);
  if (!L) return null;
  if (keep && gated && (!strides(keep, L, [1, 1]) || !strides(gated, L, [L.M, L.N]))) return null;
  const inputs: tf.NamedTensorMap = keep && gated ? { q, k, v, keep, gated } : { q, k, v };
  const attrs = H === undefined ? { scale } : { scale, layout: 'tokens', heads: H };
  const out = tf.engine().runKernel(ATTENTION_KERNEL, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  return out.length === 3 ? { o: out[0]!, c: out[1]!, z: out[2]! } : { o: out[0]!, c: out[1]! };
}
