// Argument checks shared by the cached samplers' torch bindings (pixelcnn_sampler.cpp,
// pixelrnn_sampler.cpp): the tensors that every sampler call carries -- levels, position, the chunk of
// pixels, caller-supplied uniforms or teacher-forced levels -- checked with messages naming the op.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <string>

namespace fastgen {

// A float32 weight, cache or input of exactly `shape`, contiguous on the CPU.
inline void check_sampler_float(const char* op, const at::Tensor& t, const std::string& name, at::IntArrayRef shape) {
  TORCH_CHECK(t.device().is_cpu(), op, ": the CPU kernel needs CPU tensors, got ", name, " on ", t.device());
  TORCH_CHECK(t.scalar_type() == at::kFloat, op, ": ", name, " must be float32, got ", t.scalar_type());
  TORCH_CHECK(t.sizes() == shape, op, ": ", name, " must have shape ", shape, ", got ", t.sizes());
  TORCH_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous");
}

// The chunk a call samples: levels [n, C, H, W] (int64, contiguous), position (one int64) and the
// pixels start .. start + pixels inside the image.
struct SamplerChunk {
  int64_t n, start;
};
inline SamplerChunk check_sampler_chunk(const char* op, const at::Tensor& levels, const at::Tensor& position,
                                        int64_t pixels, int64_t C, int64_t H, int64_t W) {
  TORCH_CHECK(levels.device().is_cpu(), op, ": the CPU kernel needs CPU tensors, got levels on ", levels.device());
  TORCH_CHECK(levels.scalar_type() == at::kLong && levels.dim() == 4 && levels.size(1) == C && levels.size(2) == H &&
                  levels.size(3) == W && levels.is_contiguous(),
              op, ": levels must be a contiguous int64 [n, ", C, ", ", H, ", ", W, "] tensor, got ",
              levels.scalar_type(), " ", levels.sizes());
  TORCH_CHECK(position.device().is_cpu() && position.scalar_type() == at::kLong && position.numel() == 1, op,
              ": position must be a CPU int64 tensor of one element, got ", position.scalar_type(), " ",
              position.sizes());
  const int64_t start = position.item<int64_t>();
  TORCH_CHECK(pixels >= 0 && start >= 0 && start + pixels <= H * W, op, ": pixels ", start, " .. ", start + pixels,
              " do not lie in the image's ", H * W);
  return {levels.size(0), start};
}

// Sampling (uniforms [n, C, pixels] given, *u set to them): an empty logits tensor [n, 0, C, K].
// Teacher forcing (no uniforms, *u null): the chunk's given levels must lie in [0, num_levels); the
// logits [n, pixels, C, K] the kernel fills.
inline at::Tensor sampler_logits(const char* op, const at::Tensor& levels, const std::optional<at::Tensor>& uniforms,
                                 const SamplerChunk& chunk, int64_t pixels, int64_t C, int64_t K, int64_t num_levels,
                                 const float** u) {
  if (uniforms.has_value()) {
    check_sampler_float(op, *uniforms, "uniforms", {chunk.n, C, pixels});
    *u = uniforms->const_data_ptr<float>();
    return at::empty({chunk.n, 0, C, K}, uniforms->options());
  }
  *u = nullptr;
  if (chunk.n > 0 && pixels > 0) {
    const at::Tensor seen = levels.flatten(2).narrow(2, chunk.start, pixels);
    TORCH_CHECK(seen.min().item<int64_t>() >= 0 && seen.max().item<int64_t>() < num_levels, op,
                ": teacher-forced levels must lie in [0, ", num_levels, ")");
  }
  return at::empty({chunk.n, pixels, C, K}, levels.options().dtype(at::kFloat));
}

}  // namespace fastgen
