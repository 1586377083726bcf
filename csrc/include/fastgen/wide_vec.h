// GCC vector-extension vectors of any width for the CPU kernels, and the vector exp they share.
//
// The width is a template argument (Bytes: 32 = one AVX2 register, or a pair of SSE registers in the
// generic build; 64 = one AVX-512 register), not a macro, so kernels of different widths can meet in
// one translation unit without clashing names or differing definitions. Each *_kernels_impl.h names
// its own width and an alias with a family prefix (ConvVec, UserVec): the impl headers share one
// namespace per ISA build (kernels_avx2.cpp includes them all), so a generic alias such as `Vec` or
// `Wide` declared in one would hide this header's templates from the next.
// Every function is static inline: each ISA build keeps its own copy (see macros.h).
#pragma once

#include <cstdint>
#include <cstring>

namespace fastgen {
namespace cpu {

template <typename T, int Bytes>
struct WideOf {
  // aligned(alignof(T)): loads and stores through this type need no Bytes-aligned addresses.
  typedef T type __attribute__((vector_size(Bytes), aligned(alignof(T))));
};
template <typename T, int Bytes>
using Wide = typename WideOf<T, Bytes>::type;
template <typename T, int Bytes>
constexpr int64_t kWideLanes = Bytes / sizeof(T);

template <int Bytes, typename T>
static inline Wide<T, Bytes> wload(const T* p) {
  return *reinterpret_cast<const Wide<T, Bytes>*>(p);
}
template <int Bytes, typename T>
static inline void wstore(T* p, Wide<T, Bytes> v) {
  *reinterpret_cast<Wide<T, Bytes>*>(p) = v;
}

// ln of float's smallest normal number: exp(x) below it is subnormal or 0.
constexpr float kExpNormalFloor = -87.33654475f;

// exp(x) for any x <= 0 (-inf included), a whole vector at a time: x = n ln2 + r with |r| <= ln2/2,
// then exp(r) by its Taylor series to degree 7 (truncation error < 6e-9, below float rounding) and
// the 2^n factor added to the exponent bits. The series is evaluated in Estrin's form (pairs, then
// r^2 and r^4 combine them): 3 dependent FMAs instead of Horner's 7, so the loops that call this
// are not bound by one long latency chain per vector.
// Below kExpNormalFloor the result is exactly 0 (the true value is under 1.2e-38): 2^n for n < -126
// does not fit the exponent bits, and the wrapped bits made huge or negative "probabilities" of very
// unlikely classes in the WaveNet sampler (issue #10). NaN stays NaN. Lane by lane the same
// arithmetic at every width, so a 16-lane call equals two 8-lane ones.
template <int Bytes>
static inline Wide<float, Bytes> wexp_nonpositive(Wide<float, Bytes> x) {
  using F = Wide<float, Bytes>;
  typedef int32_t Bits __attribute__((vector_size(Bytes)));
  const auto underflow = x < kExpNormalFloor;
  x = underflow ? F{} + kExpNormalFloor : x;
  const F n = __builtin_convertvector(__builtin_convertvector(x * 1.44269504088896341f - 0.5f, Bits), F);
  // ln2 split in two parts so that n * ln2_hi is exact for |n| < 2^9.
  const F r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  const F r2 = r * r;
  const F p01 = r + 1.0f, p23 = r * (1.0f / 6) + 0.5f;
  const F p45 = r * (1.0f / 120) + (1.0f / 24), p67 = r * (1.0f / 5040) + (1.0f / 720);
  const F p = (p01 + r2 * p23) + (r2 * r2) * (p45 + r2 * p67);
  const Bits bits = (__builtin_convertvector(n, Bits) + 127) << 23;
  F scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return underflow ? F{} : p * scale;
}

// Float sigmoid and tanh of any width from exp(-|x|), which never overflows: lane by lane the same
// arithmetic as small_gemm.h's 32-byte vsigmoid / vtanh.
template <int Bytes>
static inline Wide<float, Bytes> wsigmoid(Wide<float, Bytes> x) {
  const Wide<float, Bytes> ax = x < 0.0f ? -x : x;
  const Wide<float, Bytes> e = wexp_nonpositive<Bytes>(-ax);
  const Wide<float, Bytes> inv = 1.0f / (1.0f + e);
  return x >= 0.0f ? inv : e * inv;
}
template <int Bytes>
static inline Wide<float, Bytes> wtanh(Wide<float, Bytes> x) {
  const Wide<float, Bytes> ax = x < 0.0f ? -x : x;
  const Wide<float, Bytes> e = wexp_nonpositive<Bytes>(-2.0f * ax);
  const Wide<float, Bytes> t = (1.0f - e) / (1.0f + e);
  return x < 0.0f ? -t : t;
}

}  // namespace cpu
}  // namespace fastgen
