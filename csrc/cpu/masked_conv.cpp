// Torch binding of the CPU masked-convolution kernels (masked_conv_kernels.h): argument checks, the
// padded grids and packed live-tap weights, threading, and the run-time choice of the ISA build.
//
// Grids (per channel, flat, width Wp = W + 2 cx; all padding zero):
//   x grid     pixel (y, x) at F + (y + cy) * Wp + x + cx, F >= cx a front guard for weight_grad's
//              reads at negative shifts; a forward tap (ky, kx) reads shift ky * Wp + kx.
//   grad grid  pixel (y, x) at y * Wp + x + cx with cy zero rows below; grad_x's tap reads shift
//              (cy - ky) * Wp + 2 cx - kx, weight_grad pairs it with the x grid at ky * Wp + kx - cx.
//   output     pixel (y, x) at y * Wp + x; the columns x >= W are computed and dropped.
// Every masked tap (cy < ky: all masks) needs no rows below the image in the x grid.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "fastgen/isa_dispatch.h"
#include "fastgen/masked_conv_math.h"
#include "masked_conv_kernels.h"

namespace fastgen {
namespace cpu {
namespace {

namespace mc = fastgen::masked_conv;

template <typename T>
const MaskedConvKernels<T>& kernels() {
  return isa_table<&avx2::masked_conv_kernels<T>, &generic::masked_conv_kernels<T>>();
}

constexpr int64_t kColumns = 16;     // grid row lengths are multiples of this (2 float vectors)
constexpr int64_t kForwardRows = 48;  // rows (channels) per forward / grad_x task
constexpr int64_t kWeightRows = 12;   // output channels per weight-gradient task

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

struct Geometry {
  int mask;
  int64_t groups, B, cin, cout, H, W, kh, kw, cy, cx, Wp, P, F, XS, GS;
  std::vector<int64_t> ky, kx;  // the live taps, raster order
  int64_t centre = -1;          // index of the centre tap among them, -1 when it is dead

  bool live(int64_t co, int64_t ci, int64_t t) const {
    return mc::weight_live(mask, co, ci, ky[t], kx[t], kh, kw, cout, cin, groups);
  }
};

int parse_mask(const char* op, c10::string_view mask_view, int64_t groups) {
  const std::string mask(mask_view.data(), mask_view.size());
  TORCH_CHECK(mask == "A" || mask == "B" || mask == "V", op, ": mask must be 'A', 'B' or 'V', got '", mask, "'");
  TORCH_CHECK(groups == 1 || groups == 3, op, ": color_groups must be 1 or 3, got ", groups);
  TORCH_CHECK(mask != "V" || groups == 1, op, ": mask 'V' takes no colour groups, got color_groups=", groups);
  return mask == "A" ? mc::kMaskA : mask == "B" ? mc::kMaskB : mc::kMaskV;
}

Geometry geometry(const char* op, const at::Tensor& x, const at::Tensor& weight, c10::string_view mask,
                  int64_t groups) {
  Geometry g;
  g.mask = parse_mask(op, mask, groups);
  g.groups = groups;
  TORCH_CHECK(x.dim() == 4, op, ": x must be 4-D [B, Cin, H, W], got ", x.sizes());
  TORCH_CHECK(weight.dim() == 4, op, ": weight must be 4-D [Cout, Cin, kh, kw], got ", weight.sizes());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, op,
              ": x must be float32 or float64 on the CPU, got ", x.scalar_type());
  TORCH_CHECK(weight.scalar_type() == x.scalar_type(), op, ": weight dtype ", weight.scalar_type(),
              " differs from x dtype ", x.scalar_type());
  TORCH_CHECK(x.device().is_cpu() && weight.device().is_cpu(), op, ": x and weight must be CPU tensors, got ",
              x.device(), " and ", weight.device());
  g.B = x.size(0), g.cin = x.size(1), g.H = x.size(2), g.W = x.size(3);
  g.cout = weight.size(0), g.kh = weight.size(2), g.kw = weight.size(3);
  TORCH_CHECK(weight.size(1) == g.cin, op, ": x has ", g.cin, " channels but weight expects Cin = ", weight.size(1));
  TORCH_CHECK(g.kh % 2 == 1 && g.kw % 2 == 1, op, ": the kernel size must be odd, got ", g.kh, " x ", g.kw);
  TORCH_CHECK(g.B >= 1 && g.cin >= 1 && g.H >= 1 && g.W >= 1 && g.cout >= 1, op,
              ": x and weight must be non-empty, got x ", x.sizes(), ", weight ", weight.sizes());
  TORCH_CHECK(groups == 1 || (g.cin % 3 == 0 && g.cout % 3 == 0), op,
              ": with color_groups=3 the input and output channels must be divisible by 3, got Cin = ", g.cin,
              ", Cout = ", g.cout);
  g.cy = g.kh / 2, g.cx = g.kw / 2;
  g.Wp = g.W + 2 * g.cx;
  g.P = round_up(g.H * g.Wp, kColumns);
  g.F = round_up(g.cx, kColumns);
  g.XS = round_up(g.F + g.P + g.cy * g.Wp + 2 * g.cx, kColumns);
  g.GS = round_up(g.P + g.cy * g.Wp + 2 * g.cx, kColumns);
  for (int64_t ky = 0; ky < g.kh; ++ky)
    for (int64_t kx = 0; kx < g.kw; ++kx) {
      if (!mc::tap_live(g.mask, ky, kx, g.kh, g.kw, g.cout, g.cin, groups)) continue;
      if (ky == g.cy && kx == g.cx) g.centre = static_cast<int64_t>(g.ky.size());
      g.ky.push_back(ky), g.kx.push_back(kx);
    }
  return g;
}

int64_t ntaps(const Geometry& g) { return static_cast<int64_t>(g.ky.size()); }

// channels images [C, H, W] -> grids of row stride Wp, channel stride `stride`, pixel (0, 0) at `first`.
template <typename T>
void to_grid(const T* src, int64_t channels, const Geometry& g, T* dst, int64_t stride, int64_t first) {
  at::parallel_for(0, channels, 16, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      T* d = dst + c * stride;
      std::fill(d, d + stride, T(0));
      for (int64_t y = 0; y < g.H; ++y) std::copy_n(src + (c * g.H + y) * g.W, g.W, d + first + y * g.Wp);
    }
  });
}

// rows [R, P] of an output grid -> dst [R, H, W], plus bias[r] when given
template <typename T>
void from_grid(const T* grid, int64_t rows, const Geometry& g, const T* bias, T* dst) {
  for (int64_t r = 0; r < rows; ++r) {
    const T b = bias != nullptr ? bias[r] : T(0);
    for (int64_t y = 0; y < g.H; ++y) {
      const T* s = grid + r * g.P + y * g.Wp;
      T* d = dst + (r * g.H + y) * g.W;
      for (int64_t x = 0; x < g.W; ++x) d[x] = s[x] + b;
    }
  }
}

// weights [ntaps, K, M] of the live taps: forward (M = Cout, K = Cin) or grad_x (transposed: M = Cin,
// K = Cout); masked entries zero.
template <typename T>
std::vector<T> pack_weights(const T* w, const Geometry& g, bool transposed) {
  const int64_t M = transposed ? g.cin : g.cout, K = transposed ? g.cout : g.cin;
  std::vector<T> packed(ntaps(g) * K * M, T(0));
  for (int64_t t = 0; t < ntaps(g); ++t)
    for (int64_t co = 0; co < g.cout; ++co)
      for (int64_t ci = 0; ci < g.cin; ++ci) {
        if (!g.live(co, ci, t)) continue;
        const int64_t m = transposed ? ci : co, k = transposed ? co : ci;
        packed[(t * K + k) * M + m] = w[((co * g.cin + ci) * g.kh + g.ky[t]) * g.kw + g.kx[t]];
      }
  return packed;
}

// Runs conv over every (image, block of rows) and writes [B, M, H, W] to dst.
template <typename T>
void run_conv(ConvPlan<T> plan, int64_t image_stride, const Geometry& g, const T* bias, T* dst) {
  const int64_t blocks = (plan.M + kForwardRows - 1) / kForwardRows;
  at::parallel_for(0, g.B * blocks, 1, [&](int64_t i0, int64_t i1) {
    std::vector<T> grid(kForwardRows * plan.P);
    ConvPlan<T> p = plan;
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / blocks, m0 = i % blocks * kForwardRows, m1 = std::min(plan.M, m0 + kForwardRows);
      p.in = plan.in + b * image_stride;
      kernels<T>().conv(p, m0, m1, grid.data());
      from_grid(grid.data(), m1 - m0, g, bias != nullptr ? bias + m0 : nullptr, dst + (b * plan.M + m0) * g.H * g.W);
    }
  });
}

at::Tensor masked_conv2d(const at::Tensor& x_in, const at::Tensor& weight_in, const std::optional<at::Tensor>& bias_in,
                         c10::string_view mask, int64_t color_groups) {
  const char* op = "masked_conv2d";
  const Geometry g = geometry(op, x_in, weight_in, mask, color_groups);
  at::Tensor bias;
  if (bias_in.has_value() && bias_in->defined()) {
    bias = bias_in->contiguous();
    TORCH_CHECK(bias.dim() == 1 && bias.size(0) == g.cout, op, ": bias must be [Cout] = [", g.cout, "], got ",
                bias.sizes());
    TORCH_CHECK(bias.scalar_type() == x_in.scalar_type() && bias.device().is_cpu(), op, ": bias must be a CPU ",
                x_in.scalar_type(), " tensor, got ", bias.scalar_type(), " on ", bias.device());
  }
  const auto x = x_in.contiguous();
  const auto weight = weight_in.contiguous();
  auto out = at::empty({g.B, g.cout, g.H, g.W}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "masked_conv2d", [&] {
    using T = scalar_t;
    std::unique_ptr<T[]> xgrid(new T[g.B * g.cin * g.XS]);  // to_grid writes all of it
    to_grid(x.const_data_ptr<T>(), g.B * g.cin, g, xgrid.get(), g.XS, g.F + g.cy * g.Wp + g.cx);
    const std::vector<T> packed = pack_weights(weight.const_data_ptr<T>(), g, false);
    std::vector<int64_t> offsets(ntaps(g)), kbeg(g.cout, 0), kend(g.cout);
    for (int64_t t = 0; t < ntaps(g); ++t) offsets[t] = g.ky[t] * g.Wp + g.kx[t];
    for (int64_t co = 0; co < g.cout; ++co) kend[co] = mc::centre_in_end(g.mask, co, g.cout, g.cin, g.groups);
    const ConvPlan<T> plan{g.cout, g.cin, ntaps(g), g.centre, offsets.data(), kbeg.data(), kend.data(),
                           packed.data(), xgrid.get() + g.F, g.XS, g.P};
    run_conv(plan, g.cin * g.XS, g, bias.defined() ? bias.const_data_ptr<T>() : nullptr, out.mutable_data_ptr<T>());
  });
  return out;
}

using OptionalGrads = std::tuple<std::optional<at::Tensor>, std::optional<at::Tensor>, std::optional<at::Tensor>>;

OptionalGrads masked_conv2d_backward(const at::Tensor& grad_out_in, const at::Tensor& x_in, const at::Tensor& weight_in,
                                     c10::string_view mask, int64_t color_groups, std::array<bool, 3> output_mask) {
  const char* op = "masked_conv2d_backward";
  const Geometry g = geometry(op, x_in, weight_in, mask, color_groups);
  TORCH_CHECK(grad_out_in.sizes() == at::IntArrayRef({g.B, g.cout, g.H, g.W}), op, ": grad_out must be [B, Cout, H, W] = ",
              at::IntArrayRef({g.B, g.cout, g.H, g.W}), ", got ", grad_out_in.sizes());
  TORCH_CHECK(grad_out_in.scalar_type() == x_in.scalar_type() && grad_out_in.device().is_cpu(), op,
              ": grad_out must be a CPU ", x_in.scalar_type(), " tensor, got ", grad_out_in.scalar_type(), " on ",
              grad_out_in.device());
  OptionalGrads grads;
  if (output_mask[2]) std::get<2>(grads) = grad_out_in.sum({0, 2, 3});
  if (!output_mask[0] && !output_mask[1]) return grads;
  const auto grad_out = grad_out_in.contiguous();
  const auto x = x_in.contiguous();
  const auto weight = weight_in.contiguous();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "masked_conv2d", [&] {
    using T = scalar_t;
    std::unique_ptr<T[]> ggrid(new T[g.B * g.cout * g.GS]);
    to_grid(grad_out.const_data_ptr<T>(), g.B * g.cout, g, ggrid.get(), g.GS, g.cx);
    if (output_mask[0]) {
      auto grad_x = at::empty_like(x);
      const std::vector<T> packed = pack_weights(weight.const_data_ptr<T>(), g, true);
      std::vector<int64_t> offsets(ntaps(g)), kbeg(g.cin), kend(g.cin, g.cout);
      for (int64_t t = 0; t < ntaps(g); ++t) offsets[t] = (g.cy - g.ky[t]) * g.Wp + 2 * g.cx - g.kx[t];
      for (int64_t ci = 0; ci < g.cin; ++ci) kbeg[ci] = mc::centre_out_begin(g.mask, ci, g.cin, g.cout, g.groups);
      const ConvPlan<T> plan{g.cin, g.cout, ntaps(g), g.centre, offsets.data(), kbeg.data(), kend.data(),
                             packed.data(), ggrid.get(), g.GS, g.P};
      run_conv<T>(plan, g.cout * g.GS, g, nullptr, grad_x.mutable_data_ptr<T>());
      std::get<0>(grads) = grad_x;
    }
    if (output_mask[1]) {
      auto grad_w = at::zeros_like(weight);
      std::unique_ptr<T[]> xgrid(new T[g.B * g.cin * g.XS]);
      to_grid(x.const_data_ptr<T>(), g.B * g.cin, g, xgrid.get(), g.XS, g.F + g.cy * g.Wp + g.cx);
      const WeightGradPlan<T> plan{g.B, g.P, ggrid.get(), g.cout * g.GS, g.GS, xgrid.get() + g.F, g.cin * g.XS, g.XS};
      const int64_t blocks = (g.cout + kWeightRows - 1) / kWeightRows;
      T* gw = grad_w.mutable_data_ptr<T>();
      at::parallel_for(0, ntaps(g) * blocks, 1, [&](int64_t i0, int64_t i1) {
        std::vector<T> buf(kWeightRows * g.cin);
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t t = i / blocks, co0 = i % blocks * kWeightRows, co1 = std::min(g.cout, co0 + kWeightRows);
          const int64_t ci_end =
              t == g.centre ? mc::centre_in_end(g.mask, co1 - 1, g.cout, g.cin, g.groups) : g.cin;
          kernels<T>().weight_grad(plan, g.ky[t] * g.Wp + g.kx[t] - g.cx, co0, co1, ci_end, buf.data(), g.cin);
          for (int64_t co = co0; co < co1; ++co)
            for (int64_t ci = 0; ci < ci_end; ++ci)
              if (g.live(co, ci, t))
                gw[((co * g.cin + ci) * g.kh + g.ky[t]) * g.kw + g.kx[t]] = buf[(co - co0) * g.cin + ci];
        }
      });
      std::get<1>(grads) = grad_w;
    }
  });
  return grads;
}

}  // namespace
}  // namespace cpu
}  // namespace fastgen

TORCH_LIBRARY_IMPL(fastgen, CPU, m) {
  m.impl("masked_conv2d", &fastgen::cpu::masked_conv2d);
  m.impl("masked_conv2d_backward", &fastgen::cpu::masked_conv2d_backward);
}
