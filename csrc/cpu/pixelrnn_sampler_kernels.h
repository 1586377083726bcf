// Torch-free entry point of the fast cached PixelRNN sampler on the CPU (Row LSTM and Diagonal
// BiLSTM): a chunk of pixels for a set of batch rows in one call, every layer advanced by one cell
// per pixel and colour pass, sampling inside the kernel from caller-supplied uniforms. Built per ISA
// like the other kernels (kernels_generic.cpp, kernels_avx2.cpp).
//
// Channel layouts (fastgen.models.pixelrnn.plan writes the weights, zero where masked or padded):
// the residual stream y [G][pad8(2h / G)] (width Y), a hidden state h or cell c [G][pad8(h / G)]
// (width Hd), the gates [G][o, f, i, g][pad8(h / G)] (width Gw = 4 Hd): colour group g's slice of
// every gate is one stretch, so a colour pass computes its group's gates, cells and h alone.
// Weights, besides PixelCNN's SamplerDense / SamplerConv layouts (pixelcnn_sampler_kernels.h):
//   input-to-state  a SamplerConv of one kernel row: the Row LSTM's 1 x k mask-B conv keeps its
//                   taps up to the centre; the Diagonal BiLSTM's left 1x1 is the same with one tap.
//   state-to-state  [taps][Hd][Gw]: Row LSTM k taps over columns c - k/2 .. c + k/2 of the row
//                   above; diagonal 2 taps, [0] the cell above, [1] the cell beside (left direction:
//                   column c - 1; right direction, mirrored: column c + 1).
// Caches (the sampler's state; fastgen.models.pixelrnn.fast_sampling allocates them, zeros), rings
// [n][rows][pad + W + pad][channels] as SamplerRing reads them:
//   image ring [first rows][W + 2 pad][8 C] (the mask-A conv's input), then per layer
//   Row LSTM:  y [1][W + 2 p][Y] (the layer input along the current row, p = k / 2),
//              h [2][W + 2 p][Hd], c [2][W][Hd] (the row above and the current row)
//   Diagonal:  y [1][W][Y], left h [2][W + 2][Hd], left c [1][W + 2][Hd], right h [2][W + 2][Hd],
//              right c [1][W + 2][Hd]; the right direction of row r runs once row r is complete
//              and is read one row down (the BiLSTM's shift).
#pragma once

#include <cstdint>

#include "pixelcnn_sampler_kernels.h"

namespace fastgen {
namespace cpu {

constexpr int64_t kRowLstmKind = 0;
constexpr int64_t kDiagonalBiLstmKind = 1;

inline int64_t rnn_rings_per_layer(int64_t kind) { return kind == kRowLstmKind ? 3 : 5; }

struct RnnSamplerLayer {
  SamplerConv in_left;   // input-to-state (the Diagonal BiLSTM's left direction)
  SamplerDense in_right;  // the Diagonal BiLSTM's right direction (w null for the Row LSTM)
  const float* ss_left;   // state-to-state [taps][Hd][Gw]
  const float* ss_right;  // the right direction's, or null
  SamplerDense out;       // 1x1 h -> y
  SamplerDense skip;      // 1x1 h -> the head's input, w null without skip connections
};

struct RnnSamplerPlan {
  int64_t kind, H, W, C, K, L;  // C: image channels = colour groups G; K: logits per sub-pixel
  int64_t Y, Hd, taps;          // widths (header comment); taps: the state-to-state kernel's
  const float* input_table;     // [levels]: the network input of each level
  SamplerConv first;            // the mask-A input conv
  const RnnSamplerLayer* layers;
  SamplerDense head1, head2;
};

struct RnnSamplerState {
  const SamplerRing* rings;  // the image ring, then rnn_rings_per_layer(kind) per layer
  int64_t* levels;           // [n][C][H][W]
  int64_t position, pixels;  // first pixel (raster index) and pixels in this call
  const float* uniforms;     // [n][C][pixels], or null: teacher forcing (levels given, logits written)
  float* logits;             // [n][pixels][C][K] when teacher forcing, else null
};

// Per-thread scratch for one batch row: the residual stream after each layer and the summed skips
// (L + 2 vectors of Y), each layer's output h (L x Hd), one gate vector (Gw), a row of right-direction
// pre-activations (W x Gw), the head's ReLU input (Y), hidden and logits, and one draw's exponentials.
// static: the same in both ISA builds (see fastgen/macros.h).
static inline int64_t rnn_sampler_scratch_floats(const RnnSamplerPlan& p) {
  const int64_t Gw = 4 * p.Hd;
  return (p.L + 3) * p.Y + p.L * p.Hd + (1 + p.W) * Gw + 2 * p.head1.cout + 2 * p.head2.cout;
}

struct RnnSamplerKernels {
  // One batch row (the state's pointers already offset to it).
  void (*run)(const RnnSamplerPlan&, const RnnSamplerState&, float* scratch);
};

namespace generic {
RnnSamplerKernels rnn_sampler_kernels();
}
namespace avx2 {
RnnSamplerKernels rnn_sampler_kernels();
}

}  // namespace cpu
}  // namespace fastgen
