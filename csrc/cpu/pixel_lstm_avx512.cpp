// The PixelRNN recurrences compiled for AVX-512 (pixel_lstm.cpp picks them where the CPU has AVX-512F):
// the step GEMMs run on 64-byte vectors with register tiles twice as tall as AVX2's, and so does the
// per-cell LSTM math: lstm_kernels_impl.h's element templates call act_sigmoid / act_tanh, and the
// 64-byte overloads below, declared before that header, are found there like its own 32-byte ones.
//
// The standard headers come before the target pragma (the reason: kernels_avx2.cpp).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx512f,avx512vl,avx512dq,avx2,fma")
#define FASTGEN_CPU_CAPABILITY avx512
#define FASTGEN_PIXEL_LSTM_VECTOR_BYTES 64
#include "fastgen/small_gemm.h"

namespace fastgen {
namespace cpu {
namespace FASTGEN_CPU_CAPABILITY {
namespace {
static inline Wide<float, 64> act_sigmoid(Wide<float, 64> x) { return wsigmoid<64>(x); }
static inline Wide<float, 64> act_tanh(Wide<float, 64> x) { return wtanh<64>(x); }
}  // namespace
}  // namespace FASTGEN_CPU_CAPABILITY
}  // namespace cpu
}  // namespace fastgen

#include "lstm_kernels_impl.h"
#include "pixel_lstm_kernels_impl.h"
#endif
