// Broadcast binary family: y[g, r, c] = x[g, r, c] (op) v[g, c] — a vector over the last axis per group of rows:
// one group for a bias add or a per-channel scale ([..., C] with [C]); one group per image for per-image channel
// factors ([B, H, W, C] with [B, 1, 1, C], GRN). tfjs-backend-wasm's threaded build runs these broadcasts several
// times slower than its single-threaded one. Tasks split the groups × rows.
#include "kernel.h"

#define ROW_OP(NAME, VOP, SOP)                                                                               \
  KERNEL void NAME(int task, int ntasks, const float *x, const float *v, float *y, int groups, int rows,    \
                   int n) {                                                                                  \
    int lo, hi;                                                                                              \
    split(groups * rows, task, ntasks, &lo, &hi);                                                            \
    for (int gr = lo; gr < hi; gr++) {                                                                       \
      const float *vr = v + (int64_t)(gr / rows) * n;                                                        \
      const float *xr = x + (int64_t)gr * n;                                                                 \
      float *yr = y + (int64_t)gr * n;                                                                       \
      int c = 0;                                                                                             \
      for (; c + 4 <= n; c += 4) wasm_v128_store(yr + c, VOP(wasm_v128_load(xr + c), wasm_v128_load(vr + c))); \
      for (; c < n; c++) yr[c] = xr[c] SOP vr[c];                                                            \
    }                                                                                                        \
  }

ROW_OP(add_rows_f32, wasm_f32x4_add, +)
ROW_OP(mul_rows_f32, wasm_f32x4_mul, *)

// y = a (op) b, same shapes (residual adds), in contiguous chunks of 4-float vectors per task.
#define SAME_OP(NAME, VOP, SOP)                                                                              \
  KERNEL void NAME(int task, int ntasks, const float *a, const float *b, float *y, int n) {                \
    int lo, hi;                                                                                              \
    split((n + 3) / 4, task, ntasks, &lo, &hi);                                                              \
    int end = hi * 4 < n ? hi * 4 : n;                                                                       \
    int i = lo * 4;                                                                                          \
    for (; i + 4 <= end; i += 4) wasm_v128_store(y + i, VOP(wasm_v128_load(a + i), wasm_v128_load(b + i)));  \
    for (; i < end; i++) y[i] = a[i] SOP b[i];                                                               \
  }

SAME_OP(add_same_f32, wasm_f32x4_add, +)
SAME_OP(mul_same_f32, wasm_f32x4_mul, *)

// out[g, c] = Σ_r f(x[g, r, c]) (rows in increasing order, float32, from +0), f(a) = a² (GRN's statistics) or a
// (sums over leading axes: bias gradients), tasks over groups × blocks of 16 channels. Each sum is the same
// sequence of float32 adds whatever the task split.
#define SQUARE(a) wasm_f32x4_mul(a, a)
#define SQUARE1(a) ((a) * (a))
#define PLAIN(a) (a)
#define ROWSUM(NAME, VF, SF)                                                                                     \
  KERNEL void NAME(int task, int ntasks, const float *x, float *out, int groups, int rows, int n) {           \
    int blocks = (n + 15) / 16;                                                                                \
    int lo, hi;                                                                                                \
    split(groups * blocks, task, ntasks, &lo, &hi);                                                            \
    for (int gb = lo; gb < hi; gb++) {                                                                         \
      int g = gb / blocks;                                                                                     \
      int c0 = (gb % blocks) * 16;                                                                             \
      int c1 = c0 + 16 < n ? c0 + 16 : n;                                                                      \
      const float *xg = x + (int64_t)g * rows * n;                                                             \
      if (c1 - c0 == 16) {                                                                                     \
        v128_t s0 = wasm_f32x4_splat(0), s1 = s0, s2 = s0, s3 = s0;                                            \
        for (int r = 0; r < rows; r++) {                                                                       \
          const float *p = xg + (int64_t)r * n + c0;                                                           \
          v128_t a0 = wasm_v128_load(p), a1 = wasm_v128_load(p + 4), a2 = wasm_v128_load(p + 8),               \
                 a3 = wasm_v128_load(p + 12);                                                                  \
          s0 = wasm_f32x4_add(s0, VF(a0));                                                                     \
          s1 = wasm_f32x4_add(s1, VF(a1));                                                                     \
          s2 = wasm_f32x4_add(s2, VF(a2));                                                                     \
          s3 = wasm_f32x4_add(s3, VF(a3));                                                                     \
        }                                                                                                      \
        float *o = out + (int64_t)g * n + c0;                                                                  \
        wasm_v128_store(o, s0);                                                                                \
        wasm_v128_store(o + 4, s1);                                                                            \
        wasm_v128_store(o + 8, s2);                                                                            \
        wasm_v128_store(o + 12, s3);                                                                           \
      } else {                                                                                                 \
        for (int c = c0; c < c1; c++) {                                                                        \
          float s = 0.0f;                                                                                      \
          for (int r = 0; r < rows; r++) {                                                                     \
            float a = xg[(int64_t)r * n + c];                                                                  \
            s += SF(a);                                                                                        \
          }                                                                                                    \
          out[(int64_t)g * n + c] = s;                                                                         \
        }                                                                                                      \
      }                                                                                                        \
    }                                                                                                          \
  }

ROWSUM(sumsq_rows_f32, SQUARE, SQUARE1)
ROWSUM(sum_rows_f32, PLAIN, PLAIN)

// y[i, :] = x[idx[i], :] for i < m (a zero row where idx[i] < 0): the sparse encoder's moves between the dense and
// the row form. Tasks split the rows; a row of c floats is copied in vectors of 4.
KERNEL void gather_rows_f32(int task, int ntasks, const float *x, const int *idx, float *y, int m, int c) {
  int lo, hi;
  split(m, task, ntasks, &lo, &hi);
  for (int i = lo; i < hi; i++) {
    float *yr = y + (int64_t)i * c;
    const int j = idx[i];
    int k = 0;
    if (j < 0) {
      for (; k + 4 <= c; k += 4) wasm_v128_store(yr + k, wasm_f32x4_splat(0.0f));
      for (; k < c; k++) yr[k] = 0.0f;
      continue;
    }
    const float *xr = x + (int64_t)j * c;
    for (; k + 4 <= c; k += 4) wasm_v128_store(yr + k, wasm_v128_load(xr + k));
    for (; k < c; k++) yr[k] = xr[k];
  }
}
