// Shared by softbias' WebAssembly kernel families (compiled by scripts/build-kernels.mjs).
//
// Conventions:
// - Every exported kernel is `KERNEL void name(int task, int ntasks, ...)`: the runtime (runtime.ts) calls it once
//   per task index 0 ≤ task < ntasks, possibly on several threads at once, each on the same shared memory; a kernel
//   splits its own work by `task` (see `split`) and tasks never write the same bytes.
// - Pointers are byte addresses in the backend's heap (float* in C). No static data, no libc.
// - Float arithmetic is IEEE float32 in the order written (-ffp-contract=off; no fast-math).
#pragma once
#include <stdint.h>
#include <wasm_simd128.h>

#define KERNEL __attribute__((visibility("default")))
#define INLINE static inline __attribute__((always_inline))

/** The half-open range [*lo, *hi) of `n` items that task `task` of `ntasks` owns (contiguous, balanced). */
INLINE void split(int n, int task, int ntasks, int *lo, int *hi) {
  int64_t a = (int64_t)n * task / ntasks;
  int64_t b = (int64_t)n * (task + 1) / ntasks;
  *lo = (int)a;
  *hi = (int)b;
}
