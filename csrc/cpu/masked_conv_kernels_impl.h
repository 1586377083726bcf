// Body of the CPU masked-convolution kernels, included once per instruction set (kernels_*.cpp).
// Torch-free: no torch header may be compiled with AVX2 enabled.
//
// Both kernels are register-tiled direct convolutions over the padded grid (masked_conv_kernels.h):
// the loops run over the live taps only, so the work is proportional to them (about half the taps of
// a causal mask). conv: a tile of up to 6 rows x 2 vectors of pixels keeps 12 accumulators in
// registers across every (tap, channel) pair, the packed weights are broadcast and the shifted input
// row is loaded once per pair. weight_grad: a tile of up to 3 x 3 (output, input) channels keeps 9
// vector accumulators across the pixels, reduced to scalars once per image.
#include <algorithm>

#include "fastgen/small_gemm.h"
#include "masked_conv_kernels.h"

namespace fastgen {
namespace cpu {
namespace FASTGEN_CPU_CAPABILITY {
namespace {

constexpr int kConvRows = 6;
constexpr int kConvVectors = 2;

// The tile's reduction range at tap t: all K off the centre, the union of its rows' ranges at it
// (entries of a row outside its own range are zero in the packed weights).
template <typename T>
static inline void tap_range(const ConvPlan<T>& c, int64_t t, int64_t m0, int rows, int64_t* k0, int64_t* k1) {
  if (t != c.centre) {
    *k0 = 0, *k1 = c.K;
    return;
  }
  *k0 = c.K, *k1 = 0;
  for (int r = 0; r < rows; ++r) *k0 = std::min(*k0, c.kbeg[m0 + r]), *k1 = std::max(*k1, c.kend[m0 + r]);
}

template <typename T, int R>
static inline void conv_tile(const ConvPlan<T>& c, int64_t m0, int64_t p0, T* out) {
  constexpr int64_t L = kLanes<T>;
  Vec<T> acc[R][kConvVectors];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < kConvVectors; ++v) acc[r][v] = Vec<T>{};
  for (int64_t t = 0; t < c.ntaps; ++t) {
    int64_t k0, k1;
    tap_range(c, t, m0, R, &k0, &k1);
    const T* in = c.in + c.offsets[t] + p0;
    const T* w = c.weights + t * c.K * c.M + m0;
    for (int64_t k = k0; k < k1; ++k) {
      Vec<T> b[kConvVectors];
      for (int v = 0; v < kConvVectors; ++v) b[v] = vload(in + k * c.in_stride + v * L);
      const T* a = w + k * c.M;
      for (int r = 0; r < R; ++r)
        for (int v = 0; v < kConvVectors; ++v) acc[r][v] += a[r] * b[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < kConvVectors; ++v) vstore(out + r * c.P + p0 + v * L, acc[r][v]);
}

// Pixel tiles outermost: one tile's shifted input rows (K x live taps lines) stay in L1 while every
// row block streams its packed weights past them in order. Rows innermost read the input from L2
// on every (k, tap) with as many concurrent strided streams, and ran at a third of the speed.
template <typename T>
void conv(const ConvPlan<T>& c, int64_t m0, int64_t m1, T* grid) {
  for (int64_t p0 = 0; p0 < c.P; p0 += kConvVectors * kLanes<T>) {
    int64_t m = m0;
    for (; m + kConvRows <= m1; m += kConvRows) conv_tile<T, kConvRows>(c, m, p0, grid + (m - m0) * c.P);
    T* out = grid + (m - m0) * c.P;
    switch (m1 - m) {
      case 5: conv_tile<T, 5>(c, m, p0, out); break;
      case 4: conv_tile<T, 4>(c, m, p0, out); break;
      case 3: conv_tile<T, 3>(c, m, p0, out); break;
      case 2: conv_tile<T, 2>(c, m, p0, out); break;
      case 1: conv_tile<T, 1>(c, m, p0, out); break;
      default: break;
    }
  }
}

// out[r, s] += sum over images and pixels of g[co0 + r] * x[ci0 + s] (shifted), R x S channels.
template <typename T, int R, int S>
static inline void weight_grad_tile(const WeightGradPlan<T>& w, int64_t offset, int64_t co0, int64_t ci0, T* out,
                                    int64_t ld) {
  constexpr int64_t L = kLanes<T>;
  for (int64_t b = 0; b < w.B; ++b) {
    const T* g[R];
    const T* x[S];
    for (int r = 0; r < R; ++r) g[r] = w.g + b * w.g_image + (co0 + r) * w.g_stride;
    for (int s = 0; s < S; ++s) x[s] = w.x + b * w.x_image + (ci0 + s) * w.x_stride + offset;
    Vec<T> acc[R][S];
    for (int r = 0; r < R; ++r)
      for (int s = 0; s < S; ++s) acc[r][s] = Vec<T>{};
    for (int64_t q = 0; q < w.P; q += L) {
      Vec<T> gv[R];
      for (int r = 0; r < R; ++r) gv[r] = vload(g[r] + q);
      for (int s = 0; s < S; ++s) {
        const Vec<T> xv = vload(x[s] + q);
        for (int r = 0; r < R; ++r) acc[r][s] += gv[r] * xv;
      }
    }
    for (int r = 0; r < R; ++r)
      for (int s = 0; s < S; ++s) out[r * ld + s] += hsum<T>(acc[r][s]);
  }
}

template <typename T, int R>
static inline void weight_grad_rows(const WeightGradPlan<T>& w, int64_t offset, int64_t co0, int64_t ci_end, T* out,
                                    int64_t ld) {
  int64_t ci = 0;
  for (; ci + 3 <= ci_end; ci += 3) weight_grad_tile<T, R, 3>(w, offset, co0, ci, out + ci, ld);
  switch (ci_end - ci) {
    case 2: weight_grad_tile<T, R, 2>(w, offset, co0, ci, out + ci, ld); break;
    case 1: weight_grad_tile<T, R, 1>(w, offset, co0, ci, out + ci, ld); break;
    default: break;
  }
}

template <typename T>
void weight_grad(const WeightGradPlan<T>& w, int64_t offset, int64_t co0, int64_t co1, int64_t ci_end, T* out,
                 int64_t ld) {
  for (int64_t i = 0; i < (co1 - co0) * ld; ++i) out[i] = T(0);
  int64_t co = co0;
  for (; co + 3 <= co1; co += 3) weight_grad_rows<T, 3>(w, offset, co, ci_end, out + (co - co0) * ld, ld);
  switch (co1 - co) {
    case 2: weight_grad_rows<T, 2>(w, offset, co, ci_end, out + (co - co0) * ld, ld); break;
    case 1: weight_grad_rows<T, 1>(w, offset, co, ci_end, out + (co - co0) * ld, ld); break;
    default: break;
  }
}

}  // namespace

template <typename T>
MaskedConvKernels<T> masked_conv_kernels() {
  return {&conv<T>, &weight_grad<T>};
}
template MaskedConvKernels<float> masked_conv_kernels<float>();
template MaskedConvKernels<double> masked_conv_kernels<double>();

}  // namespace FASTGEN_CPU_CAPABILITY
}  // namespace cpu
}  // namespace fastgen
