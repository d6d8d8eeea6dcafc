// GEMM family (placeholder version: being replaced by the packed, register-blocked kernel).
#include "kernel.h"

// c[i, j] = sum_k a[i*sai + k*sak] * b[k*sbk + j*sbn], rows of C split across tasks.
KERNEL void gemm_f32(int task, int ntasks, const float *a, const float *b, float *c, int m, int n, int k, int sai,
                     int sak, int sbk, int sbn) {
  int lo, hi;
  split(m, task, ntasks, &lo, &hi);
  for (int i = lo; i < hi; i++) {
    for (int j = 0; j < n; j++) {
      float s = 0.0f;
      for (int q = 0; q < k; q++) s += a[i * sai + q * sak] * b[q * sbk + j * sbn];
      c[i * n + j] = s;
    }
  }
}
