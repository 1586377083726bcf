// The CPU kernels compiled for AVX2 + FMA; selected only when the CPU reports both.
//
// The standard headers come before the target pragma: parsed under it, their always_inline members
// (std::allocator's destructor, say) get the AVX2 target, and GCC 13 then refuses to inline them
// into code of the default target ("target specific option mismatch").
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#pragma GCC target("avx2,fma")
#endif
#define FASTGEN_CPU_CAPABILITY avx2
#include "attention_kernels_impl.h"
#include "lstm_kernels_impl.h"
#include "masked_conv_kernels_impl.h"
#include "pixelcnn_sampler_kernels_impl.h"
#include "draw_kernels_impl.h"
#include "wavenet_kernels_impl.h"
#include "vector_math_kernels_impl.h"
#include "items_kernels_impl.h"
#include "pixel_lstm_kernels_impl.h"
#include "pixelrnn_sampler_kernels_impl.h"
