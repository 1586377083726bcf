// Autograd for the attention ops, in C++: each forward saves its inputs (not the filterbanks) and
// its backward calls the matching *_backward op through the dispatcher, so every backend (CPU, CUDA,
// the Triton kernels registered from Python) and torch.compile's tracing see two plain ops.
//
// Why C++ rather than torch.library.register_autograd: on this 2-core machine the Python autograd
// path cost ~100 us per op call (forward wrapper + backward node), as much as the kernels themselves
// at DRAW's sizes; a C++ node costs a few microseconds.
#include <torch/autograd.h>
#include <torch/library.h>

namespace fastgen {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

const auto& read_op() {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgen::attention_read", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t)>();
  return op;
}
const auto& read_backward_op() {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgen::attention_read_backward", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                                 const at::Tensor&, int64_t)>();
  return op;
}
const auto& write_op() {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgen::attention_write", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t,
                                         const std::optional<at::Tensor>&)>();
  return op;
}
const auto& write_backward_op() {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("fastgen::attention_write_backward", "")
                       .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&,
                                                                 const at::Tensor&, int64_t, int64_t)>();
  return op;
}

struct AttentionRead : public torch::autograd::Function<AttentionRead> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& params, int64_t N) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({x, params});
    ctx->saved_data["N"] = N;
    return read_op().call(x, params, N);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    auto [grad_x, grad_params] =
        read_backward_op().call(grad_out[0], saved[0], saved[1], ctx->saved_data["N"].toInt());
    return {grad_x, grad_params, at::Tensor()};
  }
};

struct AttentionWrite : public torch::autograd::Function<AttentionWrite> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& w, const at::Tensor& params, int64_t H,
                            int64_t W, const std::optional<at::Tensor>& canvas) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({w, params});
    ctx->saved_data["H"] = H;
    ctx->saved_data["W"] = W;
    ctx->saved_data["has_canvas"] = canvas.has_value();
    return write_op().call(w, params, H, W, canvas);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    auto [grad_w, grad_params] = write_backward_op().call(grad_out[0], saved[0], saved[1],
                                                          ctx->saved_data["H"].toInt(), ctx->saved_data["W"].toInt());
    const at::Tensor grad_canvas = ctx->saved_data["has_canvas"].toBool() ? grad_out[0] : at::Tensor();
    return {grad_w, grad_params, at::Tensor(), at::Tensor(), grad_canvas};
  }
};

at::Tensor read_autograd(const at::Tensor& x, const at::Tensor& params, int64_t N) {
  return AttentionRead::apply(x, params, N);
}

at::Tensor write_autograd(const at::Tensor& w, const at::Tensor& params, int64_t H, int64_t W,
                          const std::optional<at::Tensor>& canvas) {
  return AttentionWrite::apply(w, params, H, W, canvas);
}

}  // namespace
}  // namespace fastgen

TORCH_LIBRARY_IMPL(fastgen, Autograd, m) {
  m.impl("attention_read", &fastgen::read_autograd);
  m.impl("attention_write", &fastgen::write_autograd);
}
