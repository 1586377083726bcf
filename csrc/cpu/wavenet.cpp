// Torch binding of cached WaveNet generation (wavenet_kernels.h): argument checks, threading over
// independent batch rows, and the run-time choice between the generic and AVX2 builds.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <optional>
#include <vector>

#include "fastgen/isa_dispatch.h"
#include "fastgen/wavenet_checks.h"
#include "wavenet_kernels.h"

namespace fastgen {
namespace cpu {
namespace {

template <typename W>
const WaveNetKernels<W>& kernels() {
  return isa_table<&avx2::wavenet_kernels<W>, &generic::wavenet_kernels<W>>();
}

at::Tensor wavenet_generate(at::Tensor& queues, at::Tensor& positions, at::Tensor& last_tokens,
                            at::TensorList weights, at::IntArrayRef dilations, const std::optional<at::Tensor>& cond,
                            const at::Tensor& uniforms, const at::Tensor& lengths, double temperature) {
  TORCH_CHECK(queues.device().is_cpu(), "wavenet_generate: the CPU kernel needs CPU tensors, got queues on ",
              queues.device());
  const WaveNetCall c = check_wavenet_args(queues, positions, last_tokens, weights, dilations, cond, uniforms, lengths,
                                           temperature, kMaxWaveNetLayers);
  auto out = at::empty({c.B, c.n}, last_tokens.options());
  const std::vector<int64_t> dil(dilations.begin(), dilations.end());
  const WaveNetDims d{c.B, c.n, c.C, c.R, c.S, c.H, c.L, c.k, c.Q, dil.data()};
  const WaveNetState s{queues.mutable_data_ptr<float>(), positions.mutable_data_ptr<int64_t>(),
                       last_tokens.mutable_data_ptr<int64_t>(), c.cond, c.cond_row_stride, c.cond_step_stride,
                       uniforms.const_data_ptr<float>(), lengths.const_data_ptr<int64_t>(), float(temperature),
                       out.mutable_data_ptr<int64_t>()};
  auto run = [&](auto weight_type) {
    using W = decltype(weight_type);
    auto ptr = [&](int i) { return reinterpret_cast<const W*>(weights[i].const_data_ptr()); };
    auto fptr = [&](int i) { return weights[i].const_data_ptr<float>(); };
    const WaveNetWeights<W> w{fptr(kWnEmbed), ptr(kWnGateW), fptr(kWnGateB), ptr(kWnResW), fptr(kWnResB),
                              ptr(kWnSkipW), fptr(kWnSkipB), ptr(kWnHead1W), fptr(kWnHead1B), ptr(kWnHead2W),
                              fptr(kWnHead2B)};
    // Rows are independent: each thread runs its rows through all n steps with no synchronisation.
    at::parallel_for(0, c.B, 1, [&](int64_t b0, int64_t b1) {
      std::vector<float> scratch(wavenet_scratch_floats(WaveNetDims{b1 - b0, c.n, c.C, c.R, c.S, c.H, c.L, c.k, c.Q,
                                                                    dil.data()}));
      kernels<W>().generate(d, w, s, b0, b1, scratch.data());
    });
  };
  if (c.weight_type == at::kFloat) {
    run(float{});
  } else {
    run(uint16_t{});
  }
  return out;
}

}  // namespace
}  // namespace cpu
}  // namespace fastgen

TORCH_LIBRARY_IMPL(fastgen, CPU, m) {
  m.impl("wavenet_generate", &fastgen::cpu::wavenet_generate);
}
