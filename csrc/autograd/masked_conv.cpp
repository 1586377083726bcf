// Autograd for masked_conv2d in C++ (the pattern and the reason: csrc/autograd/attention.cpp): the
// forward saves x and weight, the backward calls masked_conv2d_backward through the dispatcher with
// the gradients autograd needs, so a first layer whose input is the image skips grad_x entirely.
#include <torch/autograd.h>
#include <torch/library.h>

#include <array>
#include <string>

namespace fastgen {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

const auto& forward_op() {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgen::masked_conv2d", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                         c10::string_view, int64_t)>();
  return op;
}
const auto& backward_op() {
  using Grads = std::tuple<std::optional<at::Tensor>, std::optional<at::Tensor>, std::optional<at::Tensor>>;
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgen::masked_conv2d_backward", "")
                       .typed<Grads(const at::Tensor&, const at::Tensor&, const at::Tensor&, c10::string_view,
                                    int64_t, std::array<bool, 3>)>();
  return op;
}

struct MaskedConv2d : public torch::autograd::Function<MaskedConv2d> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias, c10::string_view mask, int64_t color_groups) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({x, weight});
    ctx->saved_data["mask"] = std::string(mask.data(), mask.size());
    ctx->saved_data["color_groups"] = color_groups;
    ctx->saved_data["has_bias"] = bias.has_value() && bias->defined();
    return forward_op().call(x, weight, bias, mask, color_groups);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    const std::string mask = ctx->saved_data["mask"].toStringRef();
    const std::array<bool, 3> output_mask{ctx->needs_input_grad(0), ctx->needs_input_grad(1),
                                          ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2)};
    auto [grad_x, grad_w, grad_b] = backward_op().call(grad_out[0], saved[0], saved[1], mask,
                                                       ctx->saved_data["color_groups"].toInt(), output_mask);
    return {grad_x.value_or(at::Tensor()), grad_w.value_or(at::Tensor()), grad_b.value_or(at::Tensor()),
            at::Tensor(), at::Tensor()};
  }
};

at::Tensor masked_conv2d_autograd(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                                  c10::string_view mask, int64_t color_groups) {
  return MaskedConv2d::apply(x, weight, bias, mask, color_groups);
}

}  // namespace
}  // namespace fastgen

TORCH_LIBRARY_IMPL(fastgen, Autograd, m) {
  m.impl("masked_conv2d", &fastgen::masked_conv2d_autograd);
}
