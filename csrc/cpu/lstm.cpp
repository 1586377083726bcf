// Torch binding of the CPU LSTM-cell pointwise kernels (lstm_kernels.h): checks, outputs, threading
// over rows, and the run-time choice between the generic and AVX2 builds.
#include <ATen/Dispatch.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "fastgen/checks.h"
#include "fastgen/isa_dispatch.h"
#include "lstm_kernels.h"

namespace fastgen {
namespace cpu {
namespace {

template <typename T>
const LstmKernels<T>& kernels() {
  return isa_table<&avx2::lstm_kernels<T>, &generic::lstm_kernels<T>>();
}

// c [B, D] (float32 or float64) and the per-row tensor `name` [B, width * D] of c's dtype and device
// (gates: width 4, the saved activations: width 5); returns D.
int64_t check_lstm_args(const char* op, const at::Tensor& rows, const char* name, int64_t width, const at::Tensor& c) {
  TORCH_CHECK(c.dim() == 2, op, ": c must be [B, D], got ", c.sizes());
  TORCH_CHECK(c.scalar_type() == at::kFloat || c.scalar_type() == at::kDouble, op,
              ": c must be float32 or float64 on the CPU, got ", c.scalar_type());
  check_same_shape(op, rows, name, {c.size(0), width * c.size(1)}, c);
  return c.size(1);
}

// An output gradient that autograd may leave out: contiguous and like c, or undefined.
at::Tensor optional_grad(const char* op, const std::optional<at::Tensor>& grad, const char* name, const at::Tensor& c) {
  if (!grad.has_value() || !grad->defined()) return at::Tensor();
  check_same_shape(op, *grad, name, {c.size(0), c.size(1)}, c);
  return grad->contiguous();
}

// Rows per task: ~16k elements, so DRAW's 64 x 256 cells are not split across threads.
int64_t grain(int64_t D) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, D)); }

std::tuple<at::Tensor, at::Tensor, at::Tensor> lstm_cell_pointwise(const at::Tensor& gates_in, const at::Tensor& c_in) {
  const int64_t D = check_lstm_args("lstm_cell_pointwise", gates_in, "gates", 4, c_in);
  const auto gates = gates_in.contiguous();
  const auto c = c_in.contiguous();
  auto h = at::empty_like(c);
  auto c_out = at::empty_like(c);
  auto act = at::empty({c.size(0), 5 * D}, c.options());
  AT_DISPATCH_FLOATING_TYPES(c.scalar_type(), "lstm_cell_pointwise", [&] {
    using T = scalar_t;
    at::parallel_for(0, c.size(0), grain(D), [&](int64_t b0, int64_t b1) {
      kernels<T>().forward(LstmDims{D}, gates.const_data_ptr<T>(), c.const_data_ptr<T>(), h.mutable_data_ptr<T>(),
                           c_out.mutable_data_ptr<T>(), act.mutable_data_ptr<T>(), b0, b1);
    });
  });
  return {h, c_out, act};
}

std::tuple<at::Tensor, at::Tensor> lstm_cell_pointwise_backward(const std::optional<at::Tensor>& grad_h_in,
                                                                const std::optional<at::Tensor>& grad_c_in,
                                                                const at::Tensor& act_in, const at::Tensor& c_in) {
  const char* op = "lstm_cell_pointwise_backward";
  const int64_t D = check_lstm_args(op, act_in, "act", 5, c_in), B = c_in.size(0);
  const at::Tensor grad_h = optional_grad(op, grad_h_in, "grad_h", c_in);
  const at::Tensor grad_c = optional_grad(op, grad_c_in, "grad_c", c_in);
  const auto act = act_in.contiguous();
  const auto c = c_in.contiguous();
  auto grad_gates = at::empty({B, 4 * D}, c.options());
  auto grad_c_prev = at::empty_like(c);
  AT_DISPATCH_FLOATING_TYPES(c.scalar_type(), "lstm_cell_pointwise_backward", [&] {
    using T = scalar_t;
    const T* gh = grad_h.defined() ? grad_h.const_data_ptr<T>() : nullptr;
    const T* gc = grad_c.defined() ? grad_c.const_data_ptr<T>() : nullptr;
    at::parallel_for(0, B, grain(D), [&](int64_t b0, int64_t b1) {
      kernels<T>().backward(LstmDims{D}, gh, gc, act.const_data_ptr<T>(), c.const_data_ptr<T>(),
                            grad_gates.mutable_data_ptr<T>(), grad_c_prev.mutable_data_ptr<T>(), b0, b1);
    });
  });
  return {grad_gates, grad_c_prev};
}

}  // namespace
}  // namespace cpu
}  // namespace fastgen

TORCH_LIBRARY_IMPL(fastgen, CPU, m) {
  m.impl("lstm_cell_pointwise", &fastgen::cpu::lstm_cell_pointwise);
  m.impl("lstm_cell_pointwise_backward", &fastgen::cpu::lstm_cell_pointwise_backward);
}
