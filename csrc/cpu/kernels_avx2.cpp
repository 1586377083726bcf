// The CPU kernels compiled for AVX2 + FMA; selected only when the CPU reports both.
#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma")
#endif
#define FASTGEN_CPU_CAPABILITY avx2
#include "attention_kernels_impl.h"
#include "lstm_kernels_impl.h"
#include "draw_kernels_impl.h"
#include "wavenet_kernels_impl.h"
