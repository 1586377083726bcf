// Torch binding of the fused DRAW sampler (draw_kernels.h): checks, contiguous weights, threading
// over the batch, and the run-time choice between the generic and AVX2 builds.
#include <ATen/Dispatch.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <memory>
#include <vector>

#include "draw_kernels.h"
#include "fastgen/isa_dispatch.h"

namespace fastgen {
namespace cpu {
namespace {

template <typename T>
const DrawKernels<T>& kernels() {
  return isa_table<&avx2::draw_kernels<T>, &generic::draw_kernels<T>>();
}

void check_shape(const at::Tensor& t, const char* name, at::IntArrayRef shape, const at::Tensor& like) {
  TORCH_CHECK(t.sizes() == shape, "draw_generate: ", name, " must have shape ", shape, ", got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), "draw_generate: ", name, " dtype ", t.scalar_type(),
              " differs from noise dtype ", like.scalar_type());
  TORCH_CHECK(t.device() == like.device(), "draw_generate: ", name, " is on ", t.device(), " but noise is on ",
              like.device());
}

at::Tensor draw_generate(const at::Tensor& noise, const at::Tensor& w_ih, const at::Tensor& w_hh,
                         const at::Tensor& bias, const at::Tensor& w_patch, const at::Tensor& b_patch,
                         const at::Tensor& w_window, const at::Tensor& b_window, int64_t channels, int64_t height,
                         int64_t width) {
  TORCH_CHECK(noise.dim() == 3, "draw_generate: noise must be [T, B, Z], got ", noise.sizes());
  TORCH_CHECK(noise.scalar_type() == at::kFloat || noise.scalar_type() == at::kDouble,
              "draw_generate: noise must be float32 or float64, got ", noise.scalar_type());
  TORCH_CHECK(channels >= 1 && height >= 1 && width >= 1, "draw_generate: channels, height and width must be >= 1");
  TORCH_CHECK(w_hh.dim() == 2 && w_hh.size(0) == 4 * w_hh.size(1) && w_hh.size(1) >= 1,
              "draw_generate: w_hh must be [4D, D], got ", w_hh.sizes());
  const int64_t T = noise.size(0), B = noise.size(1), Z = noise.size(2), D = w_hh.size(1);
  TORCH_CHECK(w_patch.dim() == 2 && w_patch.size(0) % channels == 0, "draw_generate: w_patch must be [C N N, D], got ",
              w_patch.sizes());
  const int64_t N = std::llround(std::sqrt(double(w_patch.size(0) / channels)));
  TORCH_CHECK(N >= 1 && channels * N * N == w_patch.size(0), "draw_generate: w_patch rows (", w_patch.size(0),
              ") must be channels * N * N for a square N x N patch");
  check_shape(w_ih, "w_ih", {4 * D, Z}, noise);
  check_shape(w_hh, "w_hh", {4 * D, D}, noise);
  check_shape(bias, "bias", {4 * D}, noise);
  check_shape(w_patch, "w_patch", {channels * N * N, D}, noise);
  check_shape(b_patch, "b_patch", {channels * N * N}, noise);
  check_shape(w_window, "w_window", {5, D}, noise);
  check_shape(b_window, "b_window", {5}, noise);

  const DrawDims d{T, B, Z, D, AttentionDims{channels, height, width, N}};
  auto canvas = at::zeros({B, channels, height, width}, noise.options());
  const at::Tensor tensors[] = {noise.contiguous(), w_ih.contiguous(), w_hh.contiguous(), bias.contiguous(),
                                w_patch.contiguous(), b_patch.contiguous(), w_window.contiguous(),
                                b_window.contiguous()};
  AT_DISPATCH_FLOATING_TYPES(noise.scalar_type(), "draw_generate", [&] {
    using S = scalar_t;
    const DrawWeights<S> w{tensors[1].const_data_ptr<S>(), tensors[2].const_data_ptr<S>(),
                           tensors[3].const_data_ptr<S>(), tensors[4].const_data_ptr<S>(),
                           tensors[5].const_data_ptr<S>(), tensors[6].const_data_ptr<S>(),
                           tensors[7].const_data_ptr<S>()};
    // Once per call, shared by every worker; packing writes every element, so no zero fill.
    const std::unique_ptr<S[]> packed(new S[draw_packed_elems(d)]);
    kernels<S>().pack_gate_weights(d, w, packed.get());
    at::parallel_for(0, B, 1, [&](int64_t b0, int64_t b1) {
      std::vector<S> scratch(draw_scratch_elems(d));
      kernels<S>().generate(d, tensors[0].const_data_ptr<S>(), w, packed.get(), canvas.mutable_data_ptr<S>(), b0,
                            b1, scratch.data());
    });
  });
  return canvas;
}

}  // namespace
}  // namespace cpu
}  // namespace fastgen

TORCH_LIBRARY_IMPL(fastgen, CPU, m) {
  m.impl("draw_generate", &fastgen::cpu::draw_generate);
}
