// Torch bindings for inspecting the CPU build: which instruction-set build the kernels run
// (cpu_capability) and the vector exp they share (exp_nonpositive), so tests can check both builds
// of the helper against torch.exp.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <string>

#include "fastgen/cpu_features.h"
#include "fastgen/isa_dispatch.h"
#include "vector_math_kernels.h"

namespace fastgen {
namespace cpu {
namespace {

const VectorMathKernels& kernels() {
  return isa_table<&avx2::vector_math_kernels, &generic::vector_math_kernels>();
}

at::Tensor exp_nonpositive(const at::Tensor& x) {
  TORCH_CHECK(x.device().is_cpu(), "exp_nonpositive: needs a CPU tensor, got one on ", x.device());
  TORCH_CHECK(x.scalar_type() == at::kFloat, "exp_nonpositive: needs float32, got ", x.scalar_type());
  const at::Tensor in = x.contiguous();
  at::Tensor out = at::empty_like(in);
  kernels().exp_nonpositive(in.numel(), in.const_data_ptr<float>(), out.mutable_data_ptr<float>());
  return out;
}

}  // namespace
}  // namespace cpu

std::string cpu_capability() { return cpu_has_avx2_fma() ? "avx2" : "generic"; }

}  // namespace fastgen

TORCH_LIBRARY_IMPL(fastgen, CPU, m) {
  m.impl("exp_nonpositive", &fastgen::cpu::exp_nonpositive);
}
