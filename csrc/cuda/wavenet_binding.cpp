// Torch binding of the persistent CUDA WaveNet generation kernel (wavenet.cu): the argument checks
// shared with the CPU binding (fastgen/wavenet_checks.h) plus the CUDA kernel's own limits, the
// kernel's parameter struct, and a launch on torch's current stream. Built only when torch has CUDA; the kernel itself is torch-free.
//
// Run on hardware once (H200, 2026-11-29): tests/gpu/test_wavenet_gpu.py, token for token against the
// CPU kernel and the reference; benchmarks/results/gpu.md has the figures.
//
// Environment: FASTGEN_WAVENET_CUDA_WEIGHTS = auto (default) | global | shared chooses where the kernel
// reads the weights from (wavenet.cuh, WaveNetWeightPlacement); results are identical either way, the
// switch exists for tests and benchmarks.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>

#include "fastgen/cuda_checks.h"
#include "fastgen/wavenet_checks.h"
#include "fastgen/wavenet_math.h"
#include "wavenet.cuh"

namespace fastgen {
namespace cuda {
namespace {

// Sizes the kernel keeps in 32-bit ints (and products of two of them) stay far below INT_MAX.
constexpr int64_t kMaxWidth = int64_t(1) << 24;

WaveNetWeightPlacement placement_from_env() {
  const char* v = std::getenv("FASTGEN_WAVENET_CUDA_WEIGHTS");
  if (v == nullptr || *v == '\0' || std::strcmp(v, "auto") == 0) return WaveNetWeightPlacement::kAuto;
  if (std::strcmp(v, "global") == 0) return WaveNetWeightPlacement::kGlobal;
  if (std::strcmp(v, "shared") == 0) return WaveNetWeightPlacement::kShared;
  TORCH_CHECK(false, "wavenet_generate: FASTGEN_WAVENET_CUDA_WEIGHTS must be auto, global or shared, got '", v, "'");
  return WaveNetWeightPlacement::kAuto;
}

at::Tensor wavenet_generate(at::Tensor& queues, at::Tensor& positions, at::Tensor& last_tokens,
                            at::TensorList weights, at::IntArrayRef dilations, const std::optional<at::Tensor>& cond,
                            const at::Tensor& uniforms, const at::Tensor& lengths, double temperature) {
  check_cuda_tensor("wavenet_generate", queues, "queues");
  const WaveNetCall c = check_wavenet_args(queues, positions, last_tokens, weights, dilations, cond, uniforms, lengths,
                                           temperature, kWaveNetMaxLayers);
  const int64_t B = c.B, n = c.n, C = c.C, R = c.R, S = c.S, H = c.H, L = c.L, k = c.k;
  TORCH_CHECK(C <= kMaxWidth && R <= kMaxWidth && S <= kMaxWidth && H <= kMaxWidth && k * R <= kMaxWidth &&
                  B <= std::numeric_limits<int32_t>::max(),
              "wavenet_generate: sizes too large for the CUDA kernel (B=", B, ", C=", C, ", R=", R, ", S=", S, ", H=", H,
              ", k=", k, ")");
  for (int64_t dil : dilations)
    TORCH_CHECK(dil <= std::numeric_limits<int32_t>::max(), "wavenet_generate: dilation ", dil,
                " too large for the CUDA kernel");
  if (c.weight_type == at::kBFloat16) {
    // The kernel loads bfloat16 row pairs as 32-bit words.
    for (int i : {int(kWnGateW), int(kWnResW), int(kWnSkipW), int(kWnHead1W), int(kWnHead2W)})
      TORCH_CHECK(reinterpret_cast<uintptr_t>(weights[i].const_data_ptr()) % 4 == 0, "wavenet_generate: packed weight ",
                  i, " must be 4-byte aligned for the CUDA kernel (bfloat16 row pairs)");
  }
  const at::Device device = queues.device();
  const c10::cuda::CUDAGuard guard(device);
  auto out = at::empty({B, n}, last_tokens.options());

  WaveNetParamsCuda p{};
  p.B = B;
  p.n = n;
  p.C = static_cast<int>(C);
  p.R = static_cast<int>(R);
  p.S = static_cast<int>(S);
  p.H = static_cast<int>(H);
  p.L = static_cast<int>(L);
  p.k = static_cast<int>(k);
  p.Q = c.Q;
  for (int64_t l = 0; l < L; ++l) p.dilations[l] = static_cast<int32_t>(dilations[l]);
  p.weight_type = c.weight_type == at::kBFloat16 ? WaveNetWeightType::kBFloat16 : WaveNetWeightType::kFloat32;
  auto fptr = [&](int i) { return weights[i].const_data_ptr<float>(); };
  p.embed = fptr(kWnEmbed);
  p.gate_w = weights[kWnGateW].const_data_ptr();
  p.gate_b = fptr(kWnGateB);
  p.res_w = weights[kWnResW].const_data_ptr();
  p.res_b = fptr(kWnResB);
  p.skip_w = weights[kWnSkipW].const_data_ptr();
  p.skip_b = fptr(kWnSkipB);
  p.head1_w = weights[kWnHead1W].const_data_ptr();
  p.head1_b = fptr(kWnHead1B);
  p.head2_w = weights[kWnHead2W].const_data_ptr();
  p.head2_b = fptr(kWnHead2B);
  p.queues = queues.mutable_data_ptr<float>();
  p.positions = positions.mutable_data_ptr<int64_t>();
  p.last_tokens = last_tokens.mutable_data_ptr<int64_t>();
  p.cond = c.cond;
  p.cond_row_stride = c.cond_row_stride;
  p.cond_step_stride = c.cond_step_stride;
  p.uniforms = uniforms.const_data_ptr<float>();
  p.lengths = lengths.const_data_ptr<int64_t>();
  p.temperature = static_cast<float>(temperature);
  p.out = out.mutable_data_ptr<int64_t>();
  p.placement = placement_from_env();
  if (B == 0 || n == 0) return out;

  // The per-row scratch (activations, partial sums, ring slots) lives in shared memory.
  check_shared_memory("wavenet_generate", wavenet_shared_bytes(p, false), device.index(),
                      c10::str("C=", C, ", R=", R, ", S=", S, ", H=", H, ", L=", L, ", k=", k),
                      "use the 'triton' or 'cpu' backend for this model");
  check_launch("wavenet_generate",
               launch_wavenet_generate(p, c10::cuda::getCurrentCUDAStream(device.index()).stream()));
  return out;
}

}  // namespace
}  // namespace cuda
}  // namespace fastgen

TORCH_LIBRARY_IMPL(fastgen, CUDA, m) {
  m.impl("wavenet_generate", &fastgen::cuda::wavenet_generate);
}
