// Torch binding of the CPU attention kernels: argument checks, output allocation, threading over the
// batch, and the run-time choice between the generic and AVX2 builds.
#include <ATen/Parallel.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <vector>

#include "attention_kernels.h"
#include "fastgen/checks.h"
#include "fastgen/isa_dispatch.h"

namespace fastgen {
namespace cpu {
namespace {

template <typename T>
const AttentionKernels<T>& kernels() {
  return isa_table<&avx2::attention_kernels<T>, &generic::attention_kernels<T>>();
}

ImageStrides image_strides(const at::Tensor& t) {
  return {t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
}

// Runs fn(b0, b1, scratch) over the batch in parallel chunks, each with its own scratch buffer.
// A chunk holds enough examples for ~32k multiply-adds, so tiny batches are not split across threads.
template <typename T, typename Fn>
void for_each_example_chunk(int64_t B, const AttentionDims& d, const Fn& fn) {
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, d.C * d.N * d.H * d.W));
  at::parallel_for(0, B, grain, [&](int64_t b0, int64_t b1) {
    std::vector<T> scratch(attention_scratch_elems(d));
    fn(b0, b1, scratch.data());
  });
}

at::Tensor read_forward(const at::Tensor& x_in, const at::Tensor& params_in, int64_t N) {
  check_attention_args("attention_read", x_in, "x", params_in, N);
  const auto& x = x_in;  // read through its strides
  const auto params = params_in.contiguous();
  const AttentionDims d{x.size(1), x.size(2), x.size(3), N};
  auto out = at::empty({x.size(0), d.C, N, N}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "attention_read", [&] {
    using T = scalar_t;
    for_each_example_chunk<T>(x.size(0), d, [&](int64_t b0, int64_t b1, T* scratch) {
      kernels<T>().read_forward(d, x.const_data_ptr<T>(), image_strides(x), params.const_data_ptr<T>(),
                                out.mutable_data_ptr<T>(), b0, b1, scratch);
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> read_backward(const at::Tensor& grad_in, const at::Tensor& x_in,
                                                 const at::Tensor& params_in, int64_t N) {
  check_attention_args("attention_read_backward", x_in, "x", params_in, N);
  check_same_shape("attention_read_backward", grad_in, "grad_out", {x_in.size(0), x_in.size(1), N, N}, x_in);
  const auto& x = x_in;  // read through its strides
  const auto params = params_in.contiguous();
  const auto grad = grad_in.contiguous();
  const AttentionDims d{x.size(1), x.size(2), x.size(3), N};
  auto grad_x = at::empty(x.sizes(), x.options());
  auto grad_params = at::empty_like(params);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "attention_read_backward", [&] {
    using T = scalar_t;
    for_each_example_chunk<T>(x.size(0), d, [&](int64_t b0, int64_t b1, T* scratch) {
      kernels<T>().read_backward(d, grad.const_data_ptr<T>(), x.const_data_ptr<T>(), image_strides(x),
                                 params.const_data_ptr<T>(), grad_x.mutable_data_ptr<T>(),
                                 grad_params.mutable_data_ptr<T>(), b0, b1, scratch);
    });
  });
  return {grad_x, grad_params};
}

at::Tensor write_forward(const at::Tensor& w_in, const at::Tensor& params_in, int64_t H, int64_t W,
                         const std::optional<at::Tensor>& canvas) {
  check_write_args("attention_write", w_in, params_in, H, W);
  const auto w = w_in.contiguous();
  const auto params = params_in.contiguous();
  const AttentionDims d{w.size(1), H, W, w.size(3)};
  at::Tensor out;
  if (canvas.has_value()) {
    check_same_shape("attention_write", *canvas, "canvas", {w.size(0), d.C, H, W}, w);
    out = canvas->clone(at::MemoryFormat::Contiguous);
  } else {
    out = at::empty({w.size(0), d.C, H, W}, w.options());
  }
  AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "attention_write", [&] {
    using T = scalar_t;
    for_each_example_chunk<T>(w.size(0), d, [&](int64_t b0, int64_t b1, T* scratch) {
      kernels<T>().write_forward(d, w.const_data_ptr<T>(), params.const_data_ptr<T>(), out.mutable_data_ptr<T>(),
                                 canvas.has_value(), b0, b1, scratch);
    });
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> write_backward(const at::Tensor& grad_in, const at::Tensor& w_in,
                                                  const at::Tensor& params_in, int64_t H, int64_t W) {
  check_write_args("attention_write_backward", w_in, params_in, H, W);
  check_same_shape("attention_write_backward", grad_in, "grad_out", {w_in.size(0), w_in.size(1), H, W}, w_in);
  const auto w = w_in.contiguous();
  const auto params = params_in.contiguous();
  const auto& grad = grad_in;  // read through its strides
  const AttentionDims d{w.size(1), H, W, w.size(3)};
  auto grad_w = at::empty_like(w);
  auto grad_params = at::empty_like(params);
  AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "attention_write_backward", [&] {
    using T = scalar_t;
    for_each_example_chunk<T>(w.size(0), d, [&](int64_t b0, int64_t b1, T* scratch) {
      kernels<T>().write_backward(d, grad.const_data_ptr<T>(), image_strides(grad), w.const_data_ptr<T>(),
                                  params.const_data_ptr<T>(), grad_w.mutable_data_ptr<T>(),
                                  grad_params.mutable_data_ptr<T>(), b0, b1, scratch);
    });
  });
  return {grad_w, grad_params};
}

}  // namespace
}  // namespace cpu
}  // namespace fastgen

TORCH_LIBRARY_IMPL(fastgen, CPU, m) {
  m.impl("attention_read", &fastgen::cpu::read_forward);
  m.impl("attention_read_backward", &fastgen::cpu::read_backward);
  m.impl("attention_write", &fastgen::cpu::write_forward);
  m.impl("attention_write_backward", &fastgen::cpu::write_backward);
}
