// Autograd for lstm_cell_pointwise in C++ (see attention.cpp for why not Python): the forward saves
// c and the activations the kernel stored; the backward op needs nothing else.
#include <torch/autograd.h>
#include <torch/library.h>

namespace fastgen {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

const auto& forward_op() {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgen::lstm_cell_pointwise", "")
                       .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&)>();
  return op;
}
const auto& backward_op() {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgen::lstm_cell_pointwise_backward", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(const std::optional<at::Tensor>&,
                                                                 const std::optional<at::Tensor>&, const at::Tensor&,
                                                                 const at::Tensor&)>();
  return op;
}

struct LstmCellPointwise : public torch::autograd::Function<LstmCellPointwise> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& gates, const at::Tensor& c) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [h, c_out, act] = forward_op().call(gates, c);
    ctx->save_for_backward({act, c});
    ctx->mark_non_differentiable({act});
    return {h, c_out, act};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    auto [grad_gates, grad_c] = backward_op().call(grad_out[0], grad_out[1], saved[0], saved[1]);
    return {grad_gates, grad_c};
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> lstm_cell_pointwise_autograd(const at::Tensor& gates,
                                                                            const at::Tensor& c) {
  auto out = LstmCellPointwise::apply(gates, c);
  return {out[0], out[1], out[2]};
}

}  // namespace
}  // namespace fastgen

TORCH_LIBRARY_IMPL(fastgen, Autograd, m) {
  m.impl("lstm_cell_pointwise", &fastgen::lstm_cell_pointwise_autograd);
}
