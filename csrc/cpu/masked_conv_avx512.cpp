// The masked-convolution kernels compiled for AVX-512 (masked_conv.cpp picks them where the CPU has
// AVX-512: fastgen::cpu_has_avx512): registers twice as wide and twice as many as AVX2's, so each FMA
// does twice the work and the register tiles are twice as tall. The CPUs that have it (Xeons) are
// where oneDNN, the baseline, runs AVX-512 too. Elsewhere than x86-64 this is a portable build of
// 64-byte vectors that is never picked.
//
// The standard headers come before the target pragma (the reason: kernels_avx2.cpp).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")
#endif
#define FASTGEN_CPU_CAPABILITY avx512
#define FASTGEN_MASKED_CONV_VECTOR_BYTES 64
#include "masked_conv_kernels_impl.h"
