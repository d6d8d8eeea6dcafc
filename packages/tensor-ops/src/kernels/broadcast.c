// Broadcast binary family: y[r, c] = x[r, c] (op) v[c] for a row vector v over the last axis (a bias add, a
// per-channel scale) — the pattern tfjs-backend-wasm's threaded build runs 5× slower than its single-threaded one.
#include "kernel.h"

#define ROW_OP(NAME, VOP, SOP)                                                                               \
  KERNEL void NAME(int task, int ntasks, const float *x, const float *v, float *y, int rows, int n) {     \
    int lo, hi;                                                                                              \
    split(rows, task, ntasks, &lo, &hi);                                                                     \
    for (int r = lo; r < hi; r++) {                                                                          \
      const float *xr = x + (int64_t)r * n;                                                                  \
      float *yr = y + (int64_t)r * n;                                                                        \
      int c = 0;                                                                                             \
      for (; c + 4 <= n; c += 4) wasm_v128_store(yr + c, VOP(wasm_v128_load(xr + c), wasm_v128_load(v + c))); \
      for (; c < n; c++) yr[c] = xr[c] SOP v[c];                                                             \
    }                                                                                                        \
  }

ROW_OP(add_rows_f32, wasm_f32x4_add, +)
ROW_OP(mul_rows_f32, wasm_f32x4_mul, *)
