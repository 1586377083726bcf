// Torch binding of the CPU PixelRNN recurrences (pixel_lstm_kernels.h): argument checks, the
// pixel-major (channels-last) views the kernels work in, the packed state-to-state weights,
// threading over images, and the state-to-state weight gradient as one product over all steps.
//
// Outputs: h and grad_pre are returned as [B, C, H, W] views of channels-last memory (what the
// kernels write; the fake kernels in fastgen/ops/pixel_lstm.py give the same strides); act [B, H, W,
// 5h] and c [B, H, W, h] are the forward's saved state for the backward, not for users. The inputs
// pre and grad_h are read in place in any layout (their strides go to the kernels).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "fastgen/checks.h"
#include "fastgen/cpu_features.h"
#include "fastgen/isa_dispatch.h"
#include "fastgen/pixel_lstm_checks.h"
#include "fastgen/small_gemm.h"
#include "pixel_lstm_kernels.h"

namespace fastgen {
namespace cpu {
namespace {

// The AVX-512 build where the CPU has it (cpu_has_avx512), else the AVX2 / generic choice.
template <typename T>
const PixelLstmKernels<T>& kernels() {
  return wide_isa_table<&avx512::pixel_lstm_kernels<T>, &avx2::pixel_lstm_kernels<T>,
                        &generic::pixel_lstm_kernels<T>>();
}

// Checks w_ss against a pre-activation tensor of `sizes` [B, 4h, H, W] (named `name`: pre, or the
// h of a backward, whose channel count is h). taps: the required kernel width (2 for the Diagonal
// LSTM), 0 for "any odd width >= 3" (Row LSTM). The device-free checks: fastgen/pixel_lstm_checks.h.
PixelLstmDims check_args(const char* op, const at::Tensor& t, const char* name, int64_t gates, const at::Tensor& w_ss,
                         int64_t taps, bool reverse) {
  pixel_lstm::check_ranks(op, t, name, gates, w_ss);
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, op, ": ", name,
              " must be float32 or float64 on the CPU, got ", t.scalar_type());
  pixel_lstm::check_same_dtype(op, t, name, w_ss);
  TORCH_CHECK(t.device().is_cpu() && w_ss.device().is_cpu(), op, ": ", name, " and w_ss must be CPU tensors, got ",
              t.device(), " and ", w_ss.device());
  const int64_t n = pixel_lstm::check_sizes(op, t, name, gates, w_ss, taps);
  return PixelLstmDims{t.size(2), t.size(3), n, w_ss.size(2), reverse};
}

// [B, C, H, W] -> contiguous [B, H, W, C] (no copy when it already is channels-last)
at::Tensor pixel_major(const at::Tensor& t) { return t.permute({0, 2, 3, 1}).contiguous(); }
at::Tensor as_nchw(const at::Tensor& t) { return t.permute({0, 3, 1, 2}); }
PlaneStrides plane_strides(const at::Tensor& t) { return {t.stride(1), t.stride(2), t.stride(3)}; }

// Forward operand [k h, G]: row t h + j, column m = w[m, j, t].
template <typename T>
std::vector<T> pack_forward(const T* w, int64_t n, int64_t k) {
  const int64_t G = pad_columns<T>(4 * n);
  std::vector<T> packed(k * n * G, T(0));
  for (int64_t m = 0; m < 4 * n; ++m)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t t = 0; t < k; ++t) packed[(t * n + j) * G + m] = w[(m * n + j) * k + t];
  return packed;
}

// Backward operand [k 4h, HP]: block b holds tap (reversed ? k - 1 - b : b), row m, column j = w[m, j, tap].
template <typename T>
std::vector<T> pack_backward(const T* w, int64_t n, int64_t k, bool reversed) {
  const int64_t HP = pad_columns<T>(n);
  std::vector<T> packed(k * 4 * n * HP, T(0));
  for (int64_t b = 0; b < k; ++b) {
    const int64_t t = reversed ? k - 1 - b : b;
    for (int64_t m = 0; m < 4 * n; ++m)
      for (int64_t j = 0; j < n; ++j) packed[(b * 4 * n + m) * HP + j] = w[(m * n + j) * k + t];
  }
  return packed;
}

using Forward = std::tuple<at::Tensor, at::Tensor, at::Tensor>;

template <typename Run>
Forward forward(const PixelLstmDims& d, const at::Tensor& pre, Run run) {
  const int64_t B = pre.size(0), n = d.hidden, cells = d.H * d.W, image_stride = pre.stride(0);
  const PlaneStrides ps = plane_strides(pre);
  auto h = at::empty({B, d.H, d.W, n}, pre.options());
  auto c = at::empty({B, d.H, d.W, n}, pre.options());
  auto act = at::empty({B, d.H, d.W, 5 * n}, pre.options());
  AT_DISPATCH_FLOATING_TYPES(pre.scalar_type(), "pixel_lstm", [&] {
    using T = scalar_t;
    const T* p = pre.const_data_ptr<T>();
    T *hp = h.mutable_data_ptr<T>(), *cp = c.mutable_data_ptr<T>(), *ap = act.mutable_data_ptr<T>();
    run(T(), [&](auto&& image) {
      at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b)
          image(p + b * image_stride, ps, hp + b * cells * n, cp + b * cells * n, ap + b * cells * 5 * n);
      });
    });
  });
  return {as_nchw(h), act, c};
}

Forward row_lstm(const at::Tensor& pre, const at::Tensor& w_in, const std::optional<at::Tensor>& bias_in) {
  const char* op = "row_lstm";
  const PixelLstmDims d = check_args(op, pre, "pre", 4, w_in, 0, false);
  at::Tensor bias;
  if (bias_in.has_value() && bias_in->defined()) {
    bias = bias_in->contiguous();
    pixel_lstm::check_bias(op, bias, d.hidden, pre, "CPU");
  }
  const auto w = w_in.contiguous();
  return forward(d, pre, [&](auto zero, auto&& each_image) {
    using T = decltype(zero);
    const std::vector<T> packed = pack_forward(w.const_data_ptr<T>(), d.hidden, d.k);
    const T* b = bias.defined() ? bias.const_data_ptr<T>() : nullptr;
    each_image([&](const T* p, PlaneStrides ps, T* h, T* c, T* act) {
      kernels<T>().row_forward(d, p, ps, packed.data(), b, h, c, act);
    });
  });
}

Forward diagonal_lstm(const at::Tensor& pre, const at::Tensor& w_in, bool reverse) {
  const PixelLstmDims d = check_args("diagonal_lstm", pre, "pre", 4, w_in, 2, reverse);
  const auto w = w_in.contiguous();
  return forward(d, pre, [&](auto zero, auto&& each_image) {
    using T = decltype(zero);
    const std::vector<T> packed = pack_forward(w.const_data_ptr<T>(), d.hidden, 2);
    const T* above = packed.data();
    const T* left = above + d.hidden * pad_columns<T>(4 * d.hidden);
    each_image([&](const T* p, PlaneStrides ps, T* h, T* c, T* act) {
      kernels<T>().diagonal_forward(d, p, ps, above, left, h, c, act);
    });
  });
}

// h [B, H, W, h] -> [B, H, W, k h]: cell (r, x) holds, side by side, the states its step read through
// each tap, zero off the image. Row LSTM: tap t = h(r - 1, x + t - k / 2); Diagonal LSTM: tap 0 = the
// cell above, tap 1 = the cell to the left in the direction's column order. One pass, no padded copies
// (pad + cat cost as much as the weight-gradient product itself at the MNIST size).
template <typename T>
at::Tensor tap_inputs(const at::Tensor& h, const PixelLstmDims& d, bool row) {
  const int64_t n = d.hidden, k = d.k;
  auto out = at::empty({h.size(0), d.H, d.W, k * n}, h.options());
  const T* src = h.const_data_ptr<T>();
  T* dst = out.mutable_data_ptr<T>();
  at::parallel_for(0, h.size(0) * d.H, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)  // i = b H + r: one row of one image
      for (int64_t x = 0; x < d.W; ++x)
        for (int64_t t = 0; t < k; ++t) {
          const int64_t r = i % d.H;
          const int64_t sr = row || t == 0 ? r - 1 : r;
          const int64_t sx = row ? x + t - k / 2 : t == 0 ? x : d.reverse ? x + 1 : x - 1;
          T* o = dst + ((i * d.W + x) * k + t) * n;
          if (sr >= 0 && sx >= 0 && sx < d.W)
            std::copy_n(src + ((i - r + sr) * d.W + sx) * n, n, o);
          else
            std::fill_n(o, n, T(0));
        }
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> backward(const char* op, const at::Tensor& grad_h, const at::Tensor& h_in,
                                            const at::Tensor& act_in, const at::Tensor& c_in, const at::Tensor& w_in,
                                            bool row, bool reverse) {
  const PixelLstmDims d = check_args(op, h_in, "h", 1, w_in, row ? 0 : 2, reverse);
  const int64_t B = h_in.size(0), n = d.hidden, cells = d.H * d.W;
  check_same_shape(op, grad_h, "grad_h", {B, n, d.H, d.W}, h_in);
  check_same_shape(op, act_in, "act", {B, d.H, d.W, 5 * n}, h_in);
  check_same_shape(op, c_in, "c", {B, d.H, d.W, n}, h_in);
  const auto h = pixel_major(h_in);
  const PlaneStrides gs = plane_strides(grad_h);
  const auto act = act_in.contiguous(), c = c_in.contiguous(), w = w_in.contiguous();
  auto grad_pre = at::empty({B, d.H, d.W, 4 * n}, h.options());
  AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "pixel_lstm_backward", [&] {
    using T = scalar_t;
    const std::vector<T> packed = pack_backward(w.const_data_ptr<T>(), n, d.k, row);
    const T *gh = grad_h.const_data_ptr<T>(), *cp = c.const_data_ptr<T>(), *ap = act.const_data_ptr<T>();
    T* gp = grad_pre.mutable_data_ptr<T>();
    at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const T *ghb = gh + b * grad_h.stride(0), *cb = cp + b * cells * n, *ab = ap + b * cells * 5 * n;
        T* gb = gp + b * cells * 4 * n;
        if (row)
          kernels<T>().row_backward(d, ghb, gs, cb, ab, packed.data(), gb);
        else
          kernels<T>().diagonal_backward(d, ghb, gs, cb, ab, packed.data(), packed.data() + 4 * n * pad_columns<T>(n),
                                        gb);
      }
    });
  });
  // grad w_ss[m, j, t] = sum over every cell of grad_pre[cell, m] * (state cell read through tap t)[j]:
  // one [4h, cells] x [cells, k h] product over all steps and images
  const auto taps = AT_DISPATCH_FLOATING_TYPES(h.scalar_type(), "pixel_lstm_taps", [&] { return tap_inputs<scalar_t>(h, d, row); });
  const auto grad_w = at::mm(grad_pre.view({-1, 4 * n}).t(), taps.view({-1, d.k * n}));
  return {as_nchw(grad_pre), grad_w.view({4 * n, d.k, n}).permute({0, 2, 1}).contiguous()};
}

std::tuple<at::Tensor, at::Tensor> row_lstm_backward(const at::Tensor& grad_h, const at::Tensor& h,
                                                     const at::Tensor& act, const at::Tensor& c, const at::Tensor& w) {
  return backward("row_lstm_backward", grad_h, h, act, c, w, true, false);
}

std::tuple<at::Tensor, at::Tensor> diagonal_lstm_backward(const at::Tensor& grad_h, const at::Tensor& h,
                                                          const at::Tensor& act, const at::Tensor& c,
                                                          const at::Tensor& w, bool reverse) {
  return backward("diagonal_lstm_backward", grad_h, h, act, c, w, false, reverse);
}

}  // namespace
}  // namespace cpu
}  // namespace fastgen

TORCH_LIBRARY_IMPL(fastgen, CPU, m) {
  m.impl("row_lstm", &fastgen::cpu::row_lstm);
  m.impl("row_lstm_backward", &fastgen::cpu::row_lstm_backward);
  m.impl("diagonal_lstm", &fastgen::cpu::diagonal_lstm);
  m.impl("diagonal_lstm_backward", &fastgen::cpu::diagonal_lstm_backward);
}
