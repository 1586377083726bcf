// Torch binding of cached WaveNet generation (wavenet_kernels.h): argument checks, threading over
// independent batch rows, and the run-time choice between the generic and AVX2 builds.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <vector>

#include "fastgen/cpu_features.h"
#include "wavenet_kernels.h"

namespace fastgen {
namespace cpu {
namespace {

using wavenet::pad8;

template <typename W>
const WaveNetKernels<W>& kernels() {
  static const WaveNetKernels<W> table =
      cpu_has_avx2_fma() ? avx2::wavenet_kernels<W>() : generic::wavenet_kernels<W>();
  return table;
}

enum WeightIndex { kEmbed, kGateW, kGateB, kResW, kResB, kSkipW, kSkipB, kHead1W, kHead1B, kHead2W, kHead2B, kNumWeights };
const char* const kWeightNames[kNumWeights] = {"embed", "gate_w", "gate_b", "res_w", "res_b", "skip_w",
                                               "skip_b", "head1_w", "head1_b", "head2_w", "head2_b"};

void check_tensor(const at::Tensor& t, const char* name, at::IntArrayRef shape, at::ScalarType dtype) {
  TORCH_CHECK(t.device().is_cpu(), "wavenet_generate: ", name, " must be a CPU tensor, got ", t.device());
  TORCH_CHECK(t.sizes() == shape, "wavenet_generate: ", name, " must have shape ", shape, ", got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == dtype, "wavenet_generate: ", name, " must be ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), "wavenet_generate: ", name, " must be contiguous");
}

at::Tensor wavenet_generate(at::Tensor& queues, at::Tensor& positions, at::Tensor& last_tokens,
                            at::TensorList weights, at::IntArrayRef dilations, const c10::optional<at::Tensor>& cond,
                            const at::Tensor& uniforms, const at::Tensor& lengths, double temperature) {
  TORCH_CHECK(weights.size() == kNumWeights, "wavenet_generate: expected ", int(kNumWeights),
              " packed weight tensors (embed, gate_w, gate_b, res_w, res_b, skip_w, skip_b, head1_w, head1_b, "
              "head2_w, head2_b), got ", weights.size());
  const int64_t L = dilations.size();
  TORCH_CHECK(L >= 1 && L <= kMaxWaveNetLayers, "wavenet_generate: need 1 to ", kMaxWaveNetLayers,
              " layers (dilations), got ", L);
  for (int64_t dil : dilations) TORCH_CHECK(dil >= 1, "wavenet_generate: dilations must be >= 1, got ", dil);
  TORCH_CHECK(std::isfinite(temperature) && temperature >= 0, "wavenet_generate: temperature must be finite and >= 0, got ",
              temperature);
  TORCH_CHECK(uniforms.dim() == 2, "wavenet_generate: uniforms must be [B, n], got ", uniforms.sizes());
  const int64_t B = uniforms.size(0), n = uniforms.size(1);
  const auto& embed = weights[kEmbed];
  const auto& skip_w = weights[kSkipW];
  const auto& head1_w = weights[kHead1W];
  const auto& head2_w = weights[kHead2W];
  TORCH_CHECK(embed.dim() == 2 && skip_w.dim() == 3 && head1_w.dim() == 2 && head2_w.dim() == 2,
              "wavenet_generate: embed [C, Rp], skip_w [L, R, Sp], head1_w [S, Hp] and head2_w [H, Cp] expected");
  const int64_t C = embed.size(0), R = skip_w.size(1), S = head1_w.size(0), H = head2_w.size(0);
  const int64_t k = R > 0 ? weights[kGateW].size(1) / R : 0;
  TORCH_CHECK(C >= 2 && R >= 1 && S >= 1 && H >= 1 && k >= 2, "wavenet_generate: inconsistent packed sizes");
  const int64_t Rp = pad8(R), Sp = pad8(S), Hp = pad8(H), Cp = pad8(C);
  const at::ScalarType wt = weights[kGateW].scalar_type();
  TORCH_CHECK(wt == at::kFloat || wt == at::kBFloat16, "wavenet_generate: weight matrices must be float32 or bfloat16, got ", wt);
  // bfloat16 matrices interleave row pairs (csrc/cpu/wavenet_kernels_impl.h, tile()), so every
  // input width must be even.
  TORCH_CHECK(wt == at::kFloat || (R % 2 == 0 && S % 2 == 0 && H % 2 == 0),
              "wavenet_generate: bfloat16 weights need even residual, skip and head widths, got R=", R, " S=", S,
              " H=", H);
  const std::vector<int64_t> shapes[kNumWeights] = {
      {C, Rp}, {L, k * R, 2 * Rp}, {L, 2 * Rp}, {L - 1, R, Rp}, {L - 1, Rp}, {L, R, Sp}, {Sp}, {S, Hp}, {Hp}, {H, Cp}, {Cp}};
  for (int i = 0; i < kNumWeights; ++i) {
    const bool matrix = i == kGateW || i == kResW || i == kSkipW || i == kHead1W || i == kHead2W;
    check_tensor(weights[i], kWeightNames[i], shapes[i], matrix ? wt : at::kFloat);
  }
  int64_t Q = 0;
  for (int64_t dil : dilations) Q += (k - 1) * dil;
  check_tensor(queues, "queues", {B, Q, Rp}, at::kFloat);
  check_tensor(positions, "positions", {B}, at::kLong);
  check_tensor(last_tokens, "last_tokens", {B}, at::kLong);
  check_tensor(lengths, "lengths", {B}, at::kLong);
  check_tensor(uniforms, "uniforms", {B, n}, at::kFloat);
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
    check_tensor(c, "cond", {B, c.size(1), L * 2 * Rp}, at::kFloat);
    cond_ptr = c.const_data_ptr<float>();
    cond_row_stride = c.size(1) * L * 2 * Rp;
    cond_step_stride = c.size(1) == 1 ? 0 : L * 2 * Rp;
  }
  auto out = at::empty({B, n}, last_tokens.options());
  const std::vector<int64_t> dil(dilations.begin(), dilations.end());
  const WaveNetDims d{B, n, C, R, S, H, L, k, Q, dil.data()};
  const WaveNetState s{queues.mutable_data_ptr<float>(), positions.mutable_data_ptr<int64_t>(),
                       last_tokens.mutable_data_ptr<int64_t>(), cond_ptr, cond_row_stride, cond_step_stride,
                       uniforms.const_data_ptr<float>(), lengths.const_data_ptr<int64_t>(), float(temperature),
                       out.mutable_data_ptr<int64_t>()};
  auto run = [&](auto weight_type) {
    using W = decltype(weight_type);
    auto ptr = [&](int i) { return reinterpret_cast<const W*>(weights[i].const_data_ptr()); };
    auto fptr = [&](int i) { return weights[i].const_data_ptr<float>(); };
    const WaveNetWeights<W> w{fptr(kEmbed), ptr(kGateW), fptr(kGateB), ptr(kResW), fptr(kResB), ptr(kSkipW),
                              fptr(kSkipB), ptr(kHead1W), fptr(kHead1B), ptr(kHead2W), fptr(kHead2B)};
    // Rows are independent: each thread runs its rows through all n steps with no synchronisation.
    at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      std::vector<float> scratch(wavenet_scratch_floats(WaveNetDims{b1 - b0, n, C, R, S, H, L, k, Q, dil.data()}));
      kernels<W>().generate(d, w, s, b0, b1, scratch.data());
    });
  };
  if (wt == at::kFloat) {
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
