// Torch bindings for inspecting the CPU build: which instruction-set build each kernel family runs
// (cpu_kernel_builds), the widest of them (cpu_capability), and the vector exp they share
// (exp_nonpositive), so tests can check both builds of the helper against torch.exp.
#include <ATen/ATen.h>
#include <ATen/core/Dict.h>
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

namespace {

// Every CPU kernel family (csrc/cpu/<family>_kernels.h) and whether it has an AVX-512 build
// (csrc/cpu/<family>*_avx512.cpp, picked by wide_isa_table); the others pick by isa_table.
// tests/ops/test_cpu_capability.py checks this list against those files.
struct FamilyBuilds {
  const char* family;
  bool avx512;
};
constexpr FamilyBuilds kFamilies[] = {
    {"attention", false},   {"draw", false},        {"items", true},         {"lstm", false},
    {"masked_conv", true},  {"pixel_lstm", true},   {"pixelcnn_sampler", false}, {"pixelrnn_sampler", false},
    {"vector_math", false}, {"wavenet", false},
};

}  // namespace

c10::Dict<std::string, std::string> cpu_kernel_builds() {
  c10::Dict<std::string, std::string> builds;
  for (const auto& f : kFamilies) builds.insert(f.family, cpu_build_name(f.avx512));
  return builds;
}

// The widest build any family runs: "avx512" where the CPU has it (masked_conv, items and pixel_lstm run it),
// else "avx2" or "generic".
std::string cpu_capability() {
  bool any_avx512 = false;
  for (const auto& f : kFamilies) any_avx512 = any_avx512 || f.avx512;
  return cpu_build_name(any_avx512);
}

}  // namespace fastgen

TORCH_LIBRARY_IMPL(fastgen, CPU, m) {
  m.impl("exp_nonpositive", &fastgen::cpu::exp_nonpositive);
}
