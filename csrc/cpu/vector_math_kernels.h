// Torch-free entry points that expose the CPU kernels' shared vector math (fastgen/small_gemm.h) per
// instruction set, so tests compare each build's helpers with torch over whole ranges of inputs.
#pragma once

#include <cstdint>

namespace fastgen {
namespace cpu {

struct VectorMathKernels {
  // y[i] = exp(x[i]) for x[i] <= 0 by vexp_nonpositive; n any size (the tail is padded).
  void (*exp_nonpositive)(int64_t n, const float* x, float* y);
};

namespace generic {
VectorMathKernels vector_math_kernels();
}
namespace avx2 {
VectorMathKernels vector_math_kernels();
}

}  // namespace cpu
}  // namespace fastgen
