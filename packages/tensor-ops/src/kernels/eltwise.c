// Element-wise family: exact GELU (forward and gradient) and LayerNorm over the last axis (forward and gradient).
//
// GELU(x) = x·Φ(x), Φ the standard normal CDF, in float32 (no float64, no tables). Two regions, both evaluated for
// every lane and selected per lane:
//   |x| < 1:  Φ(x) = 1/2 + x·S(x²), S a degree-5 minimax polynomial (relative error 7e-10 in float64).
//   |x| ≥ 1:  Φ(−a) = e^{−a²/2}·g(a) (a = |x|), g(a) = erfcx(a/√2)/2 a (3,4) rational minimax in a on [1, 14.5]
//             (relative error 3.4e-8 in float64); Φ(x) = 1 − Φ(−x) for x > 0, GELU computed as x − x·Φ(−x).
// e^{−a²/2} is exp(−(h²/2 + l)) with h = a rounded to 12 bits (h²/2 exact) and l = (a−h)(a+h)/2, the split fed to
// a Cody–Waite range reduction, so the tail Φ(−a) keeps its relative accuracy down to the smallest floats (no
// cancellation 1 + erf). Above |x| = 14.5 GELU is x (x > 0) or −0 (x·Φ(x) underflows). NaN propagates.
// The polynomial coefficients were fitted in float64 (scipy's erfcx as the reference) and rounded to float32.
// Measured error (eltwise.test.ts, every 7th float32 in [−16, 16] and all of [0.9, 1.1]): see the test.
//
// LayerNorm: per row, mean and biased variance by two passes in float32 (sums in a fixed order: 4 vector
// accumulators, then the lanes, then the tail), rstd = 1/√(var + eps) (PyTorch semantics), y = (x − μ)·rstd·w + b.
// The gradient recomputes μ and rstd from x (same code, same values) and writes per-task partial sums of dw and db
// for a fixed number of row blocks; `layernorm_grad_reduce` adds the blocks in order (deterministic for any number
// of threads).
#include "kernel.h"

#define F4(c) wasm_f32x4_splat(c)

/** The first n (1..3) floats at p, the other lanes 0. */
INLINE v128_t load_partial(const float *p, int n) {
  return wasm_f32x4_make(p[0], n > 1 ? p[1] : 0.0f, n > 2 ? p[2] : 0.0f, 0.0f);
}
INLINE void store_partial(float *p, v128_t v, int n) {
  p[0] = wasm_f32x4_extract_lane(v, 0);
  if (n > 1) p[1] = wasm_f32x4_extract_lane(v, 1);
  if (n > 2) p[2] = wasm_f32x4_extract_lane(v, 2);
}

// ---------------------------------------------------------------------------------------------------------
// GELU
// ---------------------------------------------------------------------------------------------------------

#define GELU_AMAX 14.5f

/** The pieces of GELU and its gradient for one vector (see the top of this file). */
typedef struct {
  v128_t ac;    // min(|x|, 14.5)
  v128_t small; // |x| < 1
  v128_t s;     // S(x²): Φ(x) = 1/2 + x·S(x²) for |x| < 1
  v128_t u;     // x²
  v128_t e1;    // e^{−ac²/2} = e1·s2 (two factors: the product may be subnormal)
  v128_t s2;
  v128_t g;     // P(ac)/Q(ac): Φ(−ac) = e^{−ac²/2}·g for |x| ≥ 1
} gelu_parts;

INLINE gelu_parts gelu_eval(v128_t x) {
  gelu_parts r;
  v128_t a = wasm_v128_and(x, wasm_i32x4_splat(0x7fffffff));
  r.ac = wasm_f32x4_pmin(a, F4(GELU_AMAX)); // AMAX < a ? AMAX : a (a when NaN)
  r.small = wasm_f32x4_lt(a, F4(1.0f));

  // Region 1: S(u), u = x², degree 5 (7e-10 relative in float64).
  v128_t u = wasm_f32x4_mul(x, x);
  v128_t s = F4(-7.654205546714365e-06f);
  s = wasm_f32x4_add(wasm_f32x4_mul(s, u), F4(0.00011348635598551482f));
  s = wasm_f32x4_add(wasm_f32x4_mul(s, u), F4(-0.001186329871416092f));
  s = wasm_f32x4_add(wasm_f32x4_mul(s, u), F4(0.009973322972655296f));
  s = wasm_f32x4_add(wasm_f32x4_mul(s, u), F4(-0.06649035960435867f));
  s = wasm_f32x4_add(wasm_f32x4_mul(s, u), F4(0.3989422917366028f));
  r.s = s;
  r.u = u;

  // e^{−ac²/2} = e^{−w}, w = hh + lo: h = ac with 12 significant bits, hh = (h/2)·h exact, lo = ((ac−h)/2)·(ac+h).
  v128_t ac = r.ac;
  v128_t h = wasm_v128_and(ac, wasm_i32x4_splat((int32_t)0xfffff000));
  v128_t hh = wasm_f32x4_mul(wasm_f32x4_mul(h, F4(0.5f)), h);
  v128_t lo = wasm_f32x4_mul(wasm_f32x4_mul(wasm_f32x4_sub(ac, h), F4(0.5f)), wasm_f32x4_add(ac, h));
  // n = round(−w·log2 e) by the 1.5·2²³ trick (the add rounds to an integer); its integer from the bits.
  const v128_t magic = F4(12582912.0f);
  v128_t t = wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_add(hh, lo), F4(-1.44269504088896341f)), magic);
  v128_t n = wasm_f32x4_sub(t, magic);
  v128_t ni = wasm_i32x4_sub(t, magic);
  // v = w + n·ln2 (ln2 = C1 + C2, C1 = 355/512: n·C1 exact, hh + n·C1 exact by Sterbenz); e^{−w} = 2ⁿ·e^{−v}.
  v128_t v = wasm_f32x4_add(hh, wasm_f32x4_mul(n, F4(0.693359375f)));
  v = wasm_f32x4_add(v, wasm_f32x4_mul(n, F4(-2.12194440e-4f)));
  v = wasm_f32x4_add(v, lo);
  // e^{−v}, |v| ≤ ln2/2: Cephes expf, 1 + r + r²·P(r) at r = −v (odd coefficients negated).
  v128_t p = F4(-1.9875691500e-4f);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, v), F4(1.3981999507e-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, v), F4(-8.3334519073e-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, v), F4(4.1665795894e-2f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, v), F4(-1.6666665459e-1f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, v), F4(5.0000001201e-1f));
  p = wasm_f32x4_add(wasm_f32x4_sub(wasm_f32x4_mul(wasm_f32x4_mul(p, v), v), v), F4(1.0f));
  // 2ⁿ as two normal factors (n ≥ −152): 2^(n>>1) · 2^(n − (n>>1)).
  v128_t n1 = wasm_i32x4_shr(ni, 1);
  v128_t n2 = wasm_i32x4_sub(ni, n1);
  v128_t s1 = wasm_i32x4_shl(wasm_i32x4_add(n1, wasm_i32x4_splat(127)), 23);
  r.s2 = wasm_i32x4_shl(wasm_i32x4_add(n2, wasm_i32x4_splat(127)), 23);
  r.e1 = wasm_f32x4_mul(p, s1);

  // Region 2: g = P(ac)/Q(ac), a (3,4) rational (3.4e-8 relative in float64 on [1, 14.5]).
  v128_t pn = F4(0.02450544200837612f);
  pn = wasm_f32x4_add(wasm_f32x4_mul(pn, ac), F4(0.14384932816028595f));
  pn = wasm_f32x4_add(wasm_f32x4_mul(pn, ac), F4(0.4002052843570709f));
  pn = wasm_f32x4_add(wasm_f32x4_mul(pn, ac), F4(0.4997887909412384f));
  v128_t qd = F4(0.06142759323120117f);
  qd = wasm_f32x4_add(wasm_f32x4_mul(qd, ac), F4(0.36050158739089966f));
  qd = wasm_f32x4_add(wasm_f32x4_mul(qd, ac), F4(1.0661152601242065f));
  qd = wasm_f32x4_add(wasm_f32x4_mul(qd, ac), F4(1.5961970090866089f));
  qd = wasm_f32x4_add(wasm_f32x4_mul(qd, ac), F4(1.0f));
  r.g = wasm_f32x4_div(pn, qd);
  return r;
}

/**
 * GELU(x): |x| < 1: x/2 + x²·S(x²); |x| ≥ 1: max(x, 0) − ac·Φ(−ac) (= x·Φ(−|x|) for x < 0, x − x·Φ(−x) for
 * x > 0; with ac the clamped |x|, ±inf give +inf and 0, and Φ(−ac) underflows to 0 above 14.5). NaN propagates.
 */
INLINE v128_t gelu4(v128_t x) {
  gelu_parts r = gelu_eval(x);
  v128_t q = wasm_f32x4_mul(wasm_f32x4_mul(r.e1, r.g), r.s2); // Φ(−ac)
  v128_t big = wasm_f32x4_sub(wasm_f32x4_pmax(x, F4(0.0f)), wasm_f32x4_mul(r.ac, q));
  v128_t small = wasm_f32x4_add(wasm_f32x4_mul(x, F4(0.5f)), wasm_f32x4_mul(r.u, r.s));
  return wasm_v128_bitselect(small, big, r.small);
}

/**
 * GELU'(x) = Φ(x) + x·φ(x): |x| < 1: 1/2 + x·S + x·φ(x); |x| ≥ 1, with D = e^{−ac²/2}·(g − ac/√(2π)):
 * D for x < 0, 1 − D for x > 0 (so ±inf give 0 and 1).
 */
INLINE v128_t gelu_grad4(v128_t x) {
  gelu_parts r = gelu_eval(x);
  v128_t e = wasm_f32x4_mul(r.e1, r.s2);
  v128_t pdf = wasm_f32x4_mul(e, F4(0.3989422804014327f));
  v128_t small = wasm_f32x4_add(wasm_f32x4_add(F4(0.5f), wasm_f32x4_mul(x, r.s)), wasm_f32x4_mul(x, pdf));
  v128_t d = wasm_f32x4_mul(wasm_f32x4_mul(wasm_f32x4_sub(r.g, wasm_f32x4_mul(r.ac, F4(0.3989422804014327f))), r.e1), r.s2);
  v128_t big = wasm_v128_bitselect(d, wasm_f32x4_sub(F4(1.0f), d), wasm_f32x4_lt(x, F4(0.0f)));
  return wasm_v128_bitselect(small, big, r.small);
}

/** Elements [lo, hi) of n for this task, in whole vectors of 4 (the last task takes the tail). */
INLINE void split4(int n, int task, int ntasks, int *lo, int *hi) {
  int b0, b1;
  split((n + 3) / 4, task, ntasks, &b0, &b1);
  *lo = b0 * 4;
  *hi = b1 * 4 < n ? b1 * 4 : n;
}

/** y = GELU(x) for n floats. */
KERNEL void gelu_f32(int task, int ntasks, const float *x, float *y, int n) {
  int lo, hi;
  split4(n, task, ntasks, &lo, &hi);
  int i = lo;
  for (; i + 4 <= hi; i += 4) wasm_v128_store(y + i, gelu4(wasm_v128_load(x + i)));
  if (i < hi) store_partial(y + i, gelu4(load_partial(x + i, hi - i)), hi - i);
}

/** dx = dy · GELU'(x) for n floats. */
KERNEL void gelu_grad_f32(int task, int ntasks, const float *x, const float *dy, float *dx, int n) {
  int lo, hi;
  split4(n, task, ntasks, &lo, &hi);
  int i = lo;
  for (; i + 4 <= hi; i += 4) {
    wasm_v128_store(dx + i, wasm_f32x4_mul(wasm_v128_load(dy + i), gelu_grad4(wasm_v128_load(x + i))));
  }
  if (i < hi) {
    int m = hi - i;
    store_partial(dx + i, wasm_f32x4_mul(load_partial(dy + i, m), gelu_grad4(load_partial(x + i, m))), m);
  }
}

// ---------------------------------------------------------------------------------------------------------
// LayerNorm over the last axis
// ---------------------------------------------------------------------------------------------------------

/** Lanes of v added in a fixed order: (v0 + v1) + (v2 + v3). */
INLINE float hsum(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
         (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

/** Σ x[j] over a row of c floats, in a fixed order. */
INLINE float row_sum(const float *x, int c) {
  v128_t a0 = F4(0.0f), a1 = F4(0.0f), a2 = F4(0.0f), a3 = F4(0.0f);
  int j = 0;
  for (; j + 16 <= c; j += 16) {
    a0 = wasm_f32x4_add(a0, wasm_v128_load(x + j));
    a1 = wasm_f32x4_add(a1, wasm_v128_load(x + j + 4));
    a2 = wasm_f32x4_add(a2, wasm_v128_load(x + j + 8));
    a3 = wasm_f32x4_add(a3, wasm_v128_load(x + j + 12));
  }
  for (; j + 4 <= c; j += 4) a0 = wasm_f32x4_add(a0, wasm_v128_load(x + j));
  float s = hsum(wasm_f32x4_add(wasm_f32x4_add(a0, a1), wasm_f32x4_add(a2, a3)));
  for (; j < c; j++) s += x[j];
  return s;
}

/** Σ (x[j] − m)² over a row, in a fixed order. */
INLINE float row_sumsq(const float *x, int c, float m) {
  v128_t mv = F4(m);
  v128_t a0 = F4(0.0f), a1 = F4(0.0f), a2 = F4(0.0f), a3 = F4(0.0f);
  int j = 0;
  for (; j + 16 <= c; j += 16) {
    v128_t d0 = wasm_f32x4_sub(wasm_v128_load(x + j), mv);
    v128_t d1 = wasm_f32x4_sub(wasm_v128_load(x + j + 4), mv);
    v128_t d2 = wasm_f32x4_sub(wasm_v128_load(x + j + 8), mv);
    v128_t d3 = wasm_f32x4_sub(wasm_v128_load(x + j + 12), mv);
    a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(d0, d0));
    a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(d1, d1));
    a2 = wasm_f32x4_add(a2, wasm_f32x4_mul(d2, d2));
    a3 = wasm_f32x4_add(a3, wasm_f32x4_mul(d3, d3));
  }
  for (; j + 4 <= c; j += 4) {
    v128_t d = wasm_f32x4_sub(wasm_v128_load(x + j), mv);
    a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(d, d));
  }
  float s = hsum(wasm_f32x4_add(wasm_f32x4_add(a0, a1), wasm_f32x4_add(a2, a3)));
  for (; j < c; j++) {
    float d = x[j] - m;
    s += d * d;
  }
  return s;
}

/** Mean and 1/√(biased variance + eps) of one row. */
INLINE void row_stats(const float *x, int c, float eps, float *mean, float *rstd) {
  float m = row_sum(x, c) / (float)c;
  float v = row_sumsq(x, c, m) / (float)c;
  *mean = m;
  *rstd = 1.0f / __builtin_sqrtf(v + eps);
}

/** y[r, :] = (x[r, :] − μ_r)·rstd_r·w + b for rows × c floats (w, b of c floats). */
KERNEL void layernorm_f32(int task, int ntasks, const float *x, const float *w, const float *b, float *y, int rows,
                          int c, float eps) {
  int lo, hi;
  split(rows, task, ntasks, &lo, &hi);
  for (int r = lo; r < hi; r++) {
    const float *xr = x + (int64_t)r * c;
    float *yr = y + (int64_t)r * c;
    float m, rs;
    row_stats(xr, c, eps, &m, &rs);
    v128_t mv = F4(m), rv = F4(rs);
    int j = 0;
    for (; j + 4 <= c; j += 4) {
      v128_t t = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(xr + j), mv), rv);
      wasm_v128_store(yr + j, wasm_f32x4_add(wasm_f32x4_mul(t, wasm_v128_load(w + j)), wasm_v128_load(b + j)));
    }
    for (; j < c; j++) yr[j] = (xr[j] - m) * rs * w[j] + b[j];
  }
}

/**
 * dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·w, x̂ = (x − μ)·rstd, per row; per task (a block of rows)
 * the partial sums Σ dy·x̂ and Σ dy over its rows go to part[task·2c .. +c) and part[task·2c + c .. +c).
 */
KERNEL void layernorm_grad_f32(int task, int ntasks, const float *x, const float *w, const float *dy, float *dx,
                               float *part, int rows, int c, float eps) {
  int lo, hi;
  split(rows, task, ntasks, &lo, &hi);
  float *pw = part + (int64_t)task * 2 * c;
  float *pb = pw + c;
  for (int j = 0; j < c; j++) pw[j] = pb[j] = 0.0f;
  const float inv_c = 1.0f / (float)c;
  for (int r = lo; r < hi; r++) {
    const float *xr = x + (int64_t)r * c;
    const float *dyr = dy + (int64_t)r * c;
    float *dxr = dx + (int64_t)r * c;
    float m, rs;
    row_stats(xr, c, eps, &m, &rs);
    v128_t mv = F4(m), rv = F4(rs);
    // Σ g and Σ g·x̂, and the partial sums of dw, db.
    v128_t sg = F4(0.0f), sgx = F4(0.0f);
    int j = 0;
    for (; j + 4 <= c; j += 4) {
      v128_t xh = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(xr + j), mv), rv);
      v128_t d = wasm_v128_load(dyr + j);
      v128_t gg = wasm_f32x4_mul(d, wasm_v128_load(w + j));
      sg = wasm_f32x4_add(sg, gg);
      sgx = wasm_f32x4_add(sgx, wasm_f32x4_mul(gg, xh));
      wasm_v128_store(pw + j, wasm_f32x4_add(wasm_v128_load(pw + j), wasm_f32x4_mul(d, xh)));
      wasm_v128_store(pb + j, wasm_f32x4_add(wasm_v128_load(pb + j), d));
    }
    float s1 = hsum(sg), s2 = hsum(sgx);
    for (int k = j; k < c; k++) {
      float xh = (xr[k] - m) * rs;
      float gg = dyr[k] * w[k];
      s1 += gg;
      s2 += gg * xh;
      pw[k] += dyr[k] * xh;
      pb[k] += dyr[k];
    }
    float mg = s1 * inv_c, mgx = s2 * inv_c;
    v128_t mgv = F4(mg), mgxv = F4(mgx);
    for (j = 0; j + 4 <= c; j += 4) {
      v128_t xh = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(xr + j), mv), rv);
      v128_t gg = wasm_f32x4_mul(wasm_v128_load(dyr + j), wasm_v128_load(w + j));
      v128_t t = wasm_f32x4_sub(wasm_f32x4_sub(gg, mgv), wasm_f32x4_mul(xh, mgxv));
      wasm_v128_store(dxr + j, wasm_f32x4_mul(t, rv));
    }
    for (; j < c; j++) {
      float xh = (xr[j] - m) * rs;
      float gg = dyr[j] * w[j];
      dxr[j] = ((gg - mg) - xh * mgx) * rs;
    }
  }
}

/** dw[j] = Σ_p part[p·2c + j], db[j] = Σ_p part[p·2c + c + j] over the nparts blocks in order; columns split by task. */
KERNEL void layernorm_grad_reduce(int task, int ntasks, const float *part, int nparts, int c, float *dw, float *db) {
  int lo, hi;
  split(2 * c, task, ntasks, &lo, &hi);
  for (int j = lo; j < hi; j++) {
    float s = 0.0f;
    for (int p = 0; p < nparts; p++) s += part[(int64_t)p * 2 * c + j];
    if (j < c) dw[j] = s;
    else db[j - c] = s;
  }
}
