// Torch binding of the CUDA PixelRNN recurrences (pixel_lstm.cu): argument checks, the packed
// state-to-state weights, output allocation, launches on torch's current stream. Built only when torch
// has CUDA (the kernels themselves are torch-free). Outputs and saved state have the CPU binding's
// layouts (csrc/cpu/pixel_lstm.cpp): h and grad_pre are [B, C, H, W] views of channels-last memory,
// act [B, H, W, 5h] and c [B, H, W, h]. The checks shared with the CPU binding (the same messages, so
// a bad call fails alike on either device): fastgen/pixel_lstm_checks.h; device, launch:
// fastgen/cuda_checks.h.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <limits>
#include <optional>
#include <tuple>
#include <type_traits>

#include "fastgen/checks.h"
#include "fastgen/cuda_checks.h"
#include "fastgen/cuda_tensor_ptr.h"
#include "fastgen/pixel_lstm_checks.h"
#include "pixel_lstm.cuh"

namespace fastgen {
namespace cuda {
namespace {

ImageStrides strides_of(const at::Tensor& t) { return {t.stride(0), t.stride(1), t.stride(2), t.stride(3)}; }

// The checks of every op: t (pre, or a backward's h) against w_ss, both CUDA tensors of one floating
// dtype on one device, one image's largest tensor (act, 5h per pixel) int-indexable.
PixelLstmShape check_args(const char* op, const at::Tensor& t, const char* name, int64_t gates, const at::Tensor& w_ss,
                          int64_t taps, bool reverse) {
  pixel_lstm::check_ranks(op, t, name, gates, w_ss);
  check_cuda_tensor(op, t, name);
  check_cuda_tensor(op, w_ss, "w_ss");
  const auto dtype = t.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf || dtype == at::kBFloat16, op, ": ",
              name, " must be float32, float64, float16 or bfloat16 on CUDA, got ", dtype);
  pixel_lstm::check_same_dtype(op, t, name, w_ss);
  TORCH_CHECK(w_ss.device() == t.device(), op, ": w_ss is on ", w_ss.device(), " but ", name, " is on ", t.device());
  const int64_t n = pixel_lstm::check_sizes(op, t, name, gates, w_ss, taps);
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  TORCH_CHECK(t.size(2) * t.size(3) * 5 * n <= kIntMax && 4 * n * n * w_ss.size(2) <= kIntMax, op,
              ": one image's H x W x 5h and the weight's 4h x h x k must fit a 32-bit int for the CUDA kernel, got ",
              name, " ", t.sizes(), ", w_ss ", w_ss.sizes());
  return PixelLstmShape{t.size(0), static_cast<int>(t.size(2)), static_cast<int>(t.size(3)), static_cast<int>(n),
                        static_cast<int>(w_ss.size(2)), reverse};
}

using Forward = std::tuple<at::Tensor, at::Tensor, at::Tensor>;

// Runs launch(T-typed pointers..., shape, stream) into fresh h, act, c.
template <typename Launch>
Forward forward(const char* op, const PixelLstmShape& s, const at::Tensor& pre, const at::Tensor& w_ss,
                Launch launch) {
  const c10::cuda::CUDAGuard guard(pre.device());
  const auto w_fwd = w_ss.permute({2, 1, 0}).contiguous();  // [k, h, 4h]
  const int64_t n = s.hidden;
  auto h = at::empty({s.B, s.H, s.W, n}, pre.options());
  auto c = at::empty({s.B, s.H, s.W, n}, pre.options());
  auto act = at::empty({s.B, s.H, s.W, 5 * n}, pre.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, pre.scalar_type(), "pixel_lstm", [&] {
    check_launch(op, launch(in_ptr<scalar_t>(pre), in_ptr<scalar_t>(w_fwd), out_ptr<scalar_t>(h),
                            out_ptr<scalar_t>(c), out_ptr<scalar_t>(act), c10::cuda::getCurrentCUDAStream().stream()));
  });
  return {h.permute({0, 3, 1, 2}), act, c};
}

Forward row_forward(const at::Tensor& pre, const at::Tensor& w_ss, const std::optional<at::Tensor>& bias_in) {
  const char* op = "row_lstm";
  const PixelLstmShape s = check_args(op, pre, "pre", 4, w_ss, 0, false);
  at::Tensor bias;  // stays undefined without a bias: the kernel then gets nullptr
  if (bias_in.has_value() && bias_in->defined()) {
    bias = bias_in->contiguous();
    pixel_lstm::check_bias(op, bias, s.hidden, pre, c10::str(pre.device()));
  }
  const ImageStrides ps = strides_of(pre);
  return forward(op, s, pre, w_ss, [&](auto p, auto w, auto h, auto c, auto act, cudaStream_t stream) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(p)>>;
    const T* b = bias.defined() ? reinterpret_cast<const T*>(bias.const_data_ptr()) : nullptr;
    return row_lstm_forward(p, ps, w, b, h, c, act, s, stream);
  });
}

Forward diagonal_forward(const at::Tensor& pre, const at::Tensor& w_ss, bool reverse) {
  const char* op = "diagonal_lstm";
  const PixelLstmShape s = check_args(op, pre, "pre", 4, w_ss, 2, reverse);
  const ImageStrides ps = strides_of(pre);
  return forward(op, s, pre, w_ss, [&](auto p, auto w, auto h, auto c, auto act, cudaStream_t stream) {
    return diagonal_lstm_forward(p, ps, w, h, c, act, s, stream);
  });
}

std::tuple<at::Tensor, at::Tensor> backward(const char* op, const at::Tensor& grad_h, const at::Tensor& h_in,
                                            const at::Tensor& act_in, const at::Tensor& c_in, const at::Tensor& w_ss,
                                            bool diagonal, bool reverse) {
  const PixelLstmShape s = check_args(op, h_in, "h", 1, w_ss, diagonal ? 2 : 0, reverse);
  const int64_t n = s.hidden;
  check_same_shape(op, grad_h, "grad_h", {s.B, n, s.H, s.W}, h_in);
  check_same_shape(op, act_in, "act", {s.B, s.H, s.W, 5 * n}, h_in);
  check_same_shape(op, c_in, "c", {s.B, s.H, s.W, n}, h_in);
  const c10::cuda::CUDAGuard guard(h_in.device());
  const auto h = h_in.permute({0, 2, 3, 1}).contiguous();  // no copy when h is the forward's output
  const auto act = act_in.contiguous(), c = c_in.contiguous();
  const auto w_bwd = w_ss.permute({2, 0, 1}).contiguous();  // [k, 4h, h]
  const size_t acc_bytes = h.scalar_type() == at::kDouble ? sizeof(double) : sizeof(float);
  auto workspace = at::empty({static_cast<int64_t>(pixel_lstm_workspace_bytes(s, diagonal, acc_bytes))},
                             h.options().dtype(at::kByte));  // a fresh allocation: aligned for any type
  auto grad_pre = at::empty({s.B, s.H, s.W, 4 * n}, h.options());
  auto grad_w = at::empty({4 * n, n, s.k}, h.options());
  const ImageStrides gs = strides_of(grad_h);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, h.scalar_type(), "pixel_lstm_backward", [&] {
    const auto launch = diagonal ? &diagonal_lstm_backward<typename CudaScalar<scalar_t>::type>
                                 : &row_lstm_backward<typename CudaScalar<scalar_t>::type>;
    check_launch(op, launch(in_ptr<scalar_t>(grad_h), gs, in_ptr<scalar_t>(h), in_ptr<scalar_t>(c),
                            in_ptr<scalar_t>(act), in_ptr<scalar_t>(w_bwd), out_ptr<scalar_t>(grad_pre),
                            out_ptr<scalar_t>(grad_w), workspace.mutable_data_ptr(), s,
                            c10::cuda::getCurrentCUDAStream().stream()));
  });
  return {grad_pre.permute({0, 3, 1, 2}), grad_w};
}

std::tuple<at::Tensor, at::Tensor> row_backward(const at::Tensor& grad_h, const at::Tensor& h, const at::Tensor& act,
                                                const at::Tensor& c, const at::Tensor& w) {
  return backward("row_lstm_backward", grad_h, h, act, c, w, false, false);
}

std::tuple<at::Tensor, at::Tensor> diagonal_backward(const at::Tensor& grad_h, const at::Tensor& h,
                                                     const at::Tensor& act, const at::Tensor& c, const at::Tensor& w,
                                                     bool reverse) {
  return backward("diagonal_lstm_backward", grad_h, h, act, c, w, true, reverse);
}

}  // namespace
}  // namespace cuda
}  // namespace fastgen

TORCH_LIBRARY_IMPL(fastgen, CUDA, m) {
  m.impl("row_lstm", &fastgen::cuda::row_forward);
  m.impl("row_lstm_backward", &fastgen::cuda::row_backward);
  m.impl("diagonal_lstm", &fastgen::cuda::diagonal_forward);
  m.impl("diagonal_lstm_backward", &fastgen::cuda::diagonal_backward);
}
