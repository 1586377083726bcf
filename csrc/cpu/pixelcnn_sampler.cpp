// Torch binding of the fast cached PixelCNN / Gated PixelCNN sampler (pixelcnn_sampler_kernels.h):
// argument checks against the plan's dims, threading over independent batch rows, and the run-time
// choice between the generic and AVX2 builds.
//
// dims = [kind, H, W, C, K, L] then (rows, kw, centre) of every conv in weight order.
// weights (float32, contiguous): [input_table, head1 w, b, head2 w, b] then
//   PixelCNN: first conv w, b; per block: reduce w, b, conv w, b, expand w, b
//   Gated:    per layer: vertical w, b, horizontal w, b, link w, b, out w, b
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <optional>
#include <string>
#include <vector>

#include "fastgen/isa_dispatch.h"
#include "fastgen/sampler_checks.h"
#include "pixelcnn_sampler_kernels.h"

namespace fastgen {
namespace cpu {
namespace {

constexpr const char* kOp = "pixelcnn_sample";

const SamplerKernels& kernels() { return isa_table<&avx2::sampler_kernels, &generic::sampler_kernels>(); }

void check_float(const at::Tensor& t, const std::string& name, at::IntArrayRef shape) {
  check_sampler_float(kOp, t, name, shape);
}

// Reads the weights list in order, checking each against the shape the chain of layers implies.
struct WeightReader {
  at::TensorList weights;
  at::IntArrayRef dims;
  int64_t next = 0, next_conv = 0;

  const at::Tensor& take(const std::string& name) {
    TORCH_CHECK(next < int64_t(weights.size()), kOp, ": weights has ", weights.size(), " tensors, too few for the ",
                "plan's layers (missing ", name, ")");
    return weights[next++];
  }
  int64_t width(const at::Tensor& t, int64_t G, const std::string& name) {
    TORCH_CHECK(t.dim() == 2, kOp, ": ", name, " must be 2-D [rows, cout], got ", t.sizes());
    const int64_t cout = t.size(1);
    TORCH_CHECK(cout > 0 && cout % (8 * G) == 0, kOp, ": ", name, " has ", cout,
                " output columns, not a positive multiple of 8 per colour group (", G, ")");
    return cout;
  }
  // cin < 0: the weight's own rows (checked against the chain by the caller)
  SamplerDense dense(int64_t cin, int64_t G, const std::string& name) {
    const at::Tensor& w = take(name + " weight");
    const int64_t cout = width(w, G, name + " weight");
    if (cin < 0) cin = w.size(0);
    check_float(w, name + " weight", {cin, cout});
    const at::Tensor& b = take(name + " bias");
    check_float(b, name + " bias", {cout});
    return SamplerDense{w.const_data_ptr<float>(), b.const_data_ptr<float>(), cin, cout};
  }
  SamplerConv conv(int64_t cin, int64_t G, const std::string& name) {
    const int64_t at_dim = 6 + 3 * next_conv++;
    TORCH_CHECK(at_dim + 3 <= int64_t(dims.size()), kOp, ": dims lacks the geometry of ", name);
    const int64_t rows = dims[at_dim], kw = dims[at_dim + 1], centre = dims[at_dim + 2];
    TORCH_CHECK(rows >= 1 && kw >= 1 && kw % 2 == 1 && centre >= 0 && centre <= kw, kOp, ": ", name,
                " geometry (rows, kw, centre) = (", rows, ", ", kw, ", ", centre, ") is not a causal kernel's");
    const at::Tensor& w = take(name + " weight");
    const int64_t cout = width(w, G, name + " weight");
    check_float(w, name + " weight", {((rows - 1) * kw + centre) * cin, cout});
    const at::Tensor& b = take(name + " bias");
    check_float(b, name + " bias", {cout});
    return SamplerConv{w.const_data_ptr<float>(), b.const_data_ptr<float>(), rows, kw, centre, cin, cout};
  }
};

at::Tensor pixelcnn_sample(at::TensorList caches, at::Tensor& levels, at::Tensor& position, at::TensorList weights,
                           at::IntArrayRef dims, const std::optional<at::Tensor>& cond,
                           const std::optional<at::Tensor>& uniforms, int64_t pixels) {
  TORCH_CHECK(dims.size() >= 6, kOp, ": dims must start [kind, H, W, C, K, L], got ", dims);
  const int64_t kind = dims[0], H = dims[1], W = dims[2], C = dims[3], K = dims[4], L = dims[5];
  TORCH_CHECK(kind == kPixelCnnKind || kind == kGatedPixelCnnKind, kOp, ": dims[0] (kind) must be 0 (PixelCNN) or 1 ",
              "(Gated PixelCNN), got ", kind);
  TORCH_CHECK(H >= 1 && W >= 1 && (C == 1 || C == 3) && (K == 1 || K == 256) && L >= 1, kOp,
              ": dims H, W, C, K, L = ", H, ", ", W, ", ", C, ", ", K, ", ", L, " are not a PixelCNN's");
  const SamplerChunk chunk = check_sampler_chunk(kOp, levels, position, pixels, C, H, W);
  const int64_t n = chunk.n, start = chunk.start;

  // weights, each checked against the chain of widths
  const int64_t G = C, Cimg = 8 * C;
  WeightReader rd{weights, dims};
  const at::Tensor& table = rd.take("input_table");
  check_float(table, "input_table", {K == 1 ? 2 : 256});
  std::vector<SamplerConv> conv_a, conv_b;
  std::vector<SamplerDense> dense_a, dense_b;
  const SamplerDense head1 = rd.dense(-1, G, "head1");
  const int64_t head_in = head1.cin;
  const SamplerDense head2 = rd.dense(head1.cout, G, "head2");
  TORCH_CHECK(head2.cout == G * (K == 1 ? 8 : K), kOp, ": head2 has ", head2.cout, " outputs, expected ",
              G * (K == 1 ? 8 : K), " (", C, " channels of ", K, " logits, padded)");
  std::vector<SamplerRing> rings;
  auto ring = [&](int64_t i, int64_t rows, int64_t pad, int64_t ch, const std::string& name) {
    TORCH_CHECK(i < int64_t(caches.size()), kOp, ": caches has ", caches.size(), " tensors, too few (missing ", name,
                ")");
    check_float(caches[i], "caches[" + std::to_string(i) + "] (" + name + ")", {n, rows, W + 2 * pad, ch});
    rings.push_back(SamplerRing{caches[i].mutable_data_ptr<float>(), rows * (W + 2 * pad) * ch, rows, W + 2 * pad,
                                ch, pad});
  };
  float* links = nullptr;
  int64_t cond_width = 0, expected_caches = 0;
  if (kind == kPixelCnnKind) {
    conv_a.push_back(rd.conv(Cimg, G, "first conv"));
    const int64_t Y = conv_a[0].cout;
    for (int64_t l = 0; l < L; ++l) {
      const std::string block = "block " + std::to_string(l);
      dense_a.push_back(rd.dense(Y, G, block + " reduce"));
      conv_b.push_back(rd.conv(dense_a[l].cout, G, block + " conv"));
      TORCH_CHECK(conv_b[l].cout == dense_a[l].cout, kOp, ": ", block, " conv must keep the reduce width");
      dense_b.push_back(rd.dense(conv_b[l].cout, G, block + " expand"));
      TORCH_CHECK(dense_b[l].cout == Y, kOp, ": ", block, " expand must return to the residual width ", Y);
    }
    TORCH_CHECK(head_in == Y, kOp, ": head1 must read the residual width ", Y, ", got ", head_in);
    ring(0, conv_a[0].rows, conv_a[0].kw / 2, Cimg, "image ring");
    for (int64_t l = 0; l < L; ++l) ring(1 + l, conv_b[l].rows, conv_b[l].kw / 2, conv_b[l].cin, "block ring");
    expected_caches = 1 + L;
  } else {
    for (int64_t l = 0; l < L; ++l) {
      const std::string layer = "layer " + std::to_string(l);
      const int64_t vin = l == 0 ? Cimg : conv_a[0].cout / 2, hin = l == 0 ? Cimg : dense_b[0].cout;
      conv_a.push_back(rd.conv(vin, 1, layer + " vertical"));
      conv_b.push_back(rd.conv(hin, G, layer + " horizontal"));
      TORCH_CHECK(conv_b[l].rows == 1 && conv_b[l].kw == conv_a[l].kw, kOp, ": ", layer,
                  " horizontal must be one row as wide as the vertical kernel");
      dense_a.push_back(rd.dense(conv_a[l].cout, G, layer + " link"));
      TORCH_CHECK(dense_a[l].cout == conv_b[l].cout, kOp, ": ", layer, " link must match the horizontal width");
      dense_b.push_back(rd.dense(conv_b[l].cout / 2, G, layer + " out"));
      TORCH_CHECK(conv_a[l].cout == conv_a[0].cout && conv_b[l].cout == conv_b[0].cout &&
                      dense_b[l].cout == conv_b[l].cout / 2,
                  kOp, ": ", layer, " widths differ from layer 0's");
    }
    const int64_t Pv = conv_a[0].cout / 2, Ph = dense_b[0].cout, P2h = conv_b[0].cout, pad = conv_a[0].kw / 2;
    TORCH_CHECK(head_in == Ph, kOp, ": head1 must read the horizontal width ", Ph, ", got ", head_in);
    ring(0, conv_a[0].rows, pad, Cimg, "image ring");
    for (int64_t l = 1; l < L; ++l) ring(l, conv_a[0].rows, pad, Pv, "vertical input ring");
    for (int64_t l = 1; l < L; ++l) ring(L - 1 + l, 1, pad, Ph, "horizontal input row");
    const int64_t li = 2 * L - 1;
    TORCH_CHECK(li < int64_t(caches.size()), kOp, ": caches has ", caches.size(), " tensors, too few (missing links)");
    check_float(caches[li], "caches[" + std::to_string(li) + "] (links)", {n, L, W, P2h});
    links = caches[li].mutable_data_ptr<float>();
    cond_width = conv_a[0].cout + P2h;
    expected_caches = 2 * L;
  }
  TORCH_CHECK(rd.next == int64_t(weights.size()), kOp, ": weights has ", weights.size(), " tensors, the plan uses ",
              rd.next);
  TORCH_CHECK(int64_t(dims.size()) == 6 + 3 * rd.next_conv, kOp, ": dims has ", dims.size(), " entries, the plan uses ",
              6 + 3 * rd.next_conv);
  TORCH_CHECK(int64_t(caches.size()) == expected_caches, kOp, ": caches has ", caches.size(), " tensors, expected ",
              expected_caches);

  const float* cond_ptr = nullptr;
  if (cond.has_value()) {
    TORCH_CHECK(kind == kGatedPixelCnnKind, kOp, ": cond is for a class-conditional Gated PixelCNN only");
    check_float(*cond, "cond", {n, L, cond_width});
    cond_ptr = cond->const_data_ptr<float>();
  }
  const float* u = nullptr;
  at::Tensor logits = sampler_logits(kOp, levels, uniforms, chunk, pixels, C, K, table.size(0), &u);

  const SamplerPlan plan{kind, H, W, C, K, L, table.const_data_ptr<float>(), conv_a.data(), conv_b.data(),
                         dense_a.data(), dense_b.data(), head1, head2};
  const int64_t HW = H * W;
  // Rows are independent: each thread runs its rows through every pixel of the chunk.
  at::parallel_for(0, n, 1, [&](int64_t b0, int64_t b1) {
    std::vector<SamplerRing> mine(rings);
    for (auto& r : mine) r.data += b0 * r.batch_stride;
    const SamplerState s{mine.data(),
                         links == nullptr ? nullptr : links + b0 * L * W * conv_b[0].cout,
                         levels.mutable_data_ptr<int64_t>() + b0 * C * HW,
                         start,
                         pixels,
                         cond_ptr == nullptr ? nullptr : cond_ptr + b0 * L * cond_width,
                         u == nullptr ? nullptr : u + b0 * C * pixels,
                         u == nullptr ? logits.mutable_data_ptr<float>() + b0 * pixels * C * K : nullptr};
    std::vector<float> scratch(sampler_scratch_floats(plan, b1 - b0), 0.0f);
    kernels().run(plan, s, b1 - b0, scratch.data());
  });
  position.fill_(start + pixels);
  return logits;
}

}  // namespace
}  // namespace cpu
}  // namespace fastgen

TORCH_LIBRARY_IMPL(fastgen, CPU, m) {
  m.impl("pixelcnn_sample", &fastgen::cpu::pixelcnn_sample);
}
