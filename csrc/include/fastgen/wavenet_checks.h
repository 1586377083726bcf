// Argument checks of wavenet_generate shared by the CPU and CUDA torch bindings: the packed weight
// list (csrc/cpu/wavenet_kernels.h), the generation state and the per-call tensors. Every tensor must
// be on queues' device; each binding checks that device's type first.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <optional>
#include <vector>

#include "fastgen/wavenet_math.h"

namespace fastgen {

enum WaveNetWeightIndex {
  kWnEmbed, kWnGateW, kWnGateB, kWnResW, kWnResB, kWnSkipW, kWnSkipB, kWnHead1W, kWnHead1B, kWnHead2W, kWnHead2B,
  kWnNumWeights
};

// The sizes of one checked call.
struct WaveNetCall {
  int64_t B, n, C, R, S, H, L, k, Q;
  at::ScalarType weight_type;  // float32 or bfloat16 (row-pair interleaved) matrices
  const float* cond;           // null without conditioning
  int64_t cond_row_stride, cond_step_stride;
};

// The expected shape is an owned vector (not a view of a braced temporary), and the number of
// dimensions is compared before any size: on the first GPU run a wrong shape crashed inside these
// checks (cause not found without a GPU since; tests/gpu/test_wavenet_gpu.py runs each case in a child).
inline void check_wavenet_tensor(const at::Tensor& t, const char* name, const std::vector<int64_t>& shape,
                                 at::ScalarType dtype, const at::Device& device) {
  TORCH_CHECK(t.device() == device, "wavenet_generate: ", name, " is on ", t.device(), " but queues is on ", device);
  const at::IntArrayRef want(shape);
  TORCH_CHECK(t.dim() == int64_t(shape.size()) && t.sizes() == want, "wavenet_generate: ", name, " must have shape ",
              want, ", got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == dtype, "wavenet_generate: ", name, " must be ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), "wavenet_generate: ", name, " must be contiguous");
}

inline WaveNetCall check_wavenet_args(const at::Tensor& queues, const at::Tensor& positions,
                                      const at::Tensor& last_tokens, at::TensorList weights,
                                      at::IntArrayRef dilations, const std::optional<at::Tensor>& cond,
                                      const at::Tensor& uniforms, const at::Tensor& lengths, double temperature,
                                      int64_t max_layers) {
  static const char* const names[kWnNumWeights] = {"embed", "gate_w", "gate_b", "res_w", "res_b", "skip_w",
                                                   "skip_b", "head1_w", "head1_b", "head2_w", "head2_b"};
  TORCH_CHECK(weights.size() == kWnNumWeights, "wavenet_generate: expected ", int(kWnNumWeights),
              " packed weight tensors (embed, gate_w, gate_b, res_w, res_b, skip_w, skip_b, head1_w, head1_b, "
              "head2_w, head2_b), got ", weights.size());
  const int64_t L = dilations.size();
  TORCH_CHECK(L >= 1 && L <= max_layers, "wavenet_generate: need 1 to ", max_layers, " layers (dilations), got ", L);
  for (int64_t dil : dilations) TORCH_CHECK(dil >= 1, "wavenet_generate: dilations must be >= 1, got ", dil);
  TORCH_CHECK(std::isfinite(temperature) && temperature >= 0,
              "wavenet_generate: temperature must be finite and >= 0, got ", temperature);
  TORCH_CHECK(uniforms.dim() == 2, "wavenet_generate: uniforms must be [B, n], got ", uniforms.sizes());
  const at::Tensor &embed = weights[kWnEmbed], &gate_w = weights[kWnGateW], &skip_w = weights[kWnSkipW];
  const at::Tensor &head1_w = weights[kWnHead1W], &head2_w = weights[kWnHead2W];
  TORCH_CHECK(embed.dim() == 2 && gate_w.dim() == 3 && skip_w.dim() == 3 && head1_w.dim() == 2 && head2_w.dim() == 2,
              "wavenet_generate: embed [C, Rp], gate_w [L, k*R, 2*Rp], skip_w [L, R, Sp], head1_w [S, Hp] and "
              "head2_w [H, Cp] expected");
  WaveNetCall c{};
  c.B = uniforms.size(0);
  c.n = uniforms.size(1);
  c.C = embed.size(0);
  c.R = skip_w.size(1);
  c.S = head1_w.size(0);
  c.H = head2_w.size(0);
  c.L = L;
  c.k = c.R > 0 ? gate_w.size(1) / c.R : 0;
  TORCH_CHECK(c.C >= 2 && c.R >= 1 && c.S >= 1 && c.H >= 1 && c.k >= 2, "wavenet_generate: inconsistent packed sizes");
  using wavenet::pad8;
  const int64_t Rp = pad8(c.R), Sp = pad8(c.S), Hp = pad8(c.H), Cp = pad8(c.C);
  c.weight_type = gate_w.scalar_type();
  TORCH_CHECK(c.weight_type == at::kFloat || c.weight_type == at::kBFloat16,
              "wavenet_generate: weight matrices must be float32 or bfloat16, got ", c.weight_type);
  // bfloat16 matrices interleave row pairs (csrc/cpu/wavenet_kernels.h), so every input width must be even.
  TORCH_CHECK(c.weight_type == at::kFloat || (c.R % 2 == 0 && c.S % 2 == 0 && c.H % 2 == 0),
              "wavenet_generate: bfloat16 weights need even residual, skip and head widths, got R=", c.R, " S=", c.S,
              " H=", c.H);
  const at::Device device = queues.device();
  const std::vector<int64_t> shapes[kWnNumWeights] = {
      {c.C, Rp}, {L, c.k * c.R, 2 * Rp}, {L, 2 * Rp}, {L - 1, c.R, Rp}, {L - 1, Rp}, {L, c.R, Sp}, {Sp},
      {c.S, Hp}, {Hp}, {c.H, Cp}, {Cp}};
  for (int i = 0; i < kWnNumWeights; ++i) {
    const bool matrix = i == kWnGateW || i == kWnResW || i == kWnSkipW || i == kWnHead1W || i == kWnHead2W;
    check_wavenet_tensor(weights[i], names[i], shapes[i], matrix ? c.weight_type : at::kFloat, device);
  }
  c.Q = 0;
  for (int64_t dil : dilations) c.Q += (c.k - 1) * dil;
  check_wavenet_tensor(queues, "queues", {c.B, c.Q, Rp}, at::kFloat, device);
  check_wavenet_tensor(positions, "positions", {c.B}, at::kLong, device);
  check_wavenet_tensor(last_tokens, "last_tokens", {c.B}, at::kLong, device);
  check_wavenet_tensor(lengths, "lengths", {c.B}, at::kLong, device);
  check_wavenet_tensor(uniforms, "uniforms", {c.B, c.n}, at::kFloat, device);
  if (c.B > 0) {
    TORCH_CHECK(lengths.min().item<int64_t>() >= 0 && lengths.max().item<int64_t>() <= c.n,
                "wavenet_generate: lengths must be in [0, n=", c.n, "]");
    TORCH_CHECK(last_tokens.min().item<int64_t>() >= 0 && last_tokens.max().item<int64_t>() < c.C,
                "wavenet_generate: last_tokens must be in [0, ", c.C, ")");
    TORCH_CHECK(positions.min().item<int64_t>() >= 0, "wavenet_generate: positions must be >= 0");
  }
  c.cond = nullptr;
  c.cond_row_stride = c.cond_step_stride = 0;
  if (cond.has_value()) {
    const at::Tensor& t = *cond;
    TORCH_CHECK(t.dim() == 3 && (t.size(1) == 1 || t.size(1) == c.n),
                "wavenet_generate: cond must be [B, n or 1, L * 2 * Rp], got ", t.sizes());
    check_wavenet_tensor(t, "cond", {c.B, t.size(1), L * 2 * Rp}, at::kFloat, device);
    c.cond = t.const_data_ptr<float>();
    c.cond_row_stride = t.size(1) * L * 2 * Rp;
    c.cond_step_stride = t.size(1) == 1 ? 0 : L * 2 * Rp;
  }
  return c;
}

}  // namespace fastgen
