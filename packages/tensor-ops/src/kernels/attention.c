// Attention family: the forward of batched scaled dot-product attention in one pass per (batch, head) block.
//
// Per block b (q [M, D], k [N, D], v [N, E], row-major; each block contiguous at q + b·M·D etc., or, token-major,
// the heads interleaved in rows of H·D: see attn_forward's `lay`):
//   S = scale · (q · kᵀ)              (the dot product rounded to float32 first, then × scale: as matMul then mul)
//   c = softmax(S) over the keys       (m = max_j S, e = exp(S − m), c = e / Σ_j e)
//   mixed: a = c · keep + gated,  z = Σ_j a,  p = a / z   (GPSA; keep a scalar per block, gated an [M, N] matrix)
//   plain: p = c
//   o = p · v
// Outputs: o [M, E] and c [M, N] per block, and z [M] when mixed (what the backward, op by op, needs).
//
// Work. Units are (block, row chunk): `rowsplit` chunks of rows per block, so that few blocks can still be shared
// by several threads; a task runs a contiguous range of units. Per block the task packs kᵀ into panels of 8 keys
// (D × 8 floats each, zeros past N) and v into panels of 8 columns (N × 8 floats, zeros past E) in its own scratch
// slot. Rows go 4 at a time: a 4 × 8 register tile of S over every key panel (scaled, the row maxima kept; a row
// past the chunk end repeats the last row and is not written), the softmax (and mix) of each row in a 4 × Np
// scratch (Np = ⌈N/8⌉·8, −∞ past N), then a 4 × 8 register tile of o over every column panel of v (reading p
// from that scratch when mixed, from the rows of c just written when plain).
//
// Sums. Each S and o element is Σ in increasing index order (d, resp. key j) from +0, one float32 multiply and
// one add per term (no FMA), as softbias' GEMM (gemm.c) does. Σ e and Σ a run in 4 lanes (key j in lane j mod 4,
// in increasing j), then (lane0 + lane1) + (lane2 + lane3); c = e / Σe and p = a / z are divisions. Nothing
// depends on the task split: results are bit-identical for any number of threads or tasks.
//
// exp. exp(x) = 2ⁿ · e^r, n = nearest(x·log2 e) (by adding 1.5·2²³, whose sum also holds n in its low bits),
// r = (x − n·ln2_hi) − n·ln2_lo (ln2_hi has 15 significant bits, so n·ln2_hi and x − n·ln2_hi are exact for
// |n| ≤ 151), e^r = 1 + (r + r²·q(r)) with q a degree-4 minimax fit of (e^r − 1 − r)/r² on |r| ≤ 0.3467
// (approximation error 0.06 · 2⁻²⁴ relative, float32 coefficients); 2ⁿ is applied as 2^⌊n/2⌋ · 2^(n−⌊n/2⌋) so
// that results down to the subnormals are right. x is clamped to [−104, 89] (exp(−104) rounds to 0, exp(89) to
// +∞); NaN propagates. Measured against Math.exp over every float32 in [−104.5, 89] (2.27·10⁹ values) and a dense
// grid over [−110, 90]: max relative error 1.367 · 2⁻²⁴ (8.15e-8, at x = 5.2015) for normal results; subnormal
// results within 0.75 of a subnormal step. attention.test.ts re-checks ≤ 1.37 · 2⁻²⁴ on a smaller set.
#include "kernel.h"

#define TR 4 /* rows per tile */
#define NR 8 /* columns per tile */

INLINE int imin(int x, int y) { return x < y ? x : y; }
INLINE int round8(int n) { return (n + 7) & ~7; }

/** exp(x), four lanes (see the header). */
INLINE v128_t exp4(v128_t x) {
  const v128_t log2e = wasm_f32x4_splat(1.44269502f);
  const v128_t ln2hi = wasm_f32x4_splat(0.693145751953125f); /* 0x3f317200 */
  const v128_t ln2lo = wasm_f32x4_splat(1.42860677e-06f);    /* ln2 − ln2hi, rounded */
  const v128_t magic = wasm_f32x4_splat(12582912.0f);        /* 1.5·2²³: adding it rounds to an integer */
  // pmax/pmin with x first keep a NaN x (and map to single x86 instructions, unlike f32x4.max/min).
  x = wasm_f32x4_pmax(x, wasm_f32x4_splat(-104.0f));
  x = wasm_f32x4_pmin(x, wasm_f32x4_splat(89.0f));
  // t = 1.5·2²³ + nearest(x·log2 e) (ties to even); its low bits hold n as an integer.
  v128_t t = wasm_f32x4_add(wasm_f32x4_mul(x, log2e), magic);
  v128_t n = wasm_f32x4_sub(t, magic);
  v128_t r = wasm_f32x4_sub(x, wasm_f32x4_mul(n, ln2hi));
  r = wasm_f32x4_sub(r, wasm_f32x4_mul(n, ln2lo));
  v128_t q = wasm_f32x4_splat(0.0013814539415761828f);
  q = wasm_f32x4_add(wasm_f32x4_mul(q, r), wasm_f32x4_splat(0.008368734270334244f));
  q = wasm_f32x4_add(wasm_f32x4_mul(q, r), wasm_f32x4_splat(0.04166838899254799f));
  q = wasm_f32x4_add(wasm_f32x4_mul(q, r), wasm_f32x4_splat(0.1666652113199234f));
  q = wasm_f32x4_add(wasm_f32x4_mul(q, r), wasm_f32x4_splat(0.4999999403953552f));
  v128_t p = wasm_f32x4_add(wasm_f32x4_splat(1.0f), wasm_f32x4_add(r, wasm_f32x4_mul(wasm_f32x4_mul(r, r), q)));
  // 2ⁿ in two steps (each a normal power of two for −151 ≤ n ≤ 129). A NaN lane has p = NaN whatever the scale.
  v128_t ni = wasm_i32x4_sub(t, wasm_i32x4_splat(0x4B400000));
  v128_t n1 = wasm_i32x4_shr(ni, 1);
  v128_t n2 = wasm_i32x4_sub(ni, n1);
  v128_t s1 = wasm_i32x4_shl(wasm_i32x4_add(n1, wasm_i32x4_splat(127)), 23);
  v128_t s2 = wasm_i32x4_shl(wasm_i32x4_add(n2, wasm_i32x4_splat(127)), 23);
  return wasm_f32x4_mul(wasm_f32x4_mul(p, s1), s2);
}

/** The largest lane (a NaN lane is ignored: its exp is NaN anyway). */
INLINE float hmax4(v128_t m) {
  v128_t h = wasm_f32x4_pmax(m, wasm_i32x4_shuffle(m, m, 2, 3, 0, 1));
  return wasm_f32x4_extract_lane(wasm_f32x4_pmax(h, wasm_i32x4_shuffle(h, h, 1, 0, 3, 2)), 0);
}

INLINE float hsum4(v128_t s) {
  return (wasm_f32x4_extract_lane(s, 0) + wasm_f32x4_extract_lane(s, 1)) +
         (wasm_f32x4_extract_lane(s, 2) + wasm_f32x4_extract_lane(s, 3));
}

/** y[i] = exp(x[i]) for i < n (n a multiple of 4 per task range; the test's probe of exp4). */
KERNEL void attn_exp(int task, int ntasks, const float *x, float *y, int n) {
  int lo, hi;
  split(n / 4, task, ntasks, &lo, &hi);
  for (int i = lo; i < hi; i++) wasm_v128_store(y + 4 * i, exp4(wasm_v128_load(x + 4 * i)));
}

/** kᵀ in panels of 8 keys: dst[(j/8)·D·8 + d·8 + j%8] = k[j·ldk + d] (zeros for N ≤ j < np). */
static void pack_kt(const float *k, float *dst, int N, int D, int np, int ldk) {
  for (int jb = 0; jb < np; jb += NR) {
    float *panel = dst + jb * D;
    const int w = imin(NR, N - jb);
    for (int c = 0; c < w; c++) {
      const float *src = k + (int64_t)(jb + c) * ldk;
      for (int d = 0; d < D; d++) panel[d * NR + c] = src[d];
    }
    for (int c = w; c < NR; c++)
      for (int d = 0; d < D; d++) panel[d * NR + c] = 0.0f;
  }
}

/** v in panels of 8 columns: dst[(e/8)·N·8 + j·8 + e%8] = v[j·ldv + e] (zeros for E ≤ e < ⌈E/8⌉·8). */
static void pack_v(const float *v, float *dst, int N, int E, int ldv) {
  for (int eb = 0; eb < E; eb += NR) {
    float *panel = dst + eb * N;
    const int w = imin(NR, E - eb);
    if (w == NR) {
      for (int j = 0; j < N; j++) {
        wasm_v128_store(panel + j * NR, wasm_v128_load(v + (int64_t)j * ldv + eb));
        wasm_v128_store(panel + j * NR + 4, wasm_v128_load(v + (int64_t)j * ldv + eb + 4));
      }
      continue;
    }
    for (int j = 0; j < N; j++) {
      for (int c = 0; c < w; c++) panel[j * NR + c] = v[(int64_t)j * ldv + eb + c];
      for (int c = w; c < NR; c++) panel[j * NR + c] = 0.0f;
    }
  }
}

/** Lanes at or past w (of a vector starting at a key index j, w = N − j < 4) set to −∞. */
INLINE v128_t mask_tail(v128_t x, int w) {
  v128_t keep = wasm_i32x4_lt(wasm_i32x4_make(0, 1, 2, 3), wasm_i32x4_splat(w));
  return wasm_v128_bitselect(x, wasm_f32x4_splat(-__builtin_inff()), keep);
}

/**
 * Rows 0..3 of S = scale·(q·kᵀ) into s (4 rows of np floats; −∞ past N) from the kᵀ panels, and each row's
 * maximum over its N keys into mx[0..3].
 */
static void scores_tile(const float *q0, const float *q1, const float *q2, const float *q3, const float *kt, float *s,
                        float *mx, int N, int D, int np, float scale) {
  const v128_t vs = wasm_f32x4_splat(scale);
  v128_t m0 = wasm_f32x4_splat(-__builtin_inff()), m1 = m0, m2 = m0, m3 = m0;
  for (int jb = 0; jb < np; jb += NR) {
    v128_t a00 = wasm_f32x4_splat(0.0f), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    const float *kp = kt + jb * D;
    for (int d = 0; d < D; d++) {
      v128_t b0 = wasm_v128_load(kp + d * NR);
      v128_t b1 = wasm_v128_load(kp + d * NR + 4);
      v128_t x0 = wasm_v128_load32_splat(q0 + d);
      v128_t x1 = wasm_v128_load32_splat(q1 + d);
      v128_t x2 = wasm_v128_load32_splat(q2 + d);
      v128_t x3 = wasm_v128_load32_splat(q3 + d);
      a00 = wasm_f32x4_add(a00, wasm_f32x4_mul(x0, b0));
      a01 = wasm_f32x4_add(a01, wasm_f32x4_mul(x0, b1));
      a10 = wasm_f32x4_add(a10, wasm_f32x4_mul(x1, b0));
      a11 = wasm_f32x4_add(a11, wasm_f32x4_mul(x1, b1));
      a20 = wasm_f32x4_add(a20, wasm_f32x4_mul(x2, b0));
      a21 = wasm_f32x4_add(a21, wasm_f32x4_mul(x2, b1));
      a30 = wasm_f32x4_add(a30, wasm_f32x4_mul(x3, b0));
      a31 = wasm_f32x4_add(a31, wasm_f32x4_mul(x3, b1));
    }
    a00 = wasm_f32x4_mul(a00, vs), a01 = wasm_f32x4_mul(a01, vs), a10 = wasm_f32x4_mul(a10, vs);
    a11 = wasm_f32x4_mul(a11, vs), a20 = wasm_f32x4_mul(a20, vs), a21 = wasm_f32x4_mul(a21, vs);
    a30 = wasm_f32x4_mul(a30, vs), a31 = wasm_f32x4_mul(a31, vs);
    if (jb + NR > N) {
      const int w = N - jb;
      a00 = mask_tail(a00, w), a10 = mask_tail(a10, w), a20 = mask_tail(a20, w), a30 = mask_tail(a30, w);
      a01 = mask_tail(a01, w - 4), a11 = mask_tail(a11, w - 4), a21 = mask_tail(a21, w - 4), a31 = mask_tail(a31, w - 4);
    }
    m0 = wasm_f32x4_pmax(m0, wasm_f32x4_pmax(a00, a01));
    m1 = wasm_f32x4_pmax(m1, wasm_f32x4_pmax(a10, a11));
    m2 = wasm_f32x4_pmax(m2, wasm_f32x4_pmax(a20, a21));
    m3 = wasm_f32x4_pmax(m3, wasm_f32x4_pmax(a30, a31));
    wasm_v128_store(s + jb, a00);
    wasm_v128_store(s + jb + 4, a01);
    wasm_v128_store(s + np + jb, a10);
    wasm_v128_store(s + np + jb + 4, a11);
    wasm_v128_store(s + 2 * np + jb, a20);
    wasm_v128_store(s + 2 * np + jb + 4, a21);
    wasm_v128_store(s + 3 * np + jb, a30);
    wasm_v128_store(s + 3 * np + jb + 4, a31);
  }
  mx[0] = hmax4(m0);
  mx[1] = hmax4(m1);
  mx[2] = hmax4(m2);
  mx[3] = hmax4(m3);
}

/** Store the first w (≤ 4) lanes of x at dst. */
INLINE void store_part(float *dst, v128_t x, int w) {
  if (w >= 4) {
    wasm_v128_store(dst, x);
    return;
  }
  if (w > 0) dst[0] = wasm_f32x4_extract_lane(x, 0);
  if (w > 1) dst[1] = wasm_f32x4_extract_lane(x, 1);
  if (w > 2) dst[2] = wasm_f32x4_extract_lane(x, 2);
}

/** Load the first w (≤ 4) floats of src (zeros after). */
INLINE v128_t load_part(const float *src, int w) {
  if (w >= 4) return wasm_v128_load(src);
  v128_t x = wasm_f32x4_splat(0.0f);
  if (w > 0) x = wasm_f32x4_replace_lane(x, 0, src[0]);
  if (w > 1) x = wasm_f32x4_replace_lane(x, 1, src[1]);
  if (w > 2) x = wasm_f32x4_replace_lane(x, 2, src[2]);
  return x;
}

/**
 * One row of scores s (np floats, scaled, −∞ past N; its maximum mx) → the softmax c (written to crow, N floats)
 * and, mixed, p = (c·keep + g)/z in s (g the gated row; z written to *zout).
 */
static void softmax_row(float *s, float mx, float *crow, const float *g, float keep, float *zout, int N, int np,
                        int mixed) {
  const v128_t m = wasm_f32x4_splat(mx);
  v128_t sum = wasm_f32x4_splat(0.0f);
  for (int j = 0; j < np; j += 4) {
    v128_t e = exp4(wasm_f32x4_sub(wasm_v128_load(s + j), m));
    wasm_v128_store(s + j, e);
    sum = wasm_f32x4_add(sum, e);
  }
  const v128_t tot = wasm_f32x4_splat(hsum4(sum));
  if (!mixed) {
    // p = c: output_tile reads it from crow.
    for (int j = 0; j < np; j += 4) store_part(crow + j, wasm_f32x4_div(wasm_v128_load(s + j), tot), N - j);
    return;
  }
  const v128_t vk = wasm_f32x4_splat(keep);
  v128_t zs = wasm_f32x4_splat(0.0f);
  for (int j = 0; j < np; j += 4) {
    v128_t c = wasm_f32x4_div(wasm_v128_load(s + j), tot);
    store_part(crow + j, c, N - j);
    v128_t a = wasm_f32x4_add(wasm_f32x4_mul(c, vk), load_part(g + j, N - j));
    wasm_v128_store(s + j, a);
    zs = wasm_f32x4_add(zs, a);
  }
  const float zf = hsum4(zs);
  *zout = zf;
  const v128_t z = wasm_f32x4_splat(zf);
  for (int j = 0; j < np; j += 4) wasm_v128_store(s + j, wasm_f32x4_div(wasm_v128_load(s + j), z));
}

/** Rows 0..rows−1 (≤ 4) of o = p·v from p (4 rows `ps` floats apart; rows past `rows` are ignored), o's rows ldo apart. */
static void output_tile(const float *p, int ps, const float *vp, float *o, int rows, int N, int E, int ldo) {
  const float *p0 = p, *p1 = p + (rows > 1 ? ps : 0), *p2 = p + (rows > 2 ? 2 * ps : 0), *p3 = p + (rows > 3 ? 3 * ps : 0);
  for (int eb = 0; eb < E; eb += NR) {
    v128_t a00 = wasm_f32x4_splat(0.0f), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    const float *vb = vp + eb * N;
    for (int j = 0; j < N; j++) {
      v128_t b0 = wasm_v128_load(vb + j * NR);
      v128_t b1 = wasm_v128_load(vb + j * NR + 4);
      v128_t x0 = wasm_v128_load32_splat(p0 + j);
      v128_t x1 = wasm_v128_load32_splat(p1 + j);
      v128_t x2 = wasm_v128_load32_splat(p2 + j);
      v128_t x3 = wasm_v128_load32_splat(p3 + j);
      a00 = wasm_f32x4_add(a00, wasm_f32x4_mul(x0, b0));
      a01 = wasm_f32x4_add(a01, wasm_f32x4_mul(x0, b1));
      a10 = wasm_f32x4_add(a10, wasm_f32x4_mul(x1, b0));
      a11 = wasm_f32x4_add(a11, wasm_f32x4_mul(x1, b1));
      a20 = wasm_f32x4_add(a20, wasm_f32x4_mul(x2, b0));
      a21 = wasm_f32x4_add(a21, wasm_f32x4_mul(x2, b1));
      a30 = wasm_f32x4_add(a30, wasm_f32x4_mul(x3, b0));
      a31 = wasm_f32x4_add(a31, wasm_f32x4_mul(x3, b1));
    }
    int w = E - eb;
    int w0 = imin(w, 4), w1 = w - 4;
    store_part(o + eb, a00, w0);
    if (w1 > 0) store_part(o + eb + 4, a01, w1);
    if (rows > 1) {
      store_part(o + ldo + eb, a10, w0);
      if (w1 > 0) store_part(o + ldo + eb + 4, a11, w1);
    }
    if (rows > 2) {
      store_part(o + 2 * ldo + eb, a20, w0);
      if (w1 > 0) store_part(o + 2 * ldo + eb + 4, a21, w1);
    }
    if (rows > 3) {
      store_part(o + 3 * ldo + eb, a30, w0);
      if (w1 > 0) store_part(o + 3 * ldo + eb + 4, a31, w1);
    }
  }
}

/** Floats of one task's scratch slot. */
INLINE int slot_floats(int N, int D, int E) {
  int np = round8(N);
  return D * np + N * round8(E) + TR * np;
}

/**
 * The attention forward (see the header) over nblk blocks. keep/gated/z are 0 when plain. Block b = bb·H + h
 * reads keep[bb·kbs + h·khs] and the gated matrix at gated + (bb·gbs + h·ghs) floats. scratch: ntasks slots of
 * slot_floats(N, D, E) floats (16-byte aligned). lay: 12 int32 strides in floats, (batch, head, row) for q, k, v
 * and o in that order: block (bb, h) of q starts at q + bb·lay[0] + h·lay[1] and its rows are lay[2] apart
 * (contiguous heads: (H·M·D, M·D, D); token-major [B, M, H·D]: (M·H·D, D, H·D)). c and z are contiguous.
 */
KERNEL void attn_forward(int task, int ntasks, const float *q, const float *k, const float *v, const float *keep,
                         const float *gated, float *o, float *c, float *z, float *scratch, int nblk, int H, int M, int N,
                         int D, int E, float scale, int kbs, int khs, int gbs, int ghs, int rowsplit, const int *lay) {
  const int mixed = keep != 0;
  const int np = round8(N);
  float *kt = scratch + (int64_t)task * slot_floats(N, D, E);
  float *vp = kt + D * np;
  float *s = vp + N * round8(E);
  int lo, hi;
  split(nblk * rowsplit, task, ntasks, &lo, &hi);
  int packed = -1;
  float mx[TR];
  for (int u = lo; u < hi; u++) {
    const int b = u / rowsplit, part = u % rowsplit;
    const int bb = b / H, h = b % H;
    const float *qb = q + (int64_t)bb * lay[0] + (int64_t)h * lay[1];
    const int ldq = lay[2], ldo = lay[11];
    if (packed != b) {
      pack_kt(k + (int64_t)bb * lay[3] + (int64_t)h * lay[4], kt, N, D, np, lay[5]);
      pack_v(v + (int64_t)bb * lay[6] + (int64_t)h * lay[7], vp, N, E, lay[8]);
      packed = b;
    }
    float *ob = o + (int64_t)bb * lay[9] + (int64_t)h * lay[10];
    const float kv = mixed ? keep[bb * kbs + h * khs] : 0.0f;
    const float *gb = mixed ? gated + (int64_t)bb * gbs + (int64_t)h * ghs : 0;
    int r0, r1;
    split(M, part, rowsplit, &r0, &r1);
    for (int i = r0; i < r1; i += TR) {
      const int rows = imin(TR, r1 - i);
      const float *q0 = qb + (int64_t)i * ldq;
      const float *q1 = qb + (int64_t)(i + imin(1, rows - 1)) * ldq;
      const float *q2 = qb + (int64_t)(i + imin(2, rows - 1)) * ldq;
      const float *q3 = qb + (int64_t)(i + imin(3, rows - 1)) * ldq;
      scores_tile(q0, q1, q2, q3, kt, s, mx, N, D, np, scale);
      for (int r = 0; r < rows; r++) {
        const int64_t row = (int64_t)b * M + i + r;
        softmax_row(s + r * np, mx[r], c + row * N, mixed ? gb + (int64_t)(i + r) * N : 0, kv, mixed ? z + row : 0, N,
                    np, mixed);
      }
      float *orow = ob + (int64_t)i * ldo;
      if (mixed) output_tile(s, np, vp, orow, rows, N, E, ldo);
      else output_tile(c + ((int64_t)b * M + i) * N, N, vp, orow, rows, N, E, ldo);
    }
  }
}
