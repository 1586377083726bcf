// Torch binding of the fast cached PixelRNN sampler (pixelrnn_sampler_kernels.h): argument checks
// against the plan's dims, threading over independent batch rows, and the run-time choice between the
// generic and AVX2 builds.
//
// dims = [kind (0 Row LSTM, 1 Diagonal BiLSTM), H, W, C, K, L, skips (0/1), taps (state-to-state:
//         the Row LSTM's k, the Diagonal's 2), first rows, first kw, first centre, in kw, in centre]
// weights (float32, contiguous): [input_table, head1 w, b, head2 w, b, first w, b] then per layer
//   input-to-state w, b (Diagonal: the left direction's, then the right's w, b), state-to-state w
//   (Diagonal: left, right), out w, b (and skip w, b with skips).
// caches: the image ring, then per layer the rings of the header comment.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <optional>
#include <string>
#include <vector>

#include "fastgen/isa_dispatch.h"
#include "fastgen/sampler_checks.h"
#include "pixelrnn_sampler_kernels.h"

namespace fastgen {
namespace cpu {
namespace {

constexpr const char* kOp = "pixelrnn_sample";
constexpr int64_t kDims = 13;

const RnnSamplerKernels& kernels() {
  return isa_table<&avx2::rnn_sampler_kernels, &generic::rnn_sampler_kernels>();
}

void check_float(const at::Tensor& t, const std::string& name, at::IntArrayRef shape) {
  check_sampler_float(kOp, t, name, shape);
}

// Reads the weights list in order, checking each against the shape the plan's widths imply.
struct WeightReader {
  at::TensorList weights;
  int64_t next = 0;

  const float* take(const std::string& name, at::IntArrayRef shape) {
    TORCH_CHECK(next < int64_t(weights.size()), kOp, ": weights has ", weights.size(), " tensors, too few for the ",
                "plan's layers (missing ", name, ")");
    check_float(weights[next], name, shape);
    return weights[next++].const_data_ptr<float>();
  }
  // The next weight's output width: a positive multiple of 8 per colour group.
  int64_t width(int64_t G, const std::string& name) {
    TORCH_CHECK(next < int64_t(weights.size()), kOp, ": weights lacks ", name);
    const at::Tensor& w = weights[next];
    TORCH_CHECK(w.dim() == 2 && w.size(1) > 0 && w.size(1) % (8 * G) == 0, kOp, ": ", name,
                " must be 2-D [rows, cout] with cout a positive multiple of 8 per colour group (", G, "), got ",
                w.sizes());
    return w.size(1);
  }
  SamplerDense dense(int64_t cin, int64_t cout, const std::string& name) {
    const float* w = take(name + " weight", {cin, cout});
    return SamplerDense{w, take(name + " bias", {cout}), cin, cout};
  }
  SamplerConv conv(int64_t rows, int64_t kw, int64_t centre, int64_t cin, int64_t cout, const std::string& name) {
    TORCH_CHECK(rows >= 1 && kw >= 1 && kw % 2 == 1 && centre >= 0 && centre <= kw, kOp, ": ", name,
                " geometry (rows, kw, centre) = (", rows, ", ", kw, ", ", centre, ") is not a causal kernel's");
    const float* w = take(name + " weight", {((rows - 1) * kw + centre) * cin, cout});
    return SamplerConv{w, take(name + " bias", {cout}), rows, kw, centre, cin, cout};
  }
};

at::Tensor pixelrnn_sample(at::TensorList caches, at::Tensor& levels, at::Tensor& position, at::TensorList weights,
                           at::IntArrayRef dims, const std::optional<at::Tensor>& uniforms, int64_t pixels) {
  TORCH_CHECK(dims.size() == kDims, kOp, ": dims must have ", kDims, " entries [kind, H, W, C, K, L, skips, taps, ",
              "first rows, first kw, first centre, in kw, in centre], got ", dims);
  const int64_t kind = dims[0], H = dims[1], W = dims[2], C = dims[3], K = dims[4], L = dims[5], skips = dims[6],
                taps = dims[7];
  TORCH_CHECK(kind == kRowLstmKind || kind == kDiagonalBiLstmKind, kOp,
              ": dims[0] (kind) must be 0 (Row LSTM) or 1 (Diagonal BiLSTM), got ", kind);
  TORCH_CHECK(H >= 1 && W >= 1 && (C == 1 || C == 3) && (K == 1 || K == 256) && L >= 1 && (skips == 0 || skips == 1),
              kOp, ": dims H, W, C, K, L, skips = ", H, ", ", W, ", ", C, ", ", K, ", ", L, ", ", skips,
              " are not a PixelRNN's");
  const int64_t in_kw = dims[11], in_centre = dims[12];
  TORCH_CHECK(kind == kRowLstmKind ? (taps >= 3 && taps % 2 == 1 && in_kw == taps && in_centre == taps / 2 + 1)
                                   : (taps == 2 && in_kw == 1 && in_centre == 1),
              kOp, ": dims taps, in kw, in centre = ", taps, ", ", in_kw, ", ", in_centre, " do not fit the ",
              kind == kRowLstmKind ? "Row LSTM (k odd >= 3, a 1 x k mask-B input-to-state)"
                                   : "Diagonal BiLSTM (2 state taps, a 1x1 input-to-state)");
  const SamplerChunk chunk = check_sampler_chunk(kOp, levels, position, pixels, C, H, W);
  const int64_t n = chunk.n, start = chunk.start;

  // weights, each checked against the widths of the plan
  const int64_t G = C, Cimg = 8 * C;
  WeightReader rd{weights};
  const float* table = rd.take("input_table", {K == 1 ? 2 : 256});
  TORCH_CHECK(rd.next < int64_t(weights.size()) && weights[rd.next].dim() == 2, kOp, ": weights lacks head1 weight");
  const int64_t Y = weights[rd.next].size(0), O = rd.width(G, "head1 weight");
  const SamplerDense head1 = rd.dense(Y, O, "head1");
  const SamplerDense head2 = rd.dense(O, G * (K == 1 ? 8 : K), "head2");
  const SamplerConv first = rd.conv(dims[8], dims[9], dims[10], Cimg, Y, "first conv");
  TORCH_CHECK(Y > 0 && Y % (8 * G) == 0, kOp, ": the residual width ", Y, " is not a multiple of 8 per colour group");
  const int64_t Gw = rd.width(G, "layer 0 input-to-state weight"), Hd = Gw / 4;
  TORCH_CHECK(Gw % (32 * G) == 0, kOp, ": the gate width ", Gw, " is not 4 gates of a multiple of 8 per colour group");
  std::vector<RnnSamplerLayer> layers;
  for (int64_t l = 0; l < L; ++l) {
    const std::string name = "layer " + std::to_string(l);
    RnnSamplerLayer layer{};
    layer.in_left = rd.conv(1, in_kw, in_centre, Y, Gw, name + " input-to-state");
    if (kind == kDiagonalBiLstmKind) layer.in_right = rd.dense(Y, Gw, name + " right input-to-state");
    layer.ss_left = rd.take(name + " state-to-state weight", {taps * Hd, Gw});
    if (kind == kDiagonalBiLstmKind) layer.ss_right = rd.take(name + " right state-to-state weight", {taps * Hd, Gw});
    layer.out = rd.dense(Hd, Y, name + " out");
    if (skips) layer.skip = rd.dense(Hd, Y, name + " skip");
    layers.push_back(layer);
  }
  TORCH_CHECK(rd.next == int64_t(weights.size()), kOp, ": weights has ", weights.size(), " tensors, the plan uses ",
              rd.next);

  // caches, each checked against the ring it must be
  std::vector<SamplerRing> rings;
  auto ring = [&](int64_t rows, int64_t pad, int64_t ch, const std::string& name) {
    const int64_t i = rings.size();
    TORCH_CHECK(i < int64_t(caches.size()), kOp, ": caches has ", caches.size(), " tensors, too few (missing ", name,
                ")");
    check_float(caches[i], "caches[" + std::to_string(i) + "] (" + name + ")", {n, rows, W + 2 * pad, ch});
    rings.push_back(SamplerRing{caches[i].mutable_data_ptr<float>(), rows * (W + 2 * pad) * ch, rows, W + 2 * pad,
                                ch, pad});
  };
  ring(first.rows, first.kw / 2, Cimg, "image ring");
  for (int64_t l = 0; l < L; ++l) {
    const std::string name = "layer " + std::to_string(l);
    if (kind == kRowLstmKind) {
      ring(1, taps / 2, Y, name + " input row");
      ring(2, taps / 2, Hd, name + " h rows");
      ring(2, 0, Hd, name + " c rows");
    } else {
      ring(1, 0, Y, name + " input row");
      ring(2, 1, Hd, name + " left h rows");
      ring(1, 1, Hd, name + " left c row");
      ring(2, 1, Hd, name + " right h rows");
      ring(1, 1, Hd, name + " right c row");
    }
  }
  TORCH_CHECK(rings.size() == caches.size(), kOp, ": caches has ", caches.size(), " tensors, expected ", rings.size());

  const float* u = nullptr;
  at::Tensor logits = sampler_logits(kOp, levels, uniforms, chunk, pixels, C, K, K == 1 ? 2 : 256, &u);

  const RnnSamplerPlan plan{kind, H, W, C, K, L, Y, Hd, taps, table, first, layers.data(), head1, head2};
  const int64_t HW = H * W;
  int64_t* levels_ptr = levels.mutable_data_ptr<int64_t>();
  float* logits_ptr = u == nullptr ? logits.mutable_data_ptr<float>() : nullptr;
  // Images are independent: each thread runs its images, one at a time, through every pixel of the chunk.
  at::parallel_for(0, n, 1, [&](int64_t b0, int64_t b1) {
    std::vector<SamplerRing> mine(rings);
    std::vector<float> scratch(rnn_sampler_scratch_floats(plan), 0.0f);
    for (int64_t b = b0; b < b1; ++b) {
      for (size_t i = 0; i < rings.size(); ++i) mine[i].data = rings[i].data + b * rings[i].batch_stride;
      const RnnSamplerState s{mine.data(), levels_ptr + b * C * HW, start, pixels,
                              u == nullptr ? nullptr : u + b * C * pixels,
                              logits_ptr == nullptr ? nullptr : logits_ptr + b * pixels * C * K};
      kernels().run(plan, s, scratch.data());
    }
  });
  position.fill_(start + pixels);
  return logits;
}

}  // namespace
}  // namespace cpu
}  // namespace fastgen

TORCH_LIBRARY_IMPL(fastgen, CPU, m) {
  m.impl("pixelrnn_sample", &fastgen::cpu::pixelrnn_sample);
}
