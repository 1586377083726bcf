// Register-tiled small matrix products and a vector exp for the CPU kernels.
//
// The attention matrices are tiny (N filters of tens of pixels), far below the sizes where a BLAS
// call pays for itself. These kernels use 32-byte vectors (fastgen/wide_vec.h): one AVX2 register
// in the AVX2 build (kernels_avx2.cpp), a pair of SSE registers in the generic build, from the
// same source. B and C operands have padded rows (a multiple of kLanes<T> elements) so no tail loop
// is needed; callers keep the padding columns of B at zero.
#pragma once

#include <cstdint>
#include <cstring>

#include "fastgen/wide_vec.h"

namespace fastgen {
namespace cpu {

template <typename T>
using Vec = Wide<T, 32>;
template <typename T>
constexpr int64_t kLanes = kWideLanes<T, 32>;

template <typename T>
static inline int64_t padded(int64_t n) {
  return (n + kLanes<T> - 1) / kLanes<T> * kLanes<T>;
}

template <typename T>
static inline Vec<T> vload(const T* p) {
  return wload<32>(p);
}
template <typename T>
static inline void vstore(T* p, Vec<T> v) {
  wstore<32>(p, v);
}

// One R x (NV * kLanes) tile of C = alpha * A B (+ C): accumulators stay in registers across K.
template <typename T, int R, int NV>
static inline void gemm_tile(int64_t K, const T* A, int64_t am, int64_t ak, const T* B, int64_t ldb, T* C,
                             int64_t ldc, T alpha, bool accumulate) {
  constexpr int64_t L = kLanes<T>;
  Vec<T> acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = Vec<T>{} ;
  for (int64_t k = 0; k < K; ++k) {
    Vec<T> b[NV];
    for (int v = 0; v < NV; ++v) b[v] = vload(B + k * ldb + v * L);
    for (int r = 0; r < R; ++r) {
      const T a = A[r * am + k * ak];
      for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) {
      T* c = C + r * ldc + v * L;
      vstore(c, accumulate ? vload(c) + alpha * acc[r][v] : alpha * acc[r][v]);
    }
}

// Tiles of up to 6 rows by NV vectors; the row remainder uses smaller tiles.
template <typename T, int NV>
static inline void gemm_rows(int64_t M, int64_t K, const T* A, int64_t am, int64_t ak, const T* B, int64_t ldb, T* C,
                             int64_t ldc, T alpha, bool accumulate) {
  int64_t m = 0;
  for (; m + 6 <= M; m += 6) gemm_tile<T, 6, NV>(K, A + m * am, am, ak, B, ldb, C + m * ldc, ldc, alpha, accumulate);
  for (; m + 4 <= M; m += 4) gemm_tile<T, 4, NV>(K, A + m * am, am, ak, B, ldb, C + m * ldc, ldc, alpha, accumulate);
  switch (M - m) {
    case 3: gemm_tile<T, 3, NV>(K, A + m * am, am, ak, B, ldb, C + m * ldc, ldc, alpha, accumulate); break;
    case 2: gemm_tile<T, 2, NV>(K, A + m * am, am, ak, B, ldb, C + m * ldc, ldc, alpha, accumulate); break;
    case 1: gemm_tile<T, 1, NV>(K, A + m * am, am, ak, B, ldb, C + m * ldc, ldc, alpha, accumulate); break;
    default: break;
  }
}

// C[M,P] = alpha * A B (+ C when accumulate). A[m,k] is read at A[m * am + k * ak], so A may be given
// transposed; B is [K,P] with row stride ldb, C is [M,P] with row stride ldc; P, ldb and ldc are
// multiples of kLanes<T>.
// Column blocks of 2 vectors by 6 rows keep 12 accumulators, 2 B vectors and a broadcast A value in
// the 16 AVX2 registers (4-vector blocks spilled and were ~15% slower on the attention shapes).
template <typename T>
static inline void gemm(int64_t M, int64_t K, int64_t P, const T* A, int64_t am, int64_t ak, const T* B, int64_t ldb,
                        T* C, int64_t ldc, T alpha, bool accumulate) {
  constexpr int64_t L = kLanes<T>;
  int64_t p = 0;
  for (; p + 2 * L <= P; p += 2 * L) gemm_rows<T, 2>(M, K, A, am, ak, B + p, ldb, C + p, ldc, alpha, accumulate);
  switch ((P - p) / L) {
    case 1: gemm_rows<T, 1>(M, K, A, am, ak, B + p, ldb, C + p, ldc, alpha, accumulate); break;
    default: break;
  }
}

// Copies a [R,C] matrix with row stride ld_in into one with row stride ld_out, scaled.
template <typename T>
static inline void copy_rows(int64_t R, int64_t C, const T* in, int64_t ld_in, T* out, int64_t ld_out) {
  for (int64_t r = 0; r < R; ++r) std::memcpy(out + r * ld_out, in + r * ld_in, C * sizeof(T));
}

// In-register transpose of one kLanes x kLanes block (rows r[0..L)), the classic unpack / shuffle /
// 128-bit-lane-swap sequence written with portable vector shuffles.
static inline void transpose_block(Vec<float> (&r)[8]) {
  Vec<float> t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = __builtin_shufflevector(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
    u[i + 1] = __builtin_shufflevector(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    u[i + 2] = __builtin_shufflevector(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
    u[i + 3] = __builtin_shufflevector(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = __builtin_shufflevector(u[i], u[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
    r[i + 4] = __builtin_shufflevector(u[i], u[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
  }
}
static inline void transpose_block(Vec<double> (&r)[4]) {
  const Vec<double> t0 = __builtin_shufflevector(r[0], r[1], 0, 4, 2, 6);
  const Vec<double> t1 = __builtin_shufflevector(r[0], r[1], 1, 5, 3, 7);
  const Vec<double> t2 = __builtin_shufflevector(r[2], r[3], 0, 4, 2, 6);
  const Vec<double> t3 = __builtin_shufflevector(r[2], r[3], 1, 5, 3, 7);
  r[0] = __builtin_shufflevector(t0, t2, 0, 1, 4, 5);
  r[1] = __builtin_shufflevector(t1, t3, 0, 1, 4, 5);
  r[2] = __builtin_shufflevector(t0, t2, 2, 3, 6, 7);
  r[3] = __builtin_shufflevector(t1, t3, 2, 3, 6, 7);
}

// out[c, r] = in[r, c] over the padded extents: in has padded<T>(R) rows and out padded<T>(C) rows
// (padding rows and columns are transposed too), row strides ld_in and ld_out multiples of kLanes.
// Scalar transposes of these small matrices cost as much as the products they feed.
template <typename T>
static inline void transpose(int64_t R, int64_t C, const T* in, int64_t ld_in, T* out, int64_t ld_out) {
  constexpr int64_t L = kLanes<T>;
  for (int64_t r0 = 0; r0 < padded<T>(R); r0 += L)
    for (int64_t c0 = 0; c0 < padded<T>(C); c0 += L) {
      Vec<T> block[L];
      for (int64_t i = 0; i < L; ++i) block[i] = vload(in + (r0 + i) * ld_in + c0);
      transpose_block(block);
      for (int64_t i = 0; i < L; ++i) vstore(out + (c0 + i) * ld_out + r0, block[i]);
    }
}

// Sum of the lanes of v.
template <typename T>
static inline T hsum(Vec<T> v) {
  T s = T(0);
  for (int64_t l = 0; l < kLanes<T>; ++l) s += v[l];
  return s;
}

// (1, 2, ..., kLanes) + start
template <typename T>
static inline Vec<T> iota_from(T start) {
  Vec<T> v;
  for (int64_t l = 0; l < kLanes<T>; ++l) v[l] = start + T(l);
  return v;
}

// sum_i a[i] * b[i] over n elements, n a multiple of kLanes<T>.
template <typename T>
static inline T dot(int64_t n, const T* a, const T* b) {
  Vec<T> acc{};
  for (int64_t i = 0; i < n; i += kLanes<T>) acc += vload(a + i) * vload(b + i);
  return hsum<T>(acc);
}

// exp(x) for x <= 0, 8 lanes (wide_vec.h: floored at ln(FLT_MIN), exactly 0 below it).
static inline Vec<float> vexp_nonpositive(Vec<float> x) { return wexp_nonpositive<32>(x); }

// Float sigmoid and tanh from exp(-|x|), which never overflows.
static inline Vec<float> vsigmoid(Vec<float> x) {
  const Vec<float> ax = x < 0.0f ? -x : x;
  const Vec<float> e = vexp_nonpositive(-ax);
  const Vec<float> inv = 1.0f / (1.0f + e);
  return x >= 0.0f ? inv : e * inv;
}
static inline Vec<float> vtanh(Vec<float> x) {
  const Vec<float> ax = x < 0.0f ? -x : x;
  const Vec<float> e = vexp_nonpositive(-2.0f * ax);
  const Vec<float> t = (1.0f - e) / (1.0f + e);
  return x < 0.0f ? -t : t;
}

}  // namespace cpu
}  // namespace fastgen
