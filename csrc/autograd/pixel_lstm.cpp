// Autograd for row_lstm and diagonal_lstm in C++ (the pattern and the reason: attention.cpp): the
// forward saves its output h and the state it stored (act, c), the backward op walks the steps in
// reverse from them. The bias of the Row LSTM is added to every gate pre-activation, so its
// gradient is the pre-activation gradient summed over images and pixels.
#include <torch/autograd.h>
#include <torch/library.h>

namespace fastgen {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using Triple = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
using Pair = std::tuple<at::Tensor, at::Tensor>;

const auto& row_op() {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgen::row_lstm", "")
                       .typed<Triple(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&)>();
  return op;
}
const auto& row_backward_op() {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgen::row_lstm_backward", "")
                       .typed<Pair(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                   const at::Tensor&)>();
  return op;
}
const auto& diagonal_op() {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgen::diagonal_lstm", "")
                       .typed<Triple(const at::Tensor&, const at::Tensor&, bool)>();
  return op;
}
const auto& diagonal_backward_op() {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgen::diagonal_lstm_backward", "")
                       .typed<Pair(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                   const at::Tensor&, bool)>();
  return op;
}

// Saves (h, act, c, w_ss) and marks the saved state non-differentiable. Grads are not materialised:
// act and c never get one, and zero-filling them on every backward cost more than the bias gradient;
// an undefined grad of h (no gradient flows back) gives undefined input grads.
variable_list keep(AutogradContext* ctx, const Triple& out, const at::Tensor& w_ss) {
  const auto& [h, act, c] = out;
  ctx->save_for_backward({h, act, c, w_ss});
  ctx->mark_non_differentiable({act, c});
  ctx->set_materialize_grads(false);
  return {h, act, c};
}

struct RowLstm : public torch::autograd::Function<RowLstm> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& pre, const at::Tensor& w_ss,
                               const std::optional<at::Tensor>& bias) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->saved_data["has_bias"] = bias.has_value() && bias->defined();
    return keep(ctx, row_op().call(pre, w_ss, bias), w_ss);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    if (!grad_out[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
    const auto s = ctx->get_saved_variables();
    auto [grad_pre, grad_w] = row_backward_op().call(grad_out[0], s[0], s[1], s[2], s[3]);
    const bool bias_grad = ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2);
    return {grad_pre, grad_w, bias_grad ? grad_pre.sum({0, 2, 3}) : at::Tensor()};
  }
};

struct DiagonalLstm : public torch::autograd::Function<DiagonalLstm> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& pre, const at::Tensor& w_ss, bool reverse) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->saved_data["reverse"] = reverse;
    return keep(ctx, diagonal_op().call(pre, w_ss, reverse), w_ss);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    if (!grad_out[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor()};
    const auto s = ctx->get_saved_variables();
    auto [grad_pre, grad_w] =
        diagonal_backward_op().call(grad_out[0], s[0], s[1], s[2], s[3], ctx->saved_data["reverse"].toBool());
    return {grad_pre, grad_w, at::Tensor()};
  }
};

Triple as_triple(const variable_list& v) { return {v[0], v[1], v[2]}; }

Triple row_lstm_autograd(const at::Tensor& pre, const at::Tensor& w_ss, const std::optional<at::Tensor>& bias) {
  return as_triple(RowLstm::apply(pre, w_ss, bias));
}
Triple diagonal_lstm_autograd(const at::Tensor& pre, const at::Tensor& w_ss, bool reverse) {
  return as_triple(DiagonalLstm::apply(pre, w_ss, reverse));
}

}  // namespace
}  // namespace fastgen

TORCH_LIBRARY_IMPL(fastgen, Autograd, m) {
  m.impl("row_lstm", &fastgen::row_lstm_autograd);
  m.impl("diagonal_lstm", &fastgen::diagonal_lstm_autograd);
}
