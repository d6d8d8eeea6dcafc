// Exact GELU x·Φ(x) in float32 WebAssembly SIMD, forward and derivative (see eltwise.c for the method and the
// measured error). Shared by the element-wise family (eltwise.c) and the GEMM's epilogue (gemm.c), so a fused
// linear + GELU computes exactly the same values as the separate kernels.
#pragma once
#include "kernel.h"

#ifndef F4
#define F4(c) wasm_f32x4_splat(c)
#endif

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
 * GELU(x) = (x/2)·(1 + erf(z)), z = x/√2 clamped to ±3.92 (where erf rounds to ±1 in float32), erf(z) = z·P(z²)/Q(z²)
 * a (5, 5) rational minimax on [0, 3.92] (3.7e-8 absolute in float64): 24 SIMD operations and one division per 4
 * values, about a third of the two-region evaluation the gradient uses. This is PyTorch's own float32 formula
 * (0.5·x·(1 + erf(x/√2))), so like it the result has an absolute error of a few float32 ulps of x (measured:
 * 2.4e-7·max(1, |x|)) and, for x < −1, where 1 + erf cancels, no relative accuracy (the value there is below
 * 0.16·|x|·1e-6 anyway). Below x = −8 the result is +0; ±inf give +inf and +0; NaN propagates.
 */
INLINE v128_t gelu4(v128_t x) {
  v128_t z = wasm_f32x4_mul(x, F4(0.7071067811865476f));
  z = wasm_f32x4_pmin(wasm_f32x4_pmax(z, F4(-3.92f)), F4(3.92f)); // NaN stays NaN
  v128_t u = wasm_f32x4_mul(z, z);
  v128_t p = F4(1.9915034954465227e-06f);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, u), F4(0.0002902889100369066f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, u), F4(0.004034221172332764f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, u), F4(0.05356605723500252f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, u), F4(0.1967528909444809f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, u), F4(1.128378987312317f));
  v128_t q = F4(3.7770631024613976e-05f);
  q = wasm_f32x4_add(wasm_f32x4_mul(q, u), F4(0.001226694555953145f));
  q = wasm_f32x4_add(wasm_f32x4_mul(q, u), F4(0.015504027716815472f));
  q = wasm_f32x4_add(wasm_f32x4_mul(q, u), F4(0.11671394854784012f));
  q = wasm_f32x4_add(wasm_f32x4_mul(q, u), F4(0.5076984763145447f));
  q = wasm_f32x4_add(wasm_f32x4_mul(q, u), F4(1.0f));
  v128_t e = wasm_f32x4_div(wasm_f32x4_mul(z, p), q);
  v128_t y = wasm_f32x4_mul(wasm_f32x4_mul(x, F4(0.5f)), wasm_f32x4_add(F4(1.0f), e));
  return wasm_v128_andnot(y, wasm_f32x4_lt(x, F4(-8.0f))); // −0·(1 + erf) would be ±tiny: exactly 0 there
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
