// Torch binding of the persistent CUDA WaveNet generation kernel (wavenet.cu): the CPU binding's
// argument checks (csrc/cpu/wavenet.cpp) for CUDA tensors, the kernel's parameter struct, and a launch
// on torch's current stream. Built only when torch has CUDA; the kernel itself is torch-free.
//
// NOT YET RUN ON HARDWARE (written on a machine without a GPU; compile-checked only). Run
// tests/gpu/test_wavenet_gpu.py on a GPU machine.
//
// Environment: FASTGEN_WAVENET_CUDA_WEIGHTS = auto (default) | global | shared chooses where the kernel
// reads the weights from (wavenet.cuh, WaveNetWeightPlacement); results are identical either way, the
// switch exists for tests and benchmarks.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>

#include "fastgen/wavenet_math.h"
#include "wavenet.cuh"

namespace fastgen {
namespace cuda {
namespace {

using wavenet::pad8;

enum WeightIndex { kEmbed, kGateW, kGateB, kResW, kResB, kSkipW, kSkipB, kHead1W, kHead1B, kHead2W, kHead2B, kNumWeights };
const char* const kWeightNames[kNumWeights] = {"embed", "gate_w", "gate_b", "res_w", "res_b", "skip_w",
                                               "skip_b", "head1_w", "head1_b", "head2_w", "head2_b"};

// Sizes the kernel keeps in 32-bit ints (and products of two of them) stay far below INT_MAX.
constexpr int64_t kMaxWidth = int64_t(1) << 24;

void check_tensor(const at::Tensor& t, const char* name, at::IntArrayRef shape, at::ScalarType dtype,
                  const at::Device& device) {
  TORCH_CHECK(t.is_cuda(), "wavenet_generate: ", name, " must be a CUDA tensor for the CUDA kernel, got ", t.device());
  TORCH_CHECK(t.device() == device, "wavenet_generate: ", name, " is on ", t.device(), " but queues is on ", device);
  TORCH_CHECK(t.sizes() == shape, "wavenet_generate: ", name, " must have shape ", shape, ", got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == dtype, "wavenet_generate: ", name, " must be ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), "wavenet_generate: ", name, " must be contiguous");
}

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
  TORCH_CHECK(weights.size() == kNumWeights, "wavenet_generate: expected ", int(kNumWeights),
              " packed weight tensors (embed, gate_w, gate_b, res_w, res_b, skip_w, skip_b, head1_w, head1_b, "
              "head2_w, head2_b), got ", weights.size());
  const int64_t L = dilations.size();
  TORCH_CHECK(L >= 1 && L <= kWaveNetMaxLayers, "wavenet_generate: need 1 to ", kWaveNetMaxLayers,
              " layers (dilations), got ", L);
  for (int64_t dil : dilations) TORCH_CHECK(dil >= 1, "wavenet_generate: dilations must be >= 1, got ", dil);
  TORCH_CHECK(std::isfinite(temperature) && temperature >= 0, "wavenet_generate: temperature must be finite and >= 0, got ",
              temperature);
  TORCH_CHECK(uniforms.dim() == 2, "wavenet_generate: uniforms must be [B, n], got ", uniforms.sizes());
  const int64_t B = uniforms.size(0), n = uniforms.size(1);
  const auto& embed = weights[kEmbed];
  const auto& gate_w = weights[kGateW];
  const auto& skip_w = weights[kSkipW];
  const auto& head1_w = weights[kHead1W];
  const auto& head2_w = weights[kHead2W];
  TORCH_CHECK(embed.dim() == 2 && gate_w.dim() == 3 && skip_w.dim() == 3 && head1_w.dim() == 2 && head2_w.dim() == 2,
              "wavenet_generate: embed [C, Rp], gate_w [L, k*R, 2*Rp], skip_w [L, R, Sp], head1_w [S, Hp] and "
              "head2_w [H, Cp] expected");
  const int64_t C = embed.size(0), R = skip_w.size(1), S = head1_w.size(0), H = head2_w.size(0);
  const int64_t k = R > 0 ? gate_w.size(1) / R : 0;
  TORCH_CHECK(C >= 2 && R >= 1 && S >= 1 && H >= 1 && k >= 2, "wavenet_generate: inconsistent packed sizes");
  TORCH_CHECK(C <= kMaxWidth && R <= kMaxWidth && S <= kMaxWidth && H <= kMaxWidth && k * R <= kMaxWidth,
              "wavenet_generate: sizes too large for the CUDA kernel (C=", C, ", R=", R, ", S=", S, ", H=", H,
              ", k=", k, ")");
  const int64_t Rp = pad8(R), Sp = pad8(S), Hp = pad8(H), Cp = pad8(C);
  const at::ScalarType wt = gate_w.scalar_type();
  TORCH_CHECK(wt == at::kFloat || wt == at::kBFloat16, "wavenet_generate: weight matrices must be float32 or bfloat16, got ", wt);
  // bfloat16 matrices interleave row pairs (csrc/cpu/wavenet_kernels.h), so every input width must be even.
  TORCH_CHECK(wt == at::kFloat || (R % 2 == 0 && S % 2 == 0 && H % 2 == 0),
              "wavenet_generate: bfloat16 weights need even residual, skip and head widths, got R=", R, " S=", S,
              " H=", H);
  const at::Device device = queues.device();
  TORCH_CHECK(queues.is_cuda(), "wavenet_generate: queues must be a CUDA tensor for the CUDA kernel, got ", device);
  const std::vector<int64_t> shapes[kNumWeights] = {
      {C, Rp}, {L, k * R, 2 * Rp}, {L, 2 * Rp}, {L - 1, R, Rp}, {L - 1, Rp}, {L, R, Sp}, {Sp}, {S, Hp}, {Hp}, {H, Cp}, {Cp}};
  for (int i = 0; i < kNumWeights; ++i) {
    const bool matrix = i == kGateW || i == kResW || i == kSkipW || i == kHead1W || i == kHead2W;
    check_tensor(weights[i], kWeightNames[i], shapes[i], matrix ? wt : at::kFloat, device);
  }
  if (wt == at::kBFloat16) {
    // The kernel loads bfloat16 row pairs as 32-bit words.
    for (int i : {int(kGateW), int(kResW), int(kSkipW), int(kHead1W), int(kHead2W)})
      TORCH_CHECK(reinterpret_cast<uintptr_t>(weights[i].const_data_ptr()) % 4 == 0, "wavenet_generate: ",
                  kWeightNames[i], " must be 4-byte aligned for the CUDA kernel (bfloat16 row pairs)");
  }
  int64_t Q = 0;
  for (int64_t dil : dilations) {
    TORCH_CHECK(dil <= std::numeric_limits<int32_t>::max(), "wavenet_generate: dilation ", dil,
                " too large for the CUDA kernel");
    Q += (k - 1) * dil;
  }
  check_tensor(queues, "queues", {B, Q, Rp}, at::kFloat, device);
  check_tensor(positions, "positions", {B}, at::kLong, device);
  check_tensor(last_tokens, "last_tokens", {B}, at::kLong, device);
  check_tensor(lengths, "lengths", {B}, at::kLong, device);
  check_tensor(uniforms, "uniforms", {B, n}, at::kFloat, device);
  TORCH_CHECK(B <= std::numeric_limits<int32_t>::max(), "wavenet_generate: batch ", B, " too large for the CUDA kernel");
  const c10::cuda::CUDAGuard guard(device);
  if (B > 0) {
    TORCH_CHECK(lengths.min().item<int64_t>() >= 0 && lengths.max().item<int64_t>() <= n,
                "wavenet_generate: lengths must be in [0, n=", n, "]");
    TORCH_CHECK(last_tokens.min().item<int64_t>() >= 0 && last_tokens.max().item<int64_t>() < C,
                "wavenet_generate: last_tokens must be in [0, ", C, ")");
    TORCH_CHECK(positions.min().item<int64_t>() >= 0, "wavenet_generate: positions must be >= 0");
  }
  int64_t cond_row_stride = 0, cond_step_stride = 0;
  const float* cond_ptr = nullptr;
  if (cond.has_value()) {
    const at::Tensor& c = *cond;
    TORCH_CHECK(c.dim() == 3 && (c.size(1) == 1 || c.size(1) == n),
                "wavenet_generate: cond must be [B, n or 1, L * 2 * Rp], got ", c.sizes());
    check_tensor(c, "cond", {B, c.size(1), L * 2 * Rp}, at::kFloat, device);
    cond_ptr = c.const_data_ptr<float>();
    cond_row_stride = c.size(1) * L * 2 * Rp;
    cond_step_stride = c.size(1) == 1 ? 0 : L * 2 * Rp;
  }
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
  p.Q = Q;
  for (int64_t l = 0; l < L; ++l) p.dilations[l] = static_cast<int32_t>(dilations[l]);
  p.weight_type = wt == at::kBFloat16 ? WaveNetWeightType::kBFloat16 : WaveNetWeightType::kFloat32;
  auto fptr = [&](int i) { return weights[i].const_data_ptr<float>(); };
  p.embed = fptr(kEmbed);
  p.gate_w = weights[kGateW].const_data_ptr();
  p.gate_b = fptr(kGateB);
  p.res_w = weights[kResW].const_data_ptr();
  p.res_b = fptr(kResB);
  p.skip_w = weights[kSkipW].const_data_ptr();
  p.skip_b = fptr(kSkipB);
  p.head1_w = weights[kHead1W].const_data_ptr();
  p.head1_b = fptr(kHead1B);
  p.head2_w = weights[kHead2W].const_data_ptr();
  p.head2_b = fptr(kHead2B);
  p.queues = queues.mutable_data_ptr<float>();
  p.positions = positions.mutable_data_ptr<int64_t>();
  p.last_tokens = last_tokens.mutable_data_ptr<int64_t>();
  p.cond = cond_ptr;
  p.cond_row_stride = cond_row_stride;
  p.cond_step_stride = cond_step_stride;
  p.uniforms = uniforms.const_data_ptr<float>();
  p.lengths = lengths.const_data_ptr<int64_t>();
  p.temperature = static_cast<float>(temperature);
  p.out = out.mutable_data_ptr<int64_t>();
  p.placement = placement_from_env();
  if (B == 0 || n == 0) return out;

  // The per-row scratch (activations, partial sums, ring slots) lives in shared memory.
  const size_t need = wavenet_shared_bytes(p, false);
  int have = 0;
  const cudaError_t err = cudaDeviceGetAttribute(&have, cudaDevAttrMaxSharedMemoryPerBlockOptin, device.index());
  TORCH_CHECK(err == cudaSuccess, "wavenet_generate: cannot query the device's shared memory: ", cudaGetErrorString(err));
  TORCH_CHECK(need <= static_cast<size_t>(have), "wavenet_generate: the CUDA kernel needs ", need,
              " bytes of shared memory per block for C=", C, ", R=", R, ", S=", S, ", H=", H, ", L=", L, ", k=", k,
              ", but the device allows ", have, "; use the 'triton' or 'cpu' backend for this model");

  const cudaError_t launched = launch_wavenet_generate(p, c10::cuda::getCurrentCUDAStream(device.index()).stream());
  TORCH_CHECK(launched == cudaSuccess, "wavenet_generate: CUDA kernel launch failed: ", cudaGetErrorString(launched));
  return out;
}

}  // namespace
}  // namespace cuda
}  // namespace fastgen

TORCH_LIBRARY_IMPL(fastgen, CUDA, m) {
  m.impl("wavenet_generate", &fastgen::cuda::wavenet_generate);
}
