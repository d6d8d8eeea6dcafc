/**
 * The SIMD peak probe's WebAssembly module, assembled here byte by byte (a few hundred bytes: no toolchain, nothing
 * compiled on the user's machine, nothing binary committed).
 *
 * One exported function, `peak(iters: i32, m: f32, c: f32) -> f32`, loops `iters` times over `chains`
 * independent 128-bit accumulators (v128 locals, `unroll` copies of the body per iteration):
 * - `fused`: every chain does `acc = f32x4.add(f32x4.mul(acc, m), c)` (the multiply-then-add a matmul's inner
 *   loop issues without FMA: 8 flop per chain and step);
 * - `split`: half the chains `acc = f32x4.mul(acc, m)`, half `acc = f32x4.add(acc, c)` (4 flop per chain and
 *   step; each op depends only on its own previous result, so the latency per chain is one op, not two).
 * `m` and `c` are run-time arguments (the caller passes 1 and 0: the values never change, never overflow,
 * never turn denormal, and the compiler cannot know it), and the lanes of every accumulator are summed into
 * the result, so no chain is dead code. Chains + 2 constants stay within the 16 xmm registers of x86-64.
 */

export type PeakStyle = 'fused' | 'split';

export interface PeakKernel {
  style: PeakStyle;
  chains: number;
  unroll: number;
  /** Floating-point operations per loop iteration (4 lanes × ops). */
  flopsPerIter: number;
  bytes: Uint8Array;
}

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const name = (s: string): number[] => {
  const b = [...new TextEncoder().encode(s)];
  return [...uleb(b.length), ...b];
};

// Opcodes (WebAssembly core + SIMD proposal).
const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const LOCAL_TEE = 0x22;
const I32_CONST = 0x41;
const I32_SUB = 0x6b;
const F32_ADD = 0x92;
const LOOP = 0x03;
const BR_IF = 0x0d;
const END = 0x0b;
const EMPTY_BLOCK = 0x40;
const simd = (op: number): number[] => [0xfd, ...uleb(op)];
const V128_CONST = simd(0x0c);
const F32X4_SPLAT = simd(0x13);
const F32X4_EXTRACT_LANE = simd(0x1f);
const F32X4_ADD = simd(0xe4);
const F32X4_MUL = simd(0xe6);

function f32Bytes(x: number): number[] {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setFloat32(0, x, true);
  return [...b];
}

export function peakKernel(style: PeakStyle, chains: number, unroll = 4): PeakKernel {
  if (!Number.isInteger(chains) || chains < 2 || chains > 14 || (style === 'split' && chains % 2 !== 0)) {
    throw new Error(`peakKernel: ${chains} chains (2…14${style === 'split' ? ', even' : ''})`);
  }
  // Locals: 0 iters (i32), 1 m (f32), 2 c (f32) are the parameters; then the accumulators, then splat(m), splat(c).
  const acc = (i: number): number => 3 + i;
  const M = 3 + chains;
  const C = 4 + chains;
  const code: number[] = [];
  code.push(LOCAL_GET, 1, ...F32X4_SPLAT, LOCAL_SET, M);
  code.push(LOCAL_GET, 2, ...F32X4_SPLAT, LOCAL_SET, C);
  // Distinct starting values per chain and lane (1.0 … ~2), so no two chains are the same computation.
  for (let i = 0; i < chains; i++) {
    code.push(...V128_CONST);
    for (let l = 0; l < 4; l++) code.push(...f32Bytes(1 + (i * 4 + l) / 64));
    code.push(LOCAL_SET, acc(i));
  }
  code.push(LOOP, EMPTY_BLOCK);
  for (let u = 0; u < unroll; u++) {
    for (let i = 0; i < chains; i++) {
      if (style === 'fused') code.push(LOCAL_GET, acc(i), LOCAL_GET, M, ...F32X4_MUL, LOCAL_GET, C, ...F32X4_ADD, LOCAL_SET, acc(i));
      else if (i % 2 === 0) code.push(LOCAL_GET, acc(i), LOCAL_GET, M, ...F32X4_MUL, LOCAL_SET, acc(i));
      else code.push(LOCAL_GET, acc(i), LOCAL_GET, C, ...F32X4_ADD, LOCAL_SET, acc(i));
    }
  }
  // iters -= 1; loop while iters != 0 (the caller passes iters ≥ 1).
  code.push(LOCAL_GET, 0, I32_CONST, 1, I32_SUB, LOCAL_TEE, 0, BR_IF, 0, END);
  // Result: the sum of every chain's lanes (keeps all of them live).
  code.push(LOCAL_GET, acc(0));
  for (let i = 1; i < chains; i++) code.push(LOCAL_GET, acc(i), ...F32X4_ADD);
  code.push(LOCAL_TEE, acc(0), ...F32X4_EXTRACT_LANE, 0);
  for (let l = 1; l < 4; l++) code.push(LOCAL_GET, acc(0), ...F32X4_EXTRACT_LANE, l, F32_ADD);
  code.push(END);

  const body = [...vec([[...uleb(chains + 2), V128]]), ...code];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, ...vec([[I32], [F32], [F32]]), ...vec([[F32]])]])),
    ...section(3, vec([[0]])),
    ...section(7, vec([[...name('peak'), 0x00, 0]])),
    ...section(10, vec([[...uleb(body.length), ...body]])),
  ];
  const flopsPerIter = unroll * chains * 4 * (style === 'fused' ? 2 : 1);
  return { style, chains, unroll, flopsPerIter, bytes: new Uint8Array(bytes) };
}
