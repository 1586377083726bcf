// Argument checks of masked_conv2d and masked_conv2d_backward shared by the CPU and CUDA torch
// bindings (csrc/cpu/masked_conv.cpp, csrc/cuda/masked_conv_binding.cpp), so a bad call fails with
// the same message on either device. Each binding checks its device and dtypes itself, between
// check_mask_and_dims and check_conv_sizes. Host only.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "fastgen/masked_conv_math.h"

namespace fastgen {
namespace masked_conv {

// The mask code of `mask` ('A', 'B', 'V'), with the colour groups it allows; x and weight 4-D.
inline int check_mask_and_dims(const char* op, c10::string_view mask_view, int64_t groups, const at::Tensor& x,
                               const at::Tensor& weight) {
  const std::string mask(mask_view.data(), mask_view.size());
  TORCH_CHECK(mask == "A" || mask == "B" || mask == "V", op, ": mask must be 'A', 'B' or 'V', got '", mask, "'");
  TORCH_CHECK(groups == 1 || groups == 3, op, ": color_groups must be 1 or 3, got ", groups);
  TORCH_CHECK(mask != "V" || groups == 1, op, ": mask 'V' takes no colour groups, got color_groups=", groups);
  TORCH_CHECK(x.dim() == 4, op, ": x must be 4-D [B, Cin, H, W], got ", x.sizes());
  TORCH_CHECK(weight.dim() == 4, op, ": weight must be 4-D [Cout, Cin, kh, kw], got ", weight.sizes());
  return mask == "A" ? kMaskA : mask == "B" ? kMaskB : kMaskV;
}

// Channels that agree (and split into the colour groups), an odd kernel, nothing empty.
inline void check_conv_sizes(const char* op, const at::Tensor& x, const at::Tensor& weight, int64_t groups) {
  TORCH_CHECK(weight.size(1) == x.size(1), op, ": x has ", x.size(1), " channels but weight expects Cin = ",
              weight.size(1));
  TORCH_CHECK(weight.size(2) % 2 == 1 && weight.size(3) % 2 == 1, op, ": the kernel size must be odd, got ",
              weight.size(2), " x ", weight.size(3));
  TORCH_CHECK(x.numel() > 0 && weight.numel() > 0, op, ": x and weight must be non-empty, got x ", x.sizes(),
              ", weight ", weight.sizes());
  TORCH_CHECK(groups == 1 || (x.size(1) % 3 == 0 && weight.size(0) % 3 == 0), op,
              ": with color_groups=3 the input and output channels must be divisible by 3, got Cin = ", x.size(1),
              ", Cout = ", weight.size(0));
}

}  // namespace masked_conv
}  // namespace fastgen
