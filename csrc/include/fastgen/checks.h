// Argument checks shared by the CPU and CUDA torch bindings. Every message names the op and the
// argument, so a bad call through torch.ops.fastgen.* is as clear as one through the Python API.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "fastgen/attention_math.h"

namespace fastgen {

// t: [B, C, H, W] image or [B, C, N, N] patch; params: [B, 5] of t's dtype and device.
inline void check_attention_args(const char* op, const at::Tensor& t, const char* name, const at::Tensor& params,
                                 int64_t N) {
  TORCH_CHECK(t.dim() == 4, op, ": ", name, " must be 4-D [B, C, H, W], got ", t.dim(), "-D ", t.sizes());
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), op, ": ", name, " must be a floating tensor, got ",
              t.scalar_type());
  TORCH_CHECK(params.dim() == 2 && params.size(1) == attention::kNumParams, op,
              ": params must be [B, 5] (g~X, g~Y, log sigma^2, log delta~, log gamma), got ", params.sizes());
  TORCH_CHECK(params.size(0) == t.size(0), op, ": params has batch ", params.size(0), " but ", name, " has batch ",
              t.size(0));
  TORCH_CHECK(params.scalar_type() == t.scalar_type(), op, ": params dtype ", params.scalar_type(),
              " differs from ", name, " dtype ", t.scalar_type());
  TORCH_CHECK(params.device() == t.device(), op, ": params is on ", params.device(), " but ", name, " is on ",
              t.device());
  TORCH_CHECK(N >= 1, op, ": N must be >= 1, got ", N);
  TORCH_CHECK(t.size(1) >= 1 && t.size(2) >= 1 && t.size(3) >= 1, op, ": ", name,
              " must have at least one channel and pixel, got ", t.sizes());
}

// w: [B, C, N, N] patch written onto an H x W image.
inline void check_write_args(const char* op, const at::Tensor& w, const at::Tensor& params, int64_t H, int64_t W) {
  check_attention_args(op, w, "w", params, w.dim() == 4 ? w.size(3) : 1);
  TORCH_CHECK(w.size(2) == w.size(3), op, ": w must be a square patch [B, C, N, N], got ", w.sizes());
  TORCH_CHECK(H >= 1 && W >= 1, op, ": image size must be >= 1, got H=", H, " W=", W);
}

// t must have exactly the given shape and like's dtype and device.
inline void check_same_shape(const char* op, const at::Tensor& t, const char* name, std::vector<int64_t> shape,
                             const at::Tensor& like) {
  TORCH_CHECK(t.sizes() == at::IntArrayRef(shape), op, ": ", name, " must have shape ", at::IntArrayRef(shape),
              ", got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), op, ": ", name, " dtype ", t.scalar_type(), " differs from ",
              like.scalar_type());
  TORCH_CHECK(t.device() == like.device(), op, ": ", name, " is on ", t.device(), " but inputs are on ",
              like.device());
}

}  // namespace fastgen
