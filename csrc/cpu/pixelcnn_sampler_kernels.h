// Torch-free entry point of the fast cached PixelCNN / Gated PixelCNN sampler on the CPU: a chunk of
// pixels for a set of batch rows in one call, each layer computed only at the pixel being predicted
// (Gated: the vertical stack one row at a time), sampling inside the kernel from caller-supplied
// uniforms. Built per ISA like the other kernels (kernels_generic.cpp, kernels_avx2.cpp).
//
// Channel layouts: every activation vector is [G][S][pad8(C / (G*S))]: G colour groups (3 for colour
// images, 1 otherwise; the vertical stack and the link's input always 1), S = 2 for gate
// pre-activations (tanh half, sigmoid half) and 1 otherwise; padding entries stay zero. A sub-pixel
// pass for colour g computes only output group g of every layer; a mask-B layer's output group g reads
// input groups <= g, which earlier passes of the same pixel left final.
// Weights (fastgen.models.pixelcnn.plan writes them, zero where masked or padded):
//   Dense  w [cin][cout], b [cout]                         (1x1 layers)
//   Conv   w [taps of the kept rows][cin][cout], b [cout]  rows: the kernel's rows up to the centre;
//          every row above keeps kw columns, the centre row its first `centre` columns; taps in
//          raster order, so each row's taps are one contiguous stretch of an input ring's row.
// Caches (the sampler's state; fastgen.models.pixelcnn.fast_sampling allocates them, zeros):
//   a ring [n][rows][pad + W + pad][cin] holds a conv input's last `rows` image rows (row r in slot
//   r mod rows; rows above the image read slots never written, so zeros); the pads are zero columns.
//   PixelCNN: image ring, then each block's kxk input ring.
//   Gated:    image ring (both stacks of layer 0), vertical input rings of layers 1..L-1, horizontal
//             input rows (rings of 1 row) of layers 1..L-1, links [n][L][W][cout of the link]: each
//             layer's link(vertical pre-activation of the row above) for the current row.
#pragma once

#include <cstdint>

namespace fastgen {
namespace cpu {

constexpr int64_t kPixelCnnKind = 0;
constexpr int64_t kGatedPixelCnnKind = 1;

struct SamplerDense {
  const float* w;
  const float* b;
  int64_t cin, cout;
};

struct SamplerConv {
  const float* w;
  const float* b;
  int64_t rows, kw, centre, cin, cout;
};

// Layers by model. PixelCNN: conv_a = {mask-A input conv}, conv_b = the blocks' kxk convs, dense_a =
// the blocks' reduce (2h -> h), dense_b = their expand (h -> 2h). Gated: conv_a = vertical convs,
// conv_b = horizontal convs, dense_a = links, dense_b = the 1x1 outputs.
struct SamplerPlan {
  int64_t kind, H, W, C, K, L;  // C: image channels = colour groups G; K: logits per sub-pixel
  const float* input_table;     // [levels]: the network input of each level
  const SamplerConv* conv_a;
  const SamplerConv* conv_b;
  const SamplerDense* dense_a;
  const SamplerDense* dense_b;
  SamplerDense head1, head2;
};

struct SamplerRing {
  float* data;  // batch row 0 of the rows this call handles
  int64_t batch_stride, rows, width, channels, pad;
  float* at(int64_t b, int64_t r, int64_t c) const {
    const int64_t slot = ((r % rows) + rows) % rows;
    return data + b * batch_stride + (slot * width + pad + c) * channels;
  }
};

struct SamplerState {
  const SamplerRing* rings;  // in the order of the header comment
  float* links;              // Gated: [n][L][W][link cout] (this call's rows), else null
  int64_t* levels;           // [n][C][H][W]
  int64_t position, pixels;  // first pixel (raster index) and pixels in this call
  const float* cond;         // Gated with classes: [n][L][vertical 2p + horizontal 2p] (padded), or null
  const float* uniforms;     // [n][C][pixels], or null: teacher forcing (levels given, logits written)
  float* logits;             // [n][pixels][C][K] when teacher forcing, else null
};

// Per-thread scratch for m batch rows: the per-pixel vectors every pass of a pixel shares (PixelCNN:
// the residual stream and its ReLU per block, the ReLU of each kxk output; Gated: each layer's h and
// gate output, a gate pre-activation, one row of vertical pre-activations), the head's and the
// logits, and one draw's exponentials. static: the same in both ISA builds (see fastgen/macros.h).
static inline int64_t sampler_scratch_floats(const SamplerPlan& p, int64_t m) {
  const int64_t head = m * (2 * p.head1.cout + p.head2.cout) + p.head2.cout;
  if (p.kind == kPixelCnnKind) {
    const int64_t Y = p.conv_a[0].cout, Hh = p.conv_b[0].cout;
    return 2 * (p.L + 1) * m * Y + (p.L + 1) * m * Hh + head;
  }
  const int64_t Ph = p.dense_b[0].cout, P2h = p.conv_b[0].cout, P2v = p.conv_a[0].cout;
  return (2 * p.L + 1) * m * Ph + m * P2h + p.W * P2v + head;
}

struct SamplerKernels {
  // Rows [0, m) of the state's pointers (already offset to this thread's first row).
  void (*run)(const SamplerPlan&, const SamplerState&, int64_t m, float* scratch);
};

namespace generic {
SamplerKernels sampler_kernels();
}
namespace avx2 {
SamplerKernels sampler_kernels();
}

}  // namespace cpu
}  // namespace fastgen
