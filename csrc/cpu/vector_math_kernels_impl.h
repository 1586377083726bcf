// Body of vector_math_kernels.h, compiled once per ISA (FASTGEN_CPU_CAPABILITY).
#include <algorithm>
#include <cstring>

#include "fastgen/small_gemm.h"
#include "vector_math_kernels.h"

namespace fastgen {
namespace cpu {
namespace FASTGEN_CPU_CAPABILITY {
namespace {

void exp_nonpositive(int64_t n, const float* x, float* y) {
  constexpr int64_t L = kLanes<float>;
  int64_t i = 0;
  for (; i + L <= n; i += L) vstore(y + i, vexp_nonpositive(vload(x + i)));
  if (i < n) {
    float in[L] = {}, out[L];
    std::memcpy(in, x + i, (n - i) * sizeof(float));
    vstore(out, vexp_nonpositive(vload(in)));
    std::memcpy(y + i, out, (n - i) * sizeof(float));
  }
}

}  // namespace

VectorMathKernels vector_math_kernels() { return {&exp_nonpositive}; }

}  // namespace FASTGEN_CPU_CAPABILITY
}  // namespace cpu
}  // namespace fastgen
