// Per-element math of DRAW's Gaussian-filterbank attention, shared by the CPU and CUDA kernels.
//
// Everything here is a FASTGEN_INLINE function on plain scalars and raw pointers, so the
// CPU kernel (tested on this machine) and the CUDA kernel compile the very same formulas. The
// conventions are those of fastgen/reference/attention.py (1-based pixel coordinates, rows of every
// filterbank normalised to sum 1 in log space).
#pragma once

#include <cmath>

#include "fastgen/macros.h"

namespace fastgen {
namespace attention {

// Number of raw parameters per example: (g~X, g~Y, log sigma^2, log delta~, log gamma).
constexpr int kNumParams = 5;

// The attention window of one example, derived from its 5 raw parameters.
template <typename T>
struct Window {
  T gx, gy;         // grid centre in pixel coordinates (1-based)
  T delta;          // stride between filter centres
  T inv_two_var;    // 1 / (2 sigma^2)
  T gamma;          // intensity
  bool inside[kNumParams];  // the raw parameter lies inside its bounds (its gradient passes the clamp)
};

// Bounds of the raw parameters (fastgen/reference/attention.py, PARAM_BOUNDS, which says why): every
// backend clamps into them, so every float intermediate stays finite.
FASTGEN_INLINE double param_low(int k) { return k < 2 ? -1e3 : -30.0; }
FASTGEN_INLINE double param_high(int k) { return k < 2 ? 1e3 : (k == 3 ? 10.0 : 30.0); }

// Raw parameter k clamped into its bounds (NaN stays NaN, as torch.clamp); *inside: it was in them.
template <typename T>
FASTGEN_INLINE T clamp_param(const T* raw, int k, bool* inside) {
  const T lo = T(param_low(k)), hi = T(param_high(k)), v = raw[k];
  *inside = v >= lo && v <= hi;
  return v < lo ? lo : (v > hi ? hi : v);
}

// exp for the two accumulation types; expf/exp exist on host and device alike.
FASTGEN_INLINE float exp_(float v) { return expf(v); }
FASTGEN_INLINE double exp_(double v) { return exp(v); }

// exp(v) for v below this is subnormal in T. Filter weights that small are set to exactly 0: they are
// below T's normal range relative to the row's largest weight (1), and subnormal operands cost ~100
// cycles each on x86, which made the products several times slower.
FASTGEN_INLINE float underflow_arg(float) { return -80.0f; }
FASTGEN_INLINE double underflow_arg(double) { return -700.0; }

template <typename T>
FASTGEN_INLINE T stride_scale(int N, int H, int W) {
  // (max(H,W) - 1) / (N - 1); with N = 1 the single filter sits at g and the stride is unused.
  const int big = H > W ? H : W;
  return T(big - 1) / T(N > 1 ? N - 1 : 1);
}

template <typename T>
FASTGEN_INLINE Window<T> window_from_params(const T* raw, int N, int H, int W) {
  Window<T> w;
  T p[kNumParams];
  for (int k = 0; k < kNumParams; ++k) p[k] = clamp_param(raw, k, &w.inside[k]);
  w.gx = T(W + 1) / T(2) * (p[0] + T(1));
  w.gy = T(H + 1) / T(2) * (p[1] + T(1));
  w.inv_two_var = T(0.5) * exp_(-p[2]);
  w.delta = stride_scale<T>(N, H, W) * exp_(p[3]);
  w.gamma = exp_(p[4]);
  return w;
}

// Centre of filter i (0-based) of N: mu_i = g + (i + 1 - N/2 - 0.5) * delta.
template <typename T>
FASTGEN_INLINE T filter_offset(int i, int N) {
  return T(i) + T(0.5) - T(N) / T(2);
}

// Filter rows are F[a] = softmax_a(-(a - mu)^2 / (2 sigma^2)), a = 1..size. The largest logit belongs
// to the pixel m nearest mu (clamped to the image), so it is known without a pass over the row.
template <typename T>
FASTGEN_INLINE T filter_peak(T mu, int size) {
  T m = std::floor(mu + T(0.5));
  return m < T(1) ? T(1) : (m > T(size) ? T(size) : m);
}

// Logit of pixel pos minus the peak's, written as -(pos - m)(pos + m - 2 mu)/(2 sigma^2): no
// cancellation when mu lies far outside the image. Always <= 0, and 0 at the peak.
template <typename T>
FASTGEN_INLINE T filter_logit(T pos, T m, T mu, T inv_two_var) {
  return -(pos - m) * ((pos - mu) + (m - mu)) * inv_two_var;
}

// exp of a filter logit, exactly 0 where the weight would be subnormal.
template <typename T>
FASTGEN_INLINE T filter_weight(T logit) {
  return logit > underflow_arg(logit) ? exp_(logit) : T(0);
}

// One normalised filter row. The peak weight is 1, so the sum is >= 1 and the row is free of NaN/Inf
// for any mu, and any log sigma^2 whose 1/(2 sigma^2) is finite in T (> -88 in float32).
template <typename T>
FASTGEN_INLINE void filter_row(T mu, T inv_two_var, int size, T* row) {
  const T m = filter_peak(mu, size);
  T sum = T(0);
  for (int a = 0; a < size; ++a) {
    row[a] = filter_weight(filter_logit(T(a + 1), m, mu, inv_two_var));
    sum += row[a];
  }
  const T inv = T(1) / sum;
  for (int a = 0; a < size; ++a) row[a] *= inv;
}

// Gradient of a loss through one softmax filter row into its centre and its log-variance.
// Given the row F and dL/dF, dL/dlogit = F * (dF - <F, dF>), whose entries sum to 0; then
//   dL/dmu          = sum_a dlogit (a - mu) / sigma^2
//   dL/dlog(sigma^2) = sum_a dlogit (a - mu)^2 / (2 sigma^2)
// Because the dlogits sum to 0, (a - mu) may be measured from the peak pixel m instead:
//   sum dlogit (a - mu) = sum dlogit (a - m),  sum dlogit (a - mu)^2 = sum dlogit (a - m)^2 + 2 (m - mu) sum dlogit (a - m)
// which avoids cancelling huge terms when mu lies far outside the image. (The CPU kernels use a
// vector form of this that sums in double.)
template <typename T>
FASTGEN_INLINE void filter_row_backward(const T* row, const T* grad_row, T mu, T inv_two_var, int size, T* grad_mu,
                                        T* grad_log_var) {
  T dot = T(0);
  for (int a = 0; a < size; ++a) dot += row[a] * grad_row[a];
  const T m = filter_peak(mu, size);
  T s1 = T(0), s2 = T(0);
  for (int a = 0; a < size; ++a) {
    const T dlogit = row[a] * (grad_row[a] - dot);
    const T e = T(a + 1) - m;
    s1 += dlogit * e;
    s2 += dlogit * e * e;
  }
  *grad_mu = T(2) * inv_two_var * s1;
  // inv_two_var * (m - mu) first: (m - mu) * s1 alone can overflow float (mu 1e14 px away, gamma e^80).
  *grad_log_var = inv_two_var * s2 + T(2) * (inv_two_var * (m - mu)) * s1;
}

// Accumulated gradients with respect to the window, reduced to the 5 raw parameters.
template <typename T>
struct WindowGrad {
  T gx = T(0), gy = T(0);  // dL/dgX, dL/dgY
  T delta = T(0);          // dL/ddelta
  T log_var = T(0);        // dL/dlog(sigma^2)
  T log_gamma = T(0);      // dL/dlog(gamma)
};

template <typename T>
FASTGEN_INLINE void window_grad_to_params(const WindowGrad<T>& g, const Window<T>& w, int H, int W,
                                                      T* grad_raw) {
  grad_raw[0] = g.gx * T(W + 1) / T(2);
  grad_raw[1] = g.gy * T(H + 1) / T(2);
  grad_raw[2] = g.log_var;
  grad_raw[3] = g.delta * w.delta;  // d delta / d log delta~ = delta
  grad_raw[4] = g.log_gamma;
  // The clamp's gradient: a select, not a product, so an inf computed at a clamped value gives 0, not NaN.
  for (int k = 0; k < kNumParams; ++k) grad_raw[k] = w.inside[k] ? grad_raw[k] : T(0);
}

}  // namespace attention
}  // namespace fastgen
