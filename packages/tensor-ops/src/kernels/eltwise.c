// Element-wise family: exact GELU (forward and gradient) and LayerNorm over the last axis (forward and gradient).
//
// GELU (gelu.h, shared with the GEMM's fused epilogue): the forward is PyTorch's float32 formula (x/2)·(1 + erf(x/√2))
// with erf a (5, 5) rational in x² (see gelu4). The gradient GELU'(x) = Φ(x) + x·φ(x) evaluates Φ in two regions,
// both for every lane, selected per lane:
//   |x| < 1:  Φ(x) = 1/2 + x·S(x²), S a degree-5 minimax polynomial (relative error 7e-10 in float64).
//   |x| ≥ 1:  Φ(−a) = e^{−a²/2}·g(a) (a = |x|), g(a) = erfcx(a/√2)/2 a (3,4) rational minimax in a on [1, 14.5]
//             (relative error 3.4e-8 in float64).
// e^{−a²/2} is exp(−(h²/2 + l)) with h = a rounded to 12 bits (h²/2 exact) and l = (a−h)(a+h)/2, the split fed to
// a Cody–Waite range reduction, so φ and the tail Φ(−a) keep their relative accuracy down to the smallest floats.
// The coefficients were fitted in float64 (scipy's erf / erfcx as the reference) and rounded to float32.
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

#include "gelu.h"


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
