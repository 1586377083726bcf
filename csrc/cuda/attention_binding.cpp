// Torch binding of the CUDA attention kernels (attention.cu): argument checks, contiguous inputs, output
// allocation, and a launch on torch's current stream. Built only when torch has CUDA (setup.py with a
// CUDA torch, or CMake when the torch_cuda target exists); the kernels themselves are torch-free.
//
// The checks shared with the CPU binding come from fastgen/checks.h, so a bad call fails with the same
// message on either device, and those shared by the CUDA bindings (device, shared memory, launch) from
// fastgen/cuda_checks.h; this file adds only the attention kernels' own limits (int-sized dimensions).
// Only c10's CUDA headers (no ATen/cuda/CUDAContext.h): nothing here needs cuBLAS & co.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <tuple>

#include "attention.cuh"
#include "fastgen/checks.h"
#include "fastgen/cuda_checks.h"
#include "fastgen/cuda_tensor_ptr.h"

namespace fastgen {
namespace cuda {
namespace {

// CUDA-only conditions, checked after the shared ones. Returns the kernels' shape struct.
AttentionShape cuda_shape(const char* op, const at::Tensor& t, const char* name, int64_t H, int64_t W, int64_t N,
                          AttentionKernel kernel) {
  check_cuda_tensor(op, t, name);
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  TORCH_CHECK(H <= kIntMax && W <= kIntMax && N <= kIntMax, op, ": sizes must fit a 32-bit int for the CUDA kernel, got H=",
              H, " W=", W, " N=", N);
  const AttentionShape s{t.size(0), t.size(1), static_cast<int>(H), static_cast<int>(W), static_cast<int>(N)};
  // Filterbanks and per-channel products live in shared memory: N (H + W) and a few N x W buffers.
  const size_t acc_bytes = t.scalar_type() == at::kDouble ? sizeof(double) : sizeof(float);
  check_shared_memory(op, attention_shared_bytes(kernel, s, acc_bytes), t.get_device(),
                      c10::str("N=", N, ", H=", H, ", W=", W, " in ", t.scalar_type()),
                      "use a smaller N or image, or another backend (fastgen.set_backend('triton'))");
  return s;
}

at::Tensor read_forward(const at::Tensor& x_in, const at::Tensor& params_in, int64_t N) {
  const char* op = "attention_read";
  check_attention_args(op, x_in, "x", params_in, N);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const AttentionShape s = cuda_shape(op, x_in, "x", x_in.size(2), x_in.size(3), N, AttentionKernel::kReadForward);
  const auto x = x_in.contiguous();
  const auto params = params_in.contiguous();
  auto out = at::empty({s.B, s.C, N, N}, x.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "attention_read", [&] {
    check_launch(op, attention_read_forward(in_ptr<scalar_t>(x), in_ptr<scalar_t>(params), out_ptr<scalar_t>(out),
                                            s, c10::cuda::getCurrentCUDAStream().stream()));
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> read_backward(const at::Tensor& grad_in, const at::Tensor& x_in,
                                                 const at::Tensor& params_in, int64_t N) {
  const char* op = "attention_read_backward";
  check_attention_args(op, x_in, "x", params_in, N);
  check_same_shape(op, grad_in, "grad_out", {x_in.size(0), x_in.size(1), N, N}, x_in);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const AttentionShape s = cuda_shape(op, x_in, "x", x_in.size(2), x_in.size(3), N, AttentionKernel::kBackward);
  const auto x = x_in.contiguous();
  const auto params = params_in.contiguous();
  const auto grad = grad_in.contiguous();
  auto grad_x = at::empty_like(x);
  auto grad_params = at::empty_like(params);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "attention_read_backward", [&] {
    check_launch(op, attention_read_backward(in_ptr<scalar_t>(grad), in_ptr<scalar_t>(x), in_ptr<scalar_t>(params),
                                             out_ptr<scalar_t>(grad_x), out_ptr<scalar_t>(grad_params), s,
                                             c10::cuda::getCurrentCUDAStream().stream()));
  });
  return {grad_x, grad_params};
}

at::Tensor write_forward(const at::Tensor& w_in, const at::Tensor& params_in, int64_t H, int64_t W,
                         const std::optional<at::Tensor>& canvas_in) {
  const char* op = "attention_write";
  check_write_args(op, w_in, params_in, H, W);
  const c10::cuda::CUDAGuard guard(w_in.device());
  const AttentionShape s = cuda_shape(op, w_in, "w", H, W, w_in.size(3), AttentionKernel::kWriteForward);
  const auto w = w_in.contiguous();
  const auto params = params_in.contiguous();
  at::Tensor canvas;  // stays undefined without a canvas: the kernel then gets nullptr
  if (canvas_in.has_value() && canvas_in->defined()) {
    check_same_shape(op, *canvas_in, "canvas", {s.B, s.C, H, W}, w_in);
    canvas = canvas_in->contiguous();
  }
  auto out = at::empty({s.B, s.C, H, W}, w.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, w.scalar_type(), "attention_write", [&] {
    check_launch(op, attention_write_forward(in_ptr<scalar_t>(w), in_ptr<scalar_t>(params),
                                             canvas.defined() ? in_ptr<scalar_t>(canvas) : nullptr,
                                             out_ptr<scalar_t>(out), s, c10::cuda::getCurrentCUDAStream().stream()));
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> write_backward(const at::Tensor& grad_in, const at::Tensor& w_in,
                                                  const at::Tensor& params_in, int64_t H, int64_t W) {
  const char* op = "attention_write_backward";
  check_write_args(op, w_in, params_in, H, W);
  check_same_shape(op, grad_in, "grad_out", {w_in.size(0), w_in.size(1), H, W}, w_in);
  const c10::cuda::CUDAGuard guard(w_in.device());
  const AttentionShape s = cuda_shape(op, w_in, "w", H, W, w_in.size(3), AttentionKernel::kBackward);
  const auto w = w_in.contiguous();
  const auto params = params_in.contiguous();
  const auto grad = grad_in.contiguous();
  auto grad_w = at::empty_like(w);
  auto grad_params = at::empty_like(params);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, w.scalar_type(), "attention_write_backward", [&] {
    check_launch(op, attention_write_backward(in_ptr<scalar_t>(grad), in_ptr<scalar_t>(w), in_ptr<scalar_t>(params),
                                              out_ptr<scalar_t>(grad_w), out_ptr<scalar_t>(grad_params), s,
                                              c10::cuda::getCurrentCUDAStream().stream()));
  });
  return {grad_w, grad_params};
}

}  // namespace
}  // namespace cuda
}  // namespace fastgen

TORCH_LIBRARY_IMPL(fastgen, CUDA, m) {
  m.impl("attention_read", &fastgen::cuda::read_forward);
  m.impl("attention_read_backward", &fastgen::cuda::read_backward);
  m.impl("attention_write", &fastgen::cuda::write_forward);
  m.impl("attention_write_backward", &fastgen::cuda::write_backward);
}
