// The PixelRNN recurrences compiled for AVX-512 (pixel_lstm.cpp picks them where the CPU has AVX-512F):
// the step GEMMs, most of the work, run on 64-byte vectors with register tiles twice as tall as
// AVX2's; the per-cell LSTM math stays on lstm_kernels_impl.h's 32-byte vectors.
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
#include "lstm_kernels_impl.h"
#include "pixel_lstm_kernels_impl.h"
#endif
