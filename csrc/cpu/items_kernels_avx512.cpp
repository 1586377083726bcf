// The IRGAN item kernels (items_kernels_impl.h) built for AVX-512 (F, VL, DQ, BW): 64-byte vectors of
// 16 users and a 12 x 2-vector register tile in the 32 vector registers. csrc/cpu/items.cpp picks this
// build where the CPU has those extensions (fastgen::cpu_has_avx512; FASTGEN_CPU_CAPABILITY=avx2 or
// =generic turns it off).
// The scores' FMA chains dominate these kernels and the plain-PyTorch twin's matmul uses AVX-512:
// this build is what keeps the kernel ahead of it on such CPUs.
//
// Standard headers come before the target pragma (see kernels_avx2.cpp).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")
#endif
#define FASTGEN_CPU_CAPABILITY avx512
#define FASTGEN_ITEMS_VECTOR_BYTES 64
#include "items_kernels_impl.h"
