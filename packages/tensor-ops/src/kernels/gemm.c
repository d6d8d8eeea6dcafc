// GEMM family: a batch of float32 products C[o] = op(A)[qa(o)] · op(B)[qb(o)] in WebAssembly SIMD (128-bit).
//
// Layout. A's element (i, k) of batch q is a[q·sab + i·sai + k·sak] and B's element (k, j) is
// b[q·sbb + k·sbk + j·sbn] (floats): any transpose is a pair of strides. C is row-major M × N per batch,
// batch o at c + o·M·N.
//
// Two phases (the caller runs each with parallelFor):
// 1. gemm_pack_b packs every distinct B into column panels of NR = 8 floats: panel p holds, for k = 0..K−1, the
//    8 values B[k, 8p..8p+7] contiguously (zeros past N). K·8 floats per panel, np = ⌈N/8⌉ panels per batch.
//    (Skipped for a row-major B with N a multiple of 8 and few rows of A: then the tile reads B in place.)
// 2. gemm_f32 splits (batch × row blocks × panel blocks) over its tasks. Per unit and per k block of KC, it packs
//    MR rows of A k-major on its stack (MR floats per k, zeros past M) and runs the MR × 8 register tile over
//    every panel of the unit: 2·MR f32x4 accumulators, one splat of A and two vectors of B per k, k unrolled by 4.
//    Edge tiles (fewer than MR rows or 8 columns) run the same tile into a stack buffer and copy the valid part.
//
// Sums. Every C element is Σ_k in increasing k order, one float32 multiply and one float32 add per term (no FMA:
// -ffp-contract=off), starting from +0; a k block > 0 continues from the stored partial sum, so the order is the
// same as one unblocked loop. Each C element is written by exactly one unit, and units never depend on how tasks
// group them, so the result is bit-identical for any number of threads or tasks.
//
// gemm_f32_ksplit / gemm_reduce: for long K (weight gradients: K ≥ 2048 and K ≥ 8·max(M, N), or few output tiles),
// K is cut into S chunks fixed by the caller from the shape alone (each task then reads only its chunk of A and B); chunk s of every product goes to its own scratch slice, then gemm_reduce
// sums the slices in order s = 0..S−1. The order differs from the unsplit one but not with the thread count.
#include "kernel.h"
#include "gelu.h"

#ifndef GEMM_MR
#define GEMM_MR 4
#endif
#define MR GEMM_MR
#define NR 8
#ifndef GEMM_KC
#define GEMM_KC 256
#endif
#define KC GEMM_KC

INLINE int imin(int x, int y) { return x < y ? x : y; }

// ---------------------------------------------------------------------------------------------------------
// Packing B
// ---------------------------------------------------------------------------------------------------------

/** 4 × 4 transpose of rows r0..r3. */
#define TRANSPOSE4(r0, r1, r2, r3, o0, o1, o2, o3)                                                                  \
  do {                                                                                                          \
    v128_t t0_ = wasm_i32x4_shuffle(r0, r1, 0, 4, 1, 5);                                                        \
    v128_t t1_ = wasm_i32x4_shuffle(r0, r1, 2, 6, 3, 7);                                                        \
    v128_t t2_ = wasm_i32x4_shuffle(r2, r3, 0, 4, 1, 5);                                                        \
    v128_t t3_ = wasm_i32x4_shuffle(r2, r3, 2, 6, 3, 7);                                                        \
    o0 = wasm_i32x4_shuffle(t0_, t2_, 0, 1, 4, 5);                                                              \
    o1 = wasm_i32x4_shuffle(t0_, t2_, 2, 3, 6, 7);                                                              \
    o2 = wasm_i32x4_shuffle(t1_, t3_, 0, 1, 4, 5);                                                              \
    o3 = wasm_i32x4_shuffle(t1_, t3_, 2, 3, 6, 7);                                                              \
  } while (0)

/** One panel: dst[k·8 + c] = src[k·sbk + c·sbn] for c < w (≤ 8), zeros for c ≥ w. */
static void pack_panel(const float *src, float *dst, int k, int w, int sbk, int sbn) {
  if (w == NR && sbn == 1) {
    for (int kk = 0; kk < k; kk++) {
      wasm_v128_store(dst + kk * 8, wasm_v128_load(src + kk * sbk));
      wasm_v128_store(dst + kk * 8 + 4, wasm_v128_load(src + kk * sbk + 4));
    }
    return;
  }
  int kk = 0;
  if (w == NR && sbk == 1) {
    // Columns are contiguous in k (a transposed B): 4 × 4 transposes.
    for (; kk + 4 <= k; kk += 4) {
      for (int h = 0; h < 2; h++) {
        const float *s = src + (4 * h) * sbn + kk;
        v128_t r0 = wasm_v128_load(s), r1 = wasm_v128_load(s + sbn), r2 = wasm_v128_load(s + 2 * sbn),
               r3 = wasm_v128_load(s + 3 * sbn);
        v128_t o0, o1, o2, o3;
        TRANSPOSE4(r0, r1, r2, r3, o0, o1, o2, o3);
        float *d = dst + kk * 8 + 4 * h;
        wasm_v128_store(d, o0);
        wasm_v128_store(d + 8, o1);
        wasm_v128_store(d + 16, o2);
        wasm_v128_store(d + 24, o3);
      }
    }
  }
  for (; kk < k; kk++) {
    for (int c = 0; c < NR; c++) dst[kk * 8 + c] = c < w ? src[kk * sbk + c * sbn] : 0.0f;
  }
}

/**
 * Packs nbb B matrices (batch q at b + q·sbb) into bp: batch q, panel p at bp + (q·np + p)·K·8. Tasks split
 * the nbb·np panels.
 */
KERNEL void gemm_pack_b(int task, int ntasks, const float *b, float *bp, int nbb, int k, int n, int sbk, int sbn,
                        int sbb) {
  int np = (n + NR - 1) / NR;
  int lo, hi;
  split(nbb * np, task, ntasks, &lo, &hi);
  for (int u = lo; u < hi; u++) {
    int q = u / np, p = u - (u / np) * np;
    pack_panel(b + q * sbb + p * NR * sbn, bp + (q * np + p) * k * NR, k, imin(NR, n - p * NR), sbk, sbn);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The register tile
// ---------------------------------------------------------------------------------------------------------

// One k step of the tile: two vectors of B, then per row one splat of A and two multiply-adds. The loop is
// written one k step at a time on purpose: clang interleaves a manually unrolled body per accumulator, which
// keeps all of B's vectors live and makes V8 spill (measured: 4× unrolled 52%, 1 step 70–87% of peak; V8
// unrolls small wasm loops itself). The empty asm launders the pointers so clang keeps the constant offsets in
// the loads' memarg instead of separate i32.add. MR = 4 measured best (5 and 6 rows spill: 16 xmm in V8).
#define STEP()                                                                                                  \
  do {                                                                                                          \
    v128_t b0 = wasm_v128_load(bp);                                                                             \
    v128_t b1 = wasm_v128_load(bp + 4);                                                                         \
    _Pragma("clang loop unroll(full)") for (int r = 0; r < MR; r++) {                                           \
      v128_t av = wasm_v128_load32_splat(ap + r);                                                               \
      c0[r] = wasm_f32x4_add(c0[r], wasm_f32x4_mul(av, b0));                                                    \
      c1[r] = wasm_f32x4_add(c1[r], wasm_f32x4_mul(av, b1));                                                    \
    }                                                                                                           \
  } while (0)

/**
 * C[r, 0..7] (+)= Σ_k ap[k·MR + r] · bp[k·bstep + 0..7] for r < MR; row r of C at cp + r·ldc. Not inlined: its own
 * function keeps V8's register allocation of the loop clean (every accumulator in a register).
 */
static __attribute__((noinline)) void tile(const float *ap, const float *bp, int kc, float *cp, int ldc,
                                           int accumulate, int bstep) {
  v128_t c0[MR], c1[MR];
  _Pragma("clang loop unroll(full)") for (int r = 0; r < MR; r++) {
    if (accumulate) {
      c0[r] = wasm_v128_load(cp + r * ldc);
      c1[r] = wasm_v128_load(cp + r * ldc + 4);
    } else {
      c0[r] = wasm_f32x4_splat(0.0f);
      c1[r] = wasm_f32x4_splat(0.0f);
    }
  }
  _Pragma("clang loop unroll(disable)") for (int kk = 0; kk < kc; kk++) {
    __asm__ volatile("" : "+r"(ap), "+r"(bp));
    STEP();
    ap += MR;
    bp += bstep;
  }
  _Pragma("clang loop unroll(full)") for (int r = 0; r < MR; r++) {
    wasm_v128_store(cp + r * ldc, c0[r]);
    wasm_v128_store(cp + r * ldc + 4, c1[r]);
  }
}

/** ap[kk·MR + r] = A[i + r, k0 + kk] for r < mr, 0 for mr ≤ r < MR. */
static void pack_a(const float *a, float *ap, int mr, int kc, int sai, int sak) {
  if (mr == MR && sai == 1) {
    // A transposed: the MR rows of one k are contiguous.
#if MR == 4
    for (int kk = 0; kk < kc; kk++) wasm_v128_store(ap + kk * 4, wasm_v128_load(a + kk * sak));
#else
    for (int kk = 0; kk < kc; kk++) {
      _Pragma("clang loop unroll(full)") for (int r = 0; r < MR; r++) ap[kk * MR + r] = a[kk * sak + r];
    }
#endif
    return;
  }
#if MR == 4
  if (mr == 4 && sak == 1) {
    int kk = 0;
    for (; kk + 4 <= kc; kk += 4) {
      v128_t r0 = wasm_v128_load(a + kk), r1 = wasm_v128_load(a + sai + kk), r2 = wasm_v128_load(a + 2 * sai + kk),
             r3 = wasm_v128_load(a + 3 * sai + kk);
      v128_t o0, o1, o2, o3;
      TRANSPOSE4(r0, r1, r2, r3, o0, o1, o2, o3);
      wasm_v128_store(ap + kk * 4, o0);
      wasm_v128_store(ap + kk * 4 + 4, o1);
      wasm_v128_store(ap + kk * 4 + 8, o2);
      wasm_v128_store(ap + kk * 4 + 12, o3);
    }
    for (; kk < kc; kk++)
      for (int r = 0; r < 4; r++) ap[kk * 4 + r] = a[r * sai + kk];
    return;
  }
#endif
  for (int kk = 0; kk < kc; kk++) {
    for (int r = 0; r < MR; r++) ap[kk * MR + r] = r < mr ? a[r * sai + kk * sak] : 0.0f;
  }
}

/**
 * The epilogue on a finished tile (rows r < mr of 8 floats, ldc apart; the first nr columns valid): + bias[0..nr)
 * when bias is set, then GELU when act = 1. The same float32 operations as the separate Add and SoftbiasGelu
 * kernels, so a fused linear is bit-identical to the unfused one. Columns past nr get bias 0 (they are discarded).
 * Not inlined: it keeps block()'s loop (and V8's registers there) as it is without an epilogue.
 */
static __attribute__((noinline)) void epilogue(float *cp, int ldc, int mr, const float *bias, int nr, int act) {
  v128_t b0 = wasm_f32x4_splat(0.0f), b1 = b0;
  if (bias) {
    if (nr == NR) {
      b0 = wasm_v128_load(bias);
      b1 = wasm_v128_load(bias + 4);
    } else {
      float t[NR] __attribute__((aligned(16)));
      for (int j = 0; j < NR; j++) t[j] = j < nr ? bias[j] : 0.0f;
      b0 = wasm_v128_load(t);
      b1 = wasm_v128_load(t + 4);
    }
  }
  for (int r = 0; r < mr; r++) {
    float *p = cp + r * ldc;
    v128_t v0 = wasm_v128_load(p), v1 = wasm_v128_load(p + 4);
    if (bias) {
      v0 = wasm_f32x4_add(v0, b0);
      v1 = wasm_f32x4_add(v1, b1);
    }
    if (act == 1) {
      v0 = gelu4(v0);
      v1 = gelu4(v1);
    }
    wasm_v128_store(p, v0);
    wasm_v128_store(p + 4, v1);
  }
}

/**
 * C block rows [i0, i1) × panels [p0, p1) of one product, over k in [k0, k1): accumulating into C when k0 > 0 or
 * `accumulate`. `a` points at A[0, 0] of this product, `bp` at its packed panel 0, `c` at C[0, 0] (row stride ldc).
 */
static void block(const float *a, const float *bp, float *c, int ldc, int n, int i0, int i1, int p0, int p1, int k0,
                  int k1, int sai, int sak, int bstep, int pstep, const float *bias, int act) {
  float apack[MR * KC] __attribute__((aligned(16)));
  float edge[MR * NR] __attribute__((aligned(16)));
  for (int kb = k0; kb < k1; kb += KC) {
    int kc = imin(KC, k1 - kb);
    int acc = kb > k0;
    int last = kb + kc >= k1 && (bias || act);
    for (int i = i0; i < i1; i += MR) {
      int mr = imin(MR, i1 - i);
      pack_a(a + i * sai + kb * sak, apack, mr, kc, sai, sak);
      for (int p = p0; p < p1; p++) {
        int nr = imin(NR, n - p * NR);
        const float *bq = bp + p * pstep + kb * bstep;
        float *cq = c + i * ldc + p * NR;
        const float *bj = bias ? bias + p * NR : 0;
        if (mr == MR && nr == NR) {
          tile(apack, bq, kc, cq, ldc, acc, bstep);
          if (last) epilogue(cq, ldc, MR, bj, NR, act);
        } else {
          if (acc) {
            for (int r = 0; r < MR; r++)
              for (int j = 0; j < NR; j++) edge[r * NR + j] = r < mr && j < nr ? cq[r * ldc + j] : 0.0f;
          }
          tile(apack, bq, kc, edge, NR, acc, bstep);
          if (last) epilogue(edge, NR, mr, bj, nr, act);
          for (int r = 0; r < mr; r++)
            for (int j = 0; j < nr; j++) cq[r * ldc + j] = edge[r * NR + j];
        }
      }
    }
  }
}

/**
 * The products: batch o (0 ≤ o < batch) reads A at a + (amap ? amap[o] : o)·sab and B's panels at
 * bp + (bmap ? bmap[o] : o)·sbp (sab = 0 or sbp = 0 broadcasts one operand; amap/bmap, int32 tables, any other
 * broadcast), writes C at c + o·M·N. B's panel p, row k is at p·pstep + k·bstep: packed (pstep = K·8, bstep = 8)
 * or, for a row-major B with N a multiple of 8, read in place (pstep = 8, bstep = N: no packing pass, for long K
 * with few rows, where packing would cost as much as the product). Units: batch × ⌈M/mb⌉ row blocks × ⌈np/pb⌉
 * panel blocks (mb a multiple of MR), split over the tasks. Epilogue (a fused linear): bias (N floats, or 0) is added
 * to every row and act = 1 applies GELU, per tile as its last k block is stored (while it is in L1).
 */
KERNEL void gemm_f32(int task, int ntasks, const float *a, const float *bp, float *c, const int *amap, const int *bmap,
                     int batch, int m, int n, int k, int sai, int sak, int sab, int sbp, int mb, int pb, int bstep,
                     int pstep, const float *bias, int act) {
  int np = (n + NR - 1) / NR;
  int nmb = (m + mb - 1) / mb, npb = (np + pb - 1) / pb;
  int per = nmb * npb;
  int lo, hi;
  split(batch * per, task, ntasks, &lo, &hi);
  for (int u = lo; u < hi; u++) {
    int o = u / per, rest = u - o * per;
    int ib = rest / npb, jb = rest - ib * npb;
    const float *ao = a + (amap ? amap[o] : o) * sab;
    const float *bo = bp + (bmap ? bmap[o] : o) * sbp;
    block(ao, bo, c + o * m * n, n, n, ib * mb, imin(m, ib * mb + mb), jb * pb, imin(np, jb * pb + pb), 0, k, sai,
          sak, bstep, pstep, bias, act);
  }
}

/**
 * gemm_f32 with K cut into nks chunks of kcs (a multiple of KC; the last one shorter): unit (o, chunk s, row
 * block, panel block) writes its partial sums to part + (s·batch + o)·M·N. Then gemm_reduce adds the chunks.
 */
KERNEL void gemm_f32_ksplit(int task, int ntasks, const float *a, const float *bp, float *part, const int *amap,
                            const int *bmap, int batch, int m, int n, int k, int sai, int sak, int sab, int sbp, int mb,
                            int pb, int bstep, int pstep, int kcs) {
  int np = (n + NR - 1) / NR;
  int nks = (k + kcs - 1) / kcs;
  int nmb = (m + mb - 1) / mb, npb = (np + pb - 1) / pb;
  int per = nmb * npb;
  int lo, hi;
  split(batch * nks * per, task, ntasks, &lo, &hi);
  for (int u = lo; u < hi; u++) {
    int os = u / per, rest = u - os * per;
    int o = os / nks, s = os - o * nks;
    int ib = rest / npb, jb = rest - ib * npb;
    const float *ao = a + (amap ? amap[o] : o) * sab;
    const float *bo = bp + (bmap ? bmap[o] : o) * sbp;
    block(ao, bo, part + (s * batch + o) * m * n, n, n, ib * mb, imin(m, ib * mb + mb), jb * pb,
          imin(np, jb * pb + pb), s * kcs, imin(k, s * kcs + kcs), sai, sak, bstep, pstep, 0, 0);
  }
}

/** c[e] = ((part[0][e] + part[1][e]) + …) + part[nks−1][e] for e < len (slices len floats apart). */
KERNEL void gemm_reduce(int task, int ntasks, const float *part, float *c, int len, int nks) {
  int lo, hi;
  split((len + 3) / 4, task, ntasks, &lo, &hi);
  lo *= 4;
  hi = imin(len, hi * 4);
  int e = lo;
  for (; e + 4 <= hi; e += 4) {
    v128_t s = wasm_v128_load(part + e);
    for (int q = 1; q < nks; q++) s = wasm_f32x4_add(s, wasm_v128_load(part + q * len + e));
    wasm_v128_store(c + e, s);
  }
  for (; e < hi; e++) {
    float s = part[e];
    for (int q = 1; q < nks; q++) s += part[q * len + e];
    c[e] = s;
  }
}
