// Depth-wise 2-D convolution family: channel multiplier 1, stride 1, dilation 1, NHWC float32, any kernel size
// and padding (explicit top/left; the output size says the rest). Glue: depthwise.ts.
//
//   y[b, oy, ox, c] = (bias[c] +) Σ_{ky, kx} xp[b, oy + ky, ox + kx, c] · w[ky, kx, c],
//   xp[b, p, q, c] = x[b, p − pt, q − pl, c] inside the image, 0 outside.
//
// The input gradient is the same convolution of dy with the spatially flipped filter (dw_pack_filter flips it)
// and pads (KH − 1 − pt, KW − 1 − pl); the filter gradient is dw_filter_grad + dw_filter_reduce.
//
// Layouts (Cp = C rounded up to 4, one f32x4 per channel block cb):
// - packed filter: [cb][KH][KW][4] floats (zero lanes past C), then Cp floats of bias (zeros without one);
// - a padded input row ("ring row"): [cb][Wp][4] floats, Wp = Wout + KW − 1, zero outside the image.
// Every task keeps a ring of KH padded rows in its own scratch region and walks its output rows in order, so
// each input row is copied once per task. Sums run over ky, then kx, in float32, in that order, whatever the
// number of tasks: results do not depend on the thread count.
#include "kernel.h"

#define MAX_KH 64

INLINE int round4(int c) { return (c + 3) & ~3; }

/**
 * Packed filter for dw_conv2d: w [KH, KW, C, 1] → out [cb][KH][KW][4] (flipped in both spatial axes when
 * `flip`), then Cp bias floats (from `bias`, or zeros when it is 0). One task does it all (KH·KW·C floats).
 */
KERNEL void dw_pack_filter(int task, int ntasks, const float *w, const float *bias, float *out, int KH, int KW, int C,
                           int flip) {
  (void)ntasks;
  if (task != 0) return;
  int Cp = round4(C);
  for (int cb = 0; cb < Cp; cb += 4)
    for (int ky = 0; ky < KH; ky++)
      for (int kx = 0; kx < KW; kx++) {
        int sy = flip ? KH - 1 - ky : ky;
        int sx = flip ? KW - 1 - kx : kx;
        const float *src = w + (sy * KW + sx) * C + cb;
        float *dst = out + ((cb / 4 * KH + ky) * KW + kx) * 4;
        for (int l = 0; l < 4; l++) dst[l] = cb + l < C ? src[l] : 0.0f;
      }
  float *bo = out + KH * KW * Cp;
  for (int c = 0; c < Cp; c++) bo[c] = bias && c < C ? bias[c] : 0.0f;
}

/** dst[cb][j][l] = src[(j − pl)·C + 4cb + l] for 0 ≤ j − pl < Win and 4cb + l < C, else 0 (src 0: all zero). */
INLINE void fill_row(float *dst, const float *src, int Win, int C, int Wp, int pl) {
  int Cp = round4(C);
  int j0 = pl < 0 ? 0 : pl;
  int j1 = Win + pl < Wp ? Win + pl : Wp;
  if (!src || j1 < j0) j0 = j1 = 0;
  v128_t z = wasm_f32x4_splat(0.0f);
  for (int cb = 0; cb < Cp; cb += 4) {
    float *d = dst + cb * Wp;
    for (int j = 0; j < j0; j++) wasm_v128_store(d + 4 * j, z);
    if (cb + 4 <= C) {
      for (int j = j0; j < j1; j++) wasm_v128_store(d + 4 * j, wasm_v128_load(src + (j - pl) * C + cb));
    } else {
      for (int j = j0; j < j1; j++) {
        const float *s = src + (j - pl) * C + cb;
        for (int l = 0; l < 4; l++) d[4 * j + l] = cb + l < C ? s[l] : 0.0f;
      }
    }
    for (int j = j1; j < Wp; j++) wasm_v128_store(d + 4 * j, z);
  }
}

/**
 * Makes ring slots hold padded rows [p0, p1) of image b (slot = row % KH), loading those past `*loaded`.
 * `*loaded` is one past the last padded row in the ring for image `*cur` (reset when the image changes).
 */
INLINE void ring_load(float *ring, int rowF, const float *x, int b, int p0, int p1, int *cur, int *loaded, int Hin,
                      int Win, int C, int Wp, int pt, int pl, int KH) {
  if (*cur != b || *loaded < p0) {
    *cur = b;
    *loaded = p0;
  }
  for (int p = *loaded; p < p1; p++) {
    int iy = p - pt;
    const float *src = iy >= 0 && iy < Hin ? x + ((int64_t)b * Hin + iy) * Win * C : 0;
    fill_row(ring + (p % KH) * rowF, src, Win, C, Wp, pl);
  }
  if (p1 > *loaded) *loaded = p1;
}

INLINE void store_px(float *y, v128_t v, int lanes) {
  if (lanes == 4) {
    wasm_v128_store(y, v);
  } else {
    y[0] = wasm_f32x4_extract_lane(v, 0);
    if (lanes > 1) y[1] = wasm_f32x4_extract_lane(v, 1);
    if (lanes > 2) y[2] = wasm_f32x4_extract_lane(v, 2);
  }
}

/**
 * N consecutive output pixels of one channel block, kernel width K known at compile time: per filter row the
 * K taps sit in registers and each input vector is loaded once, then added to every output it reaches (in
 * increasing kx for each output).
 */
INLINE void strip_k(const int N, const int K, const float *const *rows, int KH, const float *wc, int ox, float *y,
                    int C, int lanes, v128_t bias, int hasBias) {
  v128_t acc[8];
  for (int p = 0; p < N; p++) acc[p] = wasm_f32x4_splat(0.0f);
  for (int ky = 0; ky < KH; ky++) {
    const float *xr = rows[ky] + 4 * ox;
    const float *wr = wc + ky * K * 4;
    v128_t w[16];
    for (int kx = 0; kx < K; kx++) w[kx] = wasm_v128_load(wr + 4 * kx);
    for (int j = 0; j < N + K - 1; j++) {
      v128_t v = wasm_v128_load(xr + 4 * j);
      for (int p = 0; p < N; p++) {
        int kx = j - p;
        if (kx >= 0 && kx < K) acc[p] = wasm_f32x4_add(acc[p], wasm_f32x4_mul(v, w[kx]));
      }
    }
  }
  for (int p = 0; p < N; p++) store_px(y + p * C, hasBias ? wasm_f32x4_add(acc[p], bias) : acc[p], lanes);
}

/** The same for any kernel width (taps streamed from memory). */
INLINE void strip_any(const int N, int K, const float *const *rows, int KH, const float *wc, int ox, float *y, int C,
                      int lanes, v128_t bias, int hasBias) {
  v128_t acc[8];
  for (int p = 0; p < N; p++) acc[p] = wasm_f32x4_splat(0.0f);
  for (int ky = 0; ky < KH; ky++) {
    const float *xr = rows[ky] + 4 * ox;
    const float *wr = wc + ky * K * 4;
    for (int kx = 0; kx < K; kx++) {
      v128_t w = wasm_v128_load(wr + 4 * kx);
      for (int p = 0; p < N; p++) acc[p] = wasm_f32x4_add(acc[p], wasm_f32x4_mul(wasm_v128_load(xr + 4 * (p + kx)), w));
    }
  }
  for (int p = 0; p < N; p++) store_px(y + p * C, hasBias ? wasm_f32x4_add(acc[p], bias) : acc[p], lanes);
}

/** One output row of one channel block: strips of 4, then 2, then 1 pixels. */
INLINE void conv_row(const int K, int KW, const float *const *rows, int KH, const float *wc, float *y, int Wout, int C,
                     int lanes, v128_t bias, int hasBias) {
  int ox = 0;
  if (K) {
    for (; ox + 4 <= Wout; ox += 4) strip_k(4, K, rows, KH, wc, ox, y + ox * C, C, lanes, bias, hasBias);
    if (ox + 2 <= Wout) {
      strip_k(2, K, rows, KH, wc, ox, y + ox * C, C, lanes, bias, hasBias);
      ox += 2;
    }
    if (ox < Wout) strip_k(1, K, rows, KH, wc, ox, y + ox * C, C, lanes, bias, hasBias);
  } else {
    for (; ox + 8 <= Wout; ox += 8) strip_any(8, KW, rows, KH, wc, ox, y + ox * C, C, lanes, bias, hasBias);
    if (ox + 4 <= Wout) {
      strip_any(4, KW, rows, KH, wc, ox, y + ox * C, C, lanes, bias, hasBias);
      ox += 4;
    }
    for (; ox < Wout; ox++) strip_any(1, KW, rows, KH, wc, ox, y + ox * C, C, lanes, bias, hasBias);
  }
}

/**
 * y [B, Hout, Wout, C] = depth-wise conv of x [B, Hin, Win, C] with the packed filter `wp` (dw_pack_filter),
 * padding pt rows on top and pl columns on the left (negative: cropped), zeros past the image on every side.
 * Output rows (b, oy) are split across tasks; task t uses scratch + t·KH·Wp·Cp floats (its ring).
 * KH ≤ 64.
 */
KERNEL void dw_conv2d(int task, int ntasks, const float *x, const float *wp, float *y, float *scratch, int B, int Hin,
                      int Win, int C, int Hout, int Wout, int KH, int KW, int pt, int pl, int hasBias) {
  int lo, hi;
  split(B * Hout, task, ntasks, &lo, &hi);
  if (lo >= hi || KH > MAX_KH) return;
  int Cp = round4(C);
  int Wp = Wout + KW - 1;
  int rowF = Cp * Wp;
  float *ring = scratch + (int64_t)task * KH * rowF;
  const float *bias = wp + KH * KW * Cp;
  int cur = -1, loaded = 0;
  const float *rows[MAX_KH];
  for (int r = lo; r < hi; r++) {
    int b = r / Hout;
    int oy = r - b * Hout;
    ring_load(ring, rowF, x, b, oy, oy + KH, &cur, &loaded, Hin, Win, C, Wp, pt, pl, KH);
    float *yr = y + (int64_t)r * Wout * C;
    for (int cb = 0; cb < Cp; cb += 4) {
      for (int ky = 0; ky < KH; ky++) rows[ky] = ring + ((oy + ky) % KH) * rowF + cb * Wp;
      const float *wc = wp + cb * KH * KW;
      int lanes = C - cb < 4 ? C - cb : 4;
      v128_t bv = wasm_v128_load(bias + cb);
      if (KW == 7) conv_row(7, 7, rows, KH, wc, yr + cb, Wout, C, lanes, bv, hasBias);
      else if (KW == 3) conv_row(3, 3, rows, KH, wc, yr + cb, Wout, C, lanes, bv, hasBias);
      else if (KW == 5) conv_row(5, 5, rows, KH, wc, yr + cb, Wout, C, lanes, bv, hasBias);
      else conv_row(0, KW, rows, KH, wc, yr + cb, Wout, C, lanes, bv, hasBias);
    }
  }
}

/**
 * pr[kx] += Σ_ox xr[ox + kx] · d[ox] for kx < K (K known at compile time), over ox in order, two at a time:
 * each input vector is loaded once for both pixels.
 */
INLINE void taps_k(const int K, const float *xr, const float *d, int Wout, float *pr) {
  v128_t acc[16];
  for (int k = 0; k < K; k++) acc[k] = wasm_f32x4_splat(0.0f);
  int ox = 0;
  for (; ox + 2 <= Wout; ox += 2) {
    v128_t d0 = wasm_v128_load(d + 4 * ox);
    v128_t d1 = wasm_v128_load(d + 4 * ox + 4);
    const float *xo = xr + 4 * ox;
    for (int j = 0; j <= K; j++) {
      v128_t v = wasm_v128_load(xo + 4 * j);
      if (j < K) acc[j] = wasm_f32x4_add(acc[j], wasm_f32x4_mul(v, d0));
      if (j >= 1) acc[j - 1] = wasm_f32x4_add(acc[j - 1], wasm_f32x4_mul(v, d1));
    }
  }
  if (ox < Wout) {
    v128_t d0 = wasm_v128_load(d + 4 * ox);
    const float *xo = xr + 4 * ox;
    for (int j = 0; j < K; j++) acc[j] = wasm_f32x4_add(acc[j], wasm_f32x4_mul(wasm_v128_load(xo + 4 * j), d0));
  }
  for (int k = 0; k < K; k++) wasm_v128_store(pr + 4 * k, wasm_f32x4_add(wasm_v128_load(pr + 4 * k), acc[k]));
}

/**
 * Partial filter gradients: task t sums rows split(B·Hout, t, ntasks) of
 *   g[ky, kx, c] = Σ_{b, oy, ox} xp[b, oy + ky, ox + kx, c] · dy[b, oy, ox, c]
 * into partials + t·KH·KW·Cp ([cb][ky][kx][4]): per output row a float32 sum over ox, added to the partial in
 * row order. Its scratch: KH·Wp·Cp floats of ring, then Wout·Cp of dy row, at scratch + t·(KH·Wp + Wout)·Cp.
 * The split depends on ntasks: pass a task count fixed by the shape (not the thread count) for reproducibility.
 */
KERNEL void dw_filter_grad(int task, int ntasks, const float *x, const float *dy, float *partials, float *scratch,
                           int B, int Hin, int Win, int C, int Hout, int Wout, int KH, int KW, int pt, int pl) {
  int lo, hi;
  split(B * Hout, task, ntasks, &lo, &hi);
  int Cp = round4(C);
  int Wp = Wout + KW - 1;
  int rowF = Cp * Wp;
  float *part = partials + (int64_t)task * KH * KW * Cp;
  for (int i = 0; i < KH * KW * Cp; i++) part[i] = 0.0f;
  if (lo >= hi) return;
  float *ring = scratch + (int64_t)task * (KH * Wp + Wout) * Cp;
  float *drow = ring + KH * rowF;
  int cur = -1, loaded = 0;
  for (int r = lo; r < hi; r++) {
    int b = r / Hout;
    int oy = r - b * Hout;
    ring_load(ring, rowF, x, b, oy, oy + KH, &cur, &loaded, Hin, Win, C, Wp, pt, pl, KH);
    fill_row(drow, dy + (int64_t)r * Wout * C, Wout, C, Wout, 0);
    for (int cb = 0; cb < Cp; cb += 4) {
      const float *d = drow + cb * Wout;
      for (int ky = 0; ky < KH; ky++) {
        const float *xr = ring + ((oy + ky) % KH) * rowF + cb * Wp;
        float *pr = part + (cb * KH + 4 * ky) * KW;
        if (KW == 7) taps_k(7, xr, d, Wout, pr);
        else if (KW == 3) taps_k(3, xr, d, Wout, pr);
        else if (KW == 5) taps_k(5, xr, d, Wout, pr);
        else {
          int kx = 0;
          for (; kx + 4 <= KW; kx += 4) taps_k(4, xr + 4 * kx, d, Wout, pr + 4 * kx);
          for (; kx < KW; kx++) taps_k(1, xr + 4 * kx, d, Wout, pr + 4 * kx);
        }
      }
    }
  }
}

/**
 * out [KH, KW, C, 1] = Σ_g partials[g] over g = 0 … nparts − 1 in order (float32), elements split across
 * tasks. `nparts` partials of KH·KW·Cp floats each, in dw_filter_grad's layout.
 */
KERNEL void dw_filter_reduce(int task, int ntasks, const float *partials, float *out, int nparts, int KH, int KW,
                             int C) {
  int Cp = round4(C);
  int n = KH * KW * Cp;
  int lo, hi;
  split(n / 4, task, ntasks, &lo, &hi);
  for (int v = lo; v < hi; v++) {
    v128_t s = wasm_v128_load(partials + 4 * v);
    for (int g = 1; g < nparts; g++) s = wasm_f32x4_add(s, wasm_v128_load(partials + (int64_t)g * n + 4 * v));
    // v indexes [cb][ky][kx]; out is [ky][kx][c].
    int cb = v / (KH * KW);
    int t = v - cb * KH * KW;
    float *o = out + t * C + 4 * cb;
    int lanes = C - 4 * cb < 4 ? C - 4 * cb : 4;
    store_px(o, s, lanes);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The row ("sparse") form: V visible rows of C channels and a neighbour table nbr [V][KK] (row index, or V for a
// zero row: masked or outside the grid), as @softbias/sparse-conv's SiteIndex.neighbours(k) builds it.
// ---------------------------------------------------------------------------------------------------------

#define MAX_KK 256

/**
 * y[v, c] = (bias[c] +) Σ_j x[nbr[v, j], c] · w[j', c] over j = 0 … KK − 1 in order, skipping zero rows, with
 * j' = j, or KK − 1 − j when `flip` (the input gradient: the neighbour relation is symmetric). x, y [V, C];
 * w [KK, C] (tfjs' [k, k, C, 1]); bias [C] or 0. Rows split across tasks. KK ≤ 256.
 */
KERNEL void dw_rows(int task, int ntasks, const float *x, const int32_t *nbr, const float *w, const float *bias,
                    float *y, int V, int C, int KK, int flip) {
  int lo, hi;
  split(V, task, ntasks, &lo, &hi);
  if (KK > MAX_KK) return;
  const float *src[MAX_KK];
  const float *wj[MAX_KK];
  for (int v = lo; v < hi; v++) {
    // The taps that land on a row, in order.
    int n = 0;
    const int32_t *nb = nbr + (int64_t)v * KK;
    for (int j = 0; j < KK; j++) {
      int q = nb[j];
      if (q >= 0 && q < V) {
        src[n] = x + (int64_t)q * C;
        wj[n] = w + (flip ? KK - 1 - j : j) * C;
        n++;
      }
    }
    float *yr = y + (int64_t)v * C;
    int c = 0;
    for (; c + 16 <= C; c += 16) {
      v128_t a0 = wasm_f32x4_splat(0.0f), a1 = a0, a2 = a0, a3 = a0;
      for (int t = 0; t < n; t++) {
        const float *s = src[t] + c;
        const float *ww = wj[t] + c;
        a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(wasm_v128_load(s), wasm_v128_load(ww)));
        a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(wasm_v128_load(s + 4), wasm_v128_load(ww + 4)));
        a2 = wasm_f32x4_add(a2, wasm_f32x4_mul(wasm_v128_load(s + 8), wasm_v128_load(ww + 8)));
        a3 = wasm_f32x4_add(a3, wasm_f32x4_mul(wasm_v128_load(s + 12), wasm_v128_load(ww + 12)));
      }
      if (bias) {
        a0 = wasm_f32x4_add(a0, wasm_v128_load(bias + c));
        a1 = wasm_f32x4_add(a1, wasm_v128_load(bias + c + 4));
        a2 = wasm_f32x4_add(a2, wasm_v128_load(bias + c + 8));
        a3 = wasm_f32x4_add(a3, wasm_v128_load(bias + c + 12));
      }
      wasm_v128_store(yr + c, a0);
      wasm_v128_store(yr + c + 4, a1);
      wasm_v128_store(yr + c + 8, a2);
      wasm_v128_store(yr + c + 12, a3);
    }
    for (; c + 4 <= C; c += 4) {
      v128_t a = wasm_f32x4_splat(0.0f);
      for (int t = 0; t < n; t++) a = wasm_f32x4_add(a, wasm_f32x4_mul(wasm_v128_load(src[t] + c), wasm_v128_load(wj[t] + c)));
      if (bias) a = wasm_f32x4_add(a, wasm_v128_load(bias + c));
      wasm_v128_store(yr + c, a);
    }
    for (; c < C; c++) {
      float a = 0.0f;
      for (int t = 0; t < n; t++) a += src[t][c] * wj[t][c];
      if (bias) a += bias[c];
      yr[c] = a;
    }
  }
}

/**
 * Partial kernel gradients of the row form: task t sums rows split(V, t, ntasks) of
 *   g[j, c] = Σ_v x[nbr[v, j], c] · dy[v, c]
 * into partials + t·KK·C (float32, rows in order; zero rows skipped). Reduce with dw_sum_parts. The split
 * depends on ntasks: pass a count fixed by the shape for reproducibility.
 */
KERNEL void dw_rows_filter_grad(int task, int ntasks, const float *x, const int32_t *nbr, const float *dy,
                                float *partials, int V, int C, int KK) {
  int lo, hi;
  split(V, task, ntasks, &lo, &hi);
  float *part = partials + (int64_t)task * KK * C;
  for (int i = 0; i < KK * C; i++) part[i] = 0.0f;
  for (int v = lo; v < hi; v++) {
    const int32_t *nb = nbr + (int64_t)v * KK;
    const float *d = dy + (int64_t)v * C;
    for (int j = 0; j < KK; j++) {
      int q = nb[j];
      if (q < 0 || q >= V) continue;
      const float *s = x + (int64_t)q * C;
      float *p = part + j * C;
      int c = 0;
      for (; c + 4 <= C; c += 4) {
        wasm_v128_store(p + c, wasm_f32x4_add(wasm_v128_load(p + c), wasm_f32x4_mul(wasm_v128_load(s + c), wasm_v128_load(d + c))));
      }
      for (; c < C; c++) p[c] += s[c] * d[c];
    }
  }
}

/** out[i] = Σ_g parts[g·n + i] over g = 0 … nparts − 1 in order, for i < n, split across tasks. */
KERNEL void dw_sum_parts(int task, int ntasks, const float *parts, float *out, int nparts, int n) {
  int lo, hi;
  split(n, task, ntasks, &lo, &hi);
  int i = lo;
  for (; i + 4 <= hi; i += 4) {
    v128_t s = wasm_v128_load(parts + i);
    for (int g = 1; g < nparts; g++) s = wasm_f32x4_add(s, wasm_v128_load(parts + (int64_t)g * n + i));
    wasm_v128_store(out + i, s);
  }
  for (; i < hi; i++) {
    float s = parts[i];
    for (int g = 1; g < nparts; g++) s += parts[(int64_t)g * n + i];
    out[i] = s;
  }
}
