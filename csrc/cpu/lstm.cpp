// Torch binding of the CPU LSTM-cell pointwise kernels (lstm_kernels.h): checks, outputs, threading
// over rows, and the run-time choice between the generic and AVX2 builds.
#include <ATen/Dispatch.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "fastgen/checks.h"
#include "fastgen/cpu_features.h"
#include "lstm_kernels.h"

namespace fastgen {
namespace cpu {
namespace {

template <typename T>
const LstmKernels<T>& kernels() {
  static const LstmKernels<T> table = cpu_has_avx2_fma() ? avx2::lstm_kernels<T>() : generic::lstm_kernels<T>();
  return table;
}

// gates [B, 4D] and c [B, D], floating, same dtype and device; returns D.
int64_t check_lstm_args(const char* op, const at::Tensor& gates, const at::Tensor& c) {
  TORCH_CHECK(c.dim() == 2, op, ": c must be [B, D], got ", c.sizes());
  TORCH_CHECK(c.scalar_type() == at::kFloat || c.scalar_type() == at::kDouble, op,
              ": c must be float32 or float64 on the CPU, got ", c.scalar_type());
  check_same_shape(op, gates, "gates", {c.size(0), 4 * c.size(1)}, c);
  return c.size(1);
}

// Rows per task: ~16k elements, so DRAW's 64 x 256 cells are not split across threads.
int64_t grain(int64_t D) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, D)); }

std::tuple<at::Tensor, at::Tensor, at::Tensor> lstm_cell_pointwise(const at::Tensor& gates_in, const at::Tensor& c_in) {
  const int64_t D = check_lstm_args("lstm_cell_pointwise", gates_in, c_in);
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
  TORCH_CHECK(c_in.dim() == 2, op, ": c must be [B, D], got ", c_in.sizes());
  TORCH_CHECK(c_in.scalar_type() == at::kFloat || c_in.scalar_type() == at::kDouble, op,
              ": c must be float32 or float64 on the CPU, got ", c_in.scalar_type());
  const int64_t B = c_in.size(0), D = c_in.size(1);
  check_same_shape(op, act_in, "act", {B, 5 * D}, c_in);
  at::Tensor grad_h, grad_c;
  if (grad_h_in.has_value() && grad_h_in->defined()) {
    check_same_shape(op, *grad_h_in, "grad_h", {B, D}, c_in);
    grad_h = grad_h_in->contiguous();
  }
  if (grad_c_in.has_value() && grad_c_in->defined()) {
    check_same_shape(op, *grad_c_in, "grad_c", {B, D}, c_in);
    grad_c = grad_c_in->contiguous();
  }
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
