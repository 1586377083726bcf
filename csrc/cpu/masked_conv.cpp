// Torch binding of the CPU masked-convolution kernels (masked_conv_kernels.h): argument checks, the
// padded grids and packed live-tap weights, threading, and the run-time choice of the ISA build.
//
// Grids (per channel, flat, width Wp = W + 2 cx; all padding zero):
//   x grid     pixel (y, x) at (y + cy) * Wp + x + cx; a forward tap (ky, kx) reads shift ky * Wp + kx
//              from y * Wp + x, as does weight_grad's im2col.
//   grad grid  pixel (y, x) at y * Wp + x + cx with cy zero rows below; grad_x's tap reads shift
//              (cy - ky) * Wp + 2 cx - kx.
//   output     pixel (y, x) at y * Wp + x; the columns x >= W are computed and dropped.
// Every masked tap (cy < ky: all masks) needs no rows below the image in the x grid.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <array>
#include <memory>
#include <vector>

#include "fastgen/cpu_features.h"
#include "fastgen/isa_dispatch.h"
#include "fastgen/masked_conv_checks.h"
#include "fastgen/masked_conv_math.h"
#include "masked_conv_kernels.h"

namespace fastgen {
namespace cpu {
namespace {

namespace mc = fastgen::masked_conv;

// The AVX-512 build where the CPU has it (cpu_has_avx512), else the AVX2 / generic choice.
template <typename T>
const MaskedConvKernels<T>& kernels() {
  return wide_isa_table<&avx512::masked_conv_kernels<T>, &avx2::masked_conv_kernels<T>,
                        &generic::masked_conv_kernels<T>>();
}

constexpr int64_t kColumns = 32;  // grid rows and weight_grad's columns: multiples of 2 AVX-512 float vectors
constexpr int64_t kForwardRows = 48;  // rows (channels) per forward / grad_x task
constexpr int64_t kTilePixels = 256;  // weight_grad's tiles: about this many pixels (whole image rows)
// weight_grad's partial sums: a fixed number, so the order of the reduction (and the rounding) does
// not depend on the thread count.
constexpr int64_t kWeightChunks = 8;

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

struct Geometry {
  int mask;
  int64_t groups, B, cin, cout, H, W, kh, kw, cy, cx, Wp, P, S;  // S: a grid's channel stride
  std::vector<int64_t> ky, kx;  // the live taps, raster order
  int64_t centre = -1;          // index of the centre tap among them, -1 when it is dead

  bool live(int64_t co, int64_t ci, int64_t t) const {
    return mc::weight_live(mask, co, ci, ky[t], kx[t], kh, kw, cout, cin, groups);
  }
};

Geometry geometry(const char* op, const at::Tensor& x, const at::Tensor& weight, c10::string_view mask,
                  int64_t groups) {
  Geometry g;
  g.mask = mc::check_mask_and_dims(op, mask, groups, x, weight);
  g.groups = groups;
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, op,
              ": x must be float32 or float64 on the CPU, got ", x.scalar_type());
  TORCH_CHECK(weight.scalar_type() == x.scalar_type(), op, ": weight dtype ", weight.scalar_type(),
              " differs from x dtype ", x.scalar_type());
  TORCH_CHECK(x.device().is_cpu() && weight.device().is_cpu(), op, ": x and weight must be CPU tensors, got ",
              x.device(), " and ", weight.device());
  mc::check_conv_sizes(op, x, weight, groups);
  g.B = x.size(0), g.cin = x.size(1), g.H = x.size(2), g.W = x.size(3);
  g.cout = weight.size(0), g.kh = weight.size(2), g.kw = weight.size(3);
  g.cy = g.kh / 2, g.cx = g.kw / 2;
  g.Wp = g.W + 2 * g.cx;
  g.P = round_up(g.H * g.Wp, kColumns);
  g.S = round_up(g.P + g.cy * g.Wp + 2 * g.cx, kColumns);
  for (int64_t ky = 0; ky < g.kh; ++ky)
    for (int64_t kx = 0; kx < g.kw; ++kx) {
      if (!mc::tap_live(g.mask, ky, kx, g.kh, g.kw, g.cout, g.cin, groups)) continue;
      if (ky == g.cy && kx == g.cx) g.centre = static_cast<int64_t>(g.ky.size());
      g.ky.push_back(ky), g.kx.push_back(kx);
    }
  return g;
}

int64_t ntaps(const Geometry& g) { return static_cast<int64_t>(g.ky.size()); }

// The forward shift of each live tap in the x grid (masked_conv_kernels.h).
std::vector<int64_t> forward_offsets(const Geometry& g) {
  std::vector<int64_t> offsets(ntaps(g));
  for (int64_t t = 0; t < ntaps(g); ++t) offsets[t] = g.ky[t] * g.Wp + g.kx[t];
  return offsets;
}

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

template <typename T>
std::unique_ptr<T[]> x_grids(const at::Tensor& x, const Geometry& g) {
  std::unique_ptr<T[]> grids(new T[g.B * g.cin * g.S]);  // to_grid writes all of it
  to_grid(x.const_data_ptr<T>(), g.B * g.cin, g, grids.get(), g.S, g.cy * g.Wp + g.cx);
  return grids;
}

// grad_weight of the live weights (the others stay zero): the tiles of image rows split into
// kWeightChunks fixed chunks, one partial sum [columns, ldc] each, summed in chunk order.
template <typename T>
void weight_grad(const at::Tensor& x, const at::Tensor& grad_out, const Geometry& g, T* gw) {
  const std::unique_ptr<T[]> xgrid = x_grids<T>(x, g);
  const std::vector<int64_t> offsets = forward_offsets(g);
  std::vector<int64_t> col_begin(ntaps(g) + 1, 0);
  for (int64_t t = 0; t < ntaps(g); ++t)
    col_begin[t + 1] = col_begin[t] + (t == g.centre ? mc::centre_in_end(g.mask, g.cout - 1, g.cout, g.cin, g.groups)
                                                     : g.cin);
  const int64_t rows = std::max<int64_t>(1, std::min(g.H, kTilePixels / g.W));
  // A row stride of an odd number of cache lines: with an even one the transposed tile's rows share a
  // few L1 sets and its column panel, read once per row tile of the GEMM, no longer fits L1.
  const int64_t width = round_up(g.cout, kColumns), line = 64 / static_cast<int64_t>(sizeof(T));
  const int64_t ldc = width / line % 2 == 0 ? width + line : width;
  const WeightGradPlan<T> plan{g.H, g.W, g.Wp, g.cout, ntaps(g), offsets.data(), col_begin.data(), xgrid.get(),
                               g.cin * g.S, g.S, grad_out.const_data_ptr<T>(), rows, width, ldc};
  const int64_t units = g.B * plan.tiles(), chunks = std::min(units, kWeightChunks);
  const int64_t part = plan.columns() * plan.ldc;
  std::vector<T> partial(chunks * part, T(0));
  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    std::vector<T> scratch(plan.scratch());
    for (int64_t c = c0; c < c1; ++c)
      kernels<T>().weight_grad(plan, c * units / chunks, (c + 1) * units / chunks, partial.data() + c * part,
                               scratch.data());
  });
  at::parallel_for(0, ntaps(g), 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      for (int64_t ci = 0; ci < col_begin[t + 1] - col_begin[t]; ++ci)
        for (int64_t co = 0; co < g.cout; ++co) {
          if (!g.live(co, ci, t)) continue;
          T sum = T(0);
          for (int64_t c = 0; c < chunks; ++c) sum += partial[c * part + (col_begin[t] + ci) * plan.ldc + co];
          gw[((co * g.cin + ci) * g.kh + g.ky[t]) * g.kw + g.kx[t]] = sum;
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
    const std::unique_ptr<T[]> xgrid = x_grids<T>(x, g);
    const std::vector<T> packed = pack_weights(weight.const_data_ptr<T>(), g, false);
    const std::vector<int64_t> offsets = forward_offsets(g);
    std::vector<int64_t> kbeg(g.cout, 0), kend(g.cout);
    for (int64_t co = 0; co < g.cout; ++co) kend[co] = mc::centre_in_end(g.mask, co, g.cout, g.cin, g.groups);
    const ConvPlan<T> plan{g.cout, g.cin, ntaps(g), g.centre, offsets.data(), kbeg.data(), kend.data(),
                           packed.data(), xgrid.get(), g.S, g.P};
    run_conv(plan, g.cin * g.S, g, bias.defined() ? bias.const_data_ptr<T>() : nullptr, out.mutable_data_ptr<T>());
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
    if (output_mask[0]) {
      std::unique_ptr<T[]> ggrid(new T[g.B * g.cout * g.S]);
      to_grid(grad_out.const_data_ptr<T>(), g.B * g.cout, g, ggrid.get(), g.S, g.cx);
      auto grad_x = at::empty_like(x);
      const std::vector<T> packed = pack_weights(weight.const_data_ptr<T>(), g, true);
      std::vector<int64_t> offsets(ntaps(g)), kbeg(g.cin), kend(g.cin, g.cout);
      for (int64_t t = 0; t < ntaps(g); ++t) offsets[t] = (g.cy - g.ky[t]) * g.Wp + 2 * g.cx - g.kx[t];
      for (int64_t ci = 0; ci < g.cin; ++ci) kbeg[ci] = mc::centre_out_begin(g.mask, ci, g.cin, g.cout, g.groups);
      const ConvPlan<T> plan{g.cin, g.cout, ntaps(g), g.centre, offsets.data(), kbeg.data(), kend.data(),
                             packed.data(), ggrid.get(), g.S, g.P};
      run_conv<T>(plan, g.cout * g.S, g, nullptr, grad_x.mutable_data_ptr<T>());
      std::get<0>(grads) = grad_x;
    }
    if (output_mask[1]) {
      auto grad_w = at::zeros_like(weight);
      weight_grad<T>(x, grad_out, g, grad_w.mutable_data_ptr<T>());
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
