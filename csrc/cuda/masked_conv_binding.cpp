// Torch binding of the CUDA masked-convolution kernels (masked_conv.cu): argument checks, contiguous
// inputs, output allocation, launches on torch's current stream. Built only when torch has CUDA (the
// kernels themselves are torch-free). Device, shared-memory and launch checks: fastgen/cuda_checks.h;
// the mask rule: fastgen/masked_conv_math.h; the checks shared with the CPU binding (the same
// messages, so a bad call fails alike on either device): fastgen/masked_conv_checks.h.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <array>
#include <limits>
#include <optional>
#include <string>
#include <tuple>

#include "fastgen/cuda_checks.h"
#include "fastgen/cuda_tensor_ptr.h"
#include "fastgen/masked_conv_checks.h"
#include "fastgen/masked_conv_math.h"
#include "masked_conv.cuh"

namespace fastgen {
namespace cuda {
namespace {

namespace mc = fastgen::masked_conv;

// `t` must be a CUDA tensor of x's dtype on x's device with exactly `shape`.
void check_like_x(const char* op, const at::Tensor& t, const char* name, at::IntArrayRef shape, const at::Tensor& x) {
  check_cuda_tensor(op, t, name);
  TORCH_CHECK(t.sizes() == shape, op, ": ", name, " must be ", shape, ", got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == x.scalar_type() && t.device() == x.device(), op, ": ", name, " must be a ",
              x.scalar_type(), " tensor on ", x.device(), ", got ", t.scalar_type(), " on ", t.device());
}

MaskedConvShape shape_of(const char* op, const at::Tensor& x, const at::Tensor& weight, c10::string_view mask_view,
                         int64_t groups) {
  const int mask = mc::check_mask_and_dims(op, mask_view, groups, x, weight);
  check_cuda_tensor(op, x, "x");
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), op, ": x must be a floating tensor, got ", x.scalar_type());
  check_like_x(op, weight, "weight", weight.sizes(), x);
  mc::check_conv_sizes(op, x, weight, groups);
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  TORCH_CHECK(x.size(1) * x.size(2) * x.size(3) <= kIntMax && weight.size(0) * x.size(2) * x.size(3) <= kIntMax &&
                  weight.size(0) * weight.size(1) <= kIntMax,
              op, ": one image's channels x pixels and Cout x Cin must fit a 32-bit int for the CUDA kernel, got x ",
              x.sizes(), ", weight ", weight.sizes());
  const MaskedConvShape s{x.size(0),
                          static_cast<int>(x.size(1)),
                          static_cast<int>(weight.size(0)),
                          static_cast<int>(x.size(2)),
                          static_cast<int>(x.size(3)),
                          static_cast<int>(weight.size(2)),
                          static_cast<int>(weight.size(3)),
                          mask,
                          static_cast<int>(groups)};
  return s;
}

void check_rows_smem(const char* op, const MaskedConvShape& s, bool grad_input, const at::Tensor& x) {
  const size_t acc_bytes = x.scalar_type() == at::kDouble ? sizeof(double) : sizeof(float);
  check_shared_memory(op, masked_conv_shared_bytes(s, grad_input, acc_bytes), x.get_device(),
                      c10::str("a ", s.kh, " x ", s.kw, " kernel in ", x.scalar_type()),
                      "use a smaller kernel, or another backend (fastgen.set_backend('triton'))");
}

at::Tensor forward(const at::Tensor& x_in, const at::Tensor& weight_in, const std::optional<at::Tensor>& bias_in,
                   c10::string_view mask, int64_t color_groups) {
  const char* op = "masked_conv2d";
  const MaskedConvShape s = shape_of(op, x_in, weight_in, mask, color_groups);
  const c10::cuda::CUDAGuard guard(x_in.device());
  check_rows_smem(op, s, false, x_in);
  at::Tensor bias;  // stays undefined without a bias: the kernel then gets nullptr
  if (bias_in.has_value() && bias_in->defined()) {
    check_like_x(op, *bias_in, "bias", {s.cout}, x_in);
    bias = bias_in->contiguous();
  }
  const auto x = x_in.contiguous();
  const auto weight = weight_in.contiguous();
  auto out = at::empty({s.B, s.cout, s.H, s.W}, x.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "masked_conv2d", [&] {
    check_launch(op, masked_conv2d_forward(in_ptr<scalar_t>(x), in_ptr<scalar_t>(weight),
                                           bias.defined() ? in_ptr<scalar_t>(bias) : nullptr, out_ptr<scalar_t>(out),
                                           s, c10::cuda::getCurrentCUDAStream().stream()));
  });
  return out;
}

using OptionalGrads = std::tuple<std::optional<at::Tensor>, std::optional<at::Tensor>, std::optional<at::Tensor>>;

OptionalGrads backward(const at::Tensor& grad_in, const at::Tensor& x_in, const at::Tensor& weight_in,
                       c10::string_view mask, int64_t color_groups, std::array<bool, 3> output_mask) {
  const char* op = "masked_conv2d_backward";
  const MaskedConvShape s = shape_of(op, x_in, weight_in, mask, color_groups);
  check_like_x(op, grad_in, "grad_out", {s.B, s.cout, s.H, s.W}, x_in);
  const c10::cuda::CUDAGuard guard(x_in.device());
  if (output_mask[0]) check_rows_smem(op, s, true, x_in);
  const auto grad = grad_in.contiguous();
  const auto x = x_in.contiguous();
  const auto weight = weight_in.contiguous();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  OptionalGrads grads;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "masked_conv2d_backward", [&] {
    if (output_mask[0]) {
      auto grad_x = at::empty_like(x);
      check_launch(op, masked_conv2d_grad_input(in_ptr<scalar_t>(grad), in_ptr<scalar_t>(weight),
                                                out_ptr<scalar_t>(grad_x), s, stream));
      std::get<0>(grads) = grad_x;
    }
    if (output_mask[1]) {
      auto grad_weight = at::zeros_like(weight);  // the kernel writes live entries only
      check_launch(op, masked_conv2d_grad_weight(in_ptr<scalar_t>(grad), in_ptr<scalar_t>(x),
                                                 out_ptr<scalar_t>(grad_weight), s, stream));
      std::get<1>(grads) = grad_weight;
    }
    if (output_mask[2]) {
      auto grad_bias = at::empty({s.cout}, x.options());
      check_launch(op, masked_conv2d_grad_bias(in_ptr<scalar_t>(grad), out_ptr<scalar_t>(grad_bias), s, stream));
      std::get<2>(grads) = grad_bias;
    }
  });
  return grads;
}

}  // namespace
}  // namespace cuda
}  // namespace fastgen

TORCH_LIBRARY_IMPL(fastgen, CUDA, m) {
  m.impl("masked_conv2d", &fastgen::cuda::forward);
  m.impl("masked_conv2d_backward", &fastgen::cuda::backward);
}
