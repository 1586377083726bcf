// Body of the CPU masked-convolution kernels, included once per instruction set: kernels_avx2.cpp and
// kernels_generic.cpp with 32-byte vectors, masked_conv_avx512.cpp with 64-byte ones
// (FASTGEN_MASKED_CONV_VECTOR_BYTES; the vectors: fastgen/wide_vec.h). Torch-free: no torch header
// may be compiled with AVX enabled.
//
// Both kernels are register-tiled: a tile of R rows x 2 vectors of columns keeps its accumulators in
// registers across the whole reduction (R = 6 in AVX2's 16 registers, 12 in AVX-512's 32), each
// step loads 2 vectors and broadcasts R scalars. conv (forward and grad_x) is a direct convolution
// over the padded grid (masked_conv_kernels.h): the loops run over the live taps only, so the work is
// proportional to them (about half the taps of a causal mask); a tile's B rows are the shifted input
// rows. weight_grad is a GEMM over a tile's im2col of the live taps and its transposed grad_out.
#include <algorithm>
#include <type_traits>

#include "fastgen/small_gemm.h"  // the 32-byte transpose
#include "fastgen/wide_vec.h"
#include "masked_conv_kernels.h"

#ifndef FASTGEN_MASKED_CONV_VECTOR_BYTES
#define FASTGEN_MASKED_CONV_VECTOR_BYTES 32
#endif

namespace fastgen {
namespace cpu {
namespace FASTGEN_CPU_CAPABILITY {
namespace {

constexpr int kConvBytes = FASTGEN_MASKED_CONV_VECTOR_BYTES;
template <typename T>
using ConvVec = Wide<T, kConvBytes>;  // fastgen/wide_vec.h
template <typename T>
constexpr int64_t kConvLanes = kWideLanes<T, kConvBytes>;

// Rows per register tile: R x 2 accumulators, 2 loaded vectors and a broadcast fit the registers.
constexpr int kTileRows = kConvBytes == 64 ? 12 : 6;
static_assert(2 * kConvBytes <= 32 * 4, "grid rows and ldc are padded to 32 floats");

// Calls tile<R>(...) for R = rows, 0 < rows <= Max (the row remainders of a block).
template <int Max, typename Tile>
static inline void with_rows(int64_t rows, const Tile& tile) {
  if constexpr (Max > 0) {
    if (rows == Max) return tile(std::integral_constant<int, Max>{});
    with_rows<Max - 1>(rows, tile);
  }
}

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
  constexpr int64_t L = kConvLanes<T>;
  ConvVec<T> acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = ConvVec<T>{};
  for (int64_t t = 0; t < c.ntaps; ++t) {
    int64_t k0, k1;
    tap_range(c, t, m0, R, &k0, &k1);
    const T* in = c.in + c.offsets[t] + p0;
    const T* w = c.weights + t * c.K * c.M + m0;
    for (int64_t k = k0; k < k1; ++k) {
      const T* row = in + k * c.in_stride;
      const ConvVec<T> b0 = wload<kConvBytes>(row), b1 = wload<kConvBytes>(row + L);
      const T* a = w + k * c.M;
      for (int r = 0; r < R; ++r) acc[r][0] += a[r] * b0, acc[r][1] += a[r] * b1;
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < 2; ++v) wstore<kConvBytes>(out + r * c.P + p0 + v * L, acc[r][v]);
}

// Pixel tiles outermost: one tile's shifted input rows (K x live taps lines) stay in L1 while every
// row block streams its packed weights past them in order. Rows innermost read the input from L2
// on every (k, tap) with as many concurrent strided streams, and ran at a third of the speed.
template <typename T>
void conv(const ConvPlan<T>& c, int64_t m0, int64_t m1, T* grid) {
  for (int64_t p0 = 0; p0 < c.P; p0 += 2 * kConvLanes<T>) {
    int64_t m = m0;
    for (; m + kTileRows <= m1; m += kTileRows) conv_tile<T, kTileRows>(c, m, p0, grid + (m - m0) * c.P);
    T* out = grid + (m - m0) * c.P;
    with_rows<kTileRows - 1>(m1 - m, [&](auto R) { conv_tile<T, decltype(R)::value>(c, m, p0, out); });
  }
}

// c[R, 2 vectors] += sum_k a[r * am + k] * b[k * ldb + ...]
template <typename T, int R>
static inline void dw_gemm_tile(int64_t K, const T* a, int64_t am, const T* b, int64_t ldb, T* c, int64_t ldc) {
  constexpr int64_t L = kConvLanes<T>;
  ConvVec<T> acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = ConvVec<T>{};
  for (int64_t k = 0; k < K; ++k) {
    const ConvVec<T> b0 = wload<kConvBytes>(b + k * ldb), b1 = wload<kConvBytes>(b + k * ldb + L);
    for (int r = 0; r < R; ++r) {
      const T av = a[r * am + k];
      acc[r][0] += av * b0, acc[r][1] += av * b1;
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < 2; ++v) {
      T* cv = c + r * ldc + v * L;
      wstore<kConvBytes>(cv, wload<kConvBytes>(cv) + acc[r][v]);
    }
}

// C[M, N] += A[M, K] B[K, N], A rows of stride am, N a multiple of 2 vectors. Column panels
// outermost: the panel of B (K x 2 vectors) stays in L1 while the rows of A stream past it.
template <typename T>
static inline void dw_gemm(int64_t M, int64_t K, int64_t N, const T* a, int64_t am, const T* b, int64_t ldb, T* c,
                        int64_t ldc) {
  for (int64_t n = 0; n < N; n += 2 * kConvLanes<T>) {
    int64_t m = 0;
    for (; m + kTileRows <= M; m += kTileRows)
      dw_gemm_tile<T, kTileRows>(K, a + m * am, am, b + n, ldb, c + m * ldc + n, ldc);
    with_rows<kTileRows - 1>(M - m, [&](auto R) {
      dw_gemm_tile<T, decltype(R)::value>(K, a + m * am, am, b + n, ldb, c + m * ldc + n, ldc);
    });
  }
}

// gt[p, co] = g[co, p] for the tile's n pixels (g rows of stride hw), co < cout; zero up to width.
// 32-byte blocks (small_gemm.h's transpose_block) in every build.
template <typename T>
static inline void transpose_tile(const T* g, int64_t hw, int64_t n, int64_t cout, int64_t width, T* gt,
                                  int64_t ldc) {
  constexpr int64_t L = kLanes<T>;
  int64_t co = 0;
  for (; co + L <= cout; co += L) {
    int64_t p = 0;
    for (; p + L <= n; p += L) {
      Vec<T> block[L];
      for (int64_t i = 0; i < L; ++i) block[i] = vload(g + (co + i) * hw + p);
      transpose_block(block);
      for (int64_t i = 0; i < L; ++i) vstore(gt + (p + i) * ldc + co, block[i]);
    }
    for (; p < n; ++p)
      for (int64_t i = 0; i < L; ++i) gt[p * ldc + co + i] = g[(co + i) * hw + p];
  }
  for (int64_t p = 0; p < n; ++p) {
    for (int64_t c = co; c < cout; ++c) gt[p * ldc + c] = g[c * hw + p];
    for (int64_t c = cout; c < width; ++c) gt[p * ldc + c] = T(0);
  }
}

// Per tile: the im2col of the live taps (contiguous runs of W pixels per image row), the transposed
// grad_out, then one register-tiled GEMM into acc. The taps' loop was outermost before, re-reading all
// of grad_out once per tap from memory (0.4x oneDNN on the 7x7 first layer).
template <typename T>
void weight_grad(const WeightGradPlan<T>& w, int64_t u0, int64_t u1, T* acc, T* scratch) {
  const int64_t tile = w.rows * w.W, hw = w.H * w.W;
  T* xcol = scratch;
  T* gt = scratch + w.columns() * tile;
  for (int64_t u = u0; u < u1; ++u) {
    const int64_t b = u / w.tiles(), y0 = u % w.tiles() * w.rows, rows = std::min(w.rows, w.H - y0), n = rows * w.W;
    for (int64_t t = 0; t < w.ntaps; ++t)
      for (int64_t col = w.col_begin[t]; col < w.col_begin[t + 1]; ++col) {
        const T* x = w.x + b * w.x_image + (col - w.col_begin[t]) * w.x_stride + y0 * w.Wp + w.offsets[t];
        for (int64_t r = 0; r < rows; ++r) std::copy_n(x + r * w.Wp, w.W, xcol + col * n + r * w.W);
      }
    transpose_tile(w.g + b * w.cout * hw + y0 * w.W, hw, n, w.cout, w.width, gt, w.ldc);
    dw_gemm<T>(w.columns(), n, w.width, xcol, n, gt, w.ldc, acc, w.ldc);
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
