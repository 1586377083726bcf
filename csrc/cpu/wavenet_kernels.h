// Torch-free entry point of cached WaveNet generation on the CPU: every layer of every sample of a
// set of batch rows in one call, with per-layer ring-buffer queues (fastgen/wavenet_math.h) and
// sampling inside the kernel from caller-supplied uniforms. Built per ISA like the other kernels
// (kernels_generic.cpp, kernels_avx2.cpp).
//
// Packed layout (fastgen.ops.wavenet.pack_weights writes it; widths padded to multiples of 8 with
// zeros: Rp = pad8(R) etc.; W is float or bfloat16 bits, biases and the embedding are float;
// bfloat16 matrices store row pairs interleaved: element (k, p) of an even k and (k+1, p) share one
// 32-bit word, low half first, which needs even R, S and H):
//   embed   [C][Rp]            gate_w [L][k*R][2*Rp]  rows j*R+i = tap j (input (k-1-j)*d back), channel i;
//   gate_b  [L][2*Rp]          columns [tanh half | pad | sigmoid half | pad]
//   res_w   [L-1][R][Rp]       res_b  [L-1][Rp]
//   skip_w  [L][R][Sp]         skip_b [Sp]      (the sum of every layer's skip bias)
//   head1_w [S][Hp]            head1_b [Hp]
//   head2_w [H][Cp]            head2_b [Cp]
//   queues  [B][Q][Rp] float   layer l's ring at rows offset_l .. offset_l + (k-1)*d_l
//   cond    [B][Tc][L][2*Rp]   per-step (Tc = n) or constant (Tc = 1) conditioning, or null
#pragma once

#include <cstdint>

#include "fastgen/wavenet_math.h"

namespace fastgen {
namespace cpu {

constexpr int64_t kMaxWaveNetLayers = 256;

struct WaveNetDims {
  int64_t B, n;              // batch rows, samples in this call
  int64_t C, R, S, H, L, k;  // classes, residual, skip, head widths, layers, kernel size
  int64_t Q;                 // queue rows per batch row (sum of ring lengths)
  const int64_t* dilations;  // [L]
};

template <typename W>
struct WaveNetWeights {
  const float* embed;
  const W* gate_w;
  const float* gate_b;
  const W* res_w;
  const float* res_b;
  const W* skip_w;
  const float* skip_b;
  const W* head1_w;
  const float* head1_b;
  const W* head2_w;
  const float* head2_b;
};

struct WaveNetState {
  float* queues;         // [B][Q][Rp]
  int64_t* positions;    // [B]  time index of each row's next input
  int64_t* last_tokens;  // [B]  each row's next input token
  const float* cond;     // [B][Tc][L][2*Rp] or null
  int64_t cond_row_stride;   // Tc * L * 2 * Rp
  int64_t cond_step_stride;  // L * 2 * Rp, or 0 when Tc = 1
  const float* uniforms;     // [B][n]
  const int64_t* lengths;    // [B]  samples to generate per row (<= n); the rest of a row is -1
  float temperature;         // 0: argmax
  int64_t* out;              // [B][n]
};

// Per-thread scratch for up to d.B rows: layer input, gathered taps, gate pre-activations, gated
// output, skip sum, head hidden, logits, and one cdf.
inline int64_t wavenet_scratch_floats(const WaveNetDims& d) {
  using wavenet::pad8;
  const int64_t Rp = pad8(d.R);
  return d.B * (Rp + pad8(d.k * d.R) + 3 * Rp + pad8(d.S) + pad8(d.H) + pad8(d.C)) + pad8(d.C);
}

template <typename W>
struct WaveNetKernels {
  // Rows [b0, b1) for d.n steps, independent of all other rows.
  void (*generate)(const WaveNetDims&, const WaveNetWeights<W>&, const WaveNetState&, int64_t b0, int64_t b1,
                   float* scratch);
};

namespace generic {
template <typename W>
WaveNetKernels<W> wavenet_kernels();
}
namespace avx2 {
template <typename W>
WaveNetKernels<W> wavenet_kernels();
}

}  // namespace cpu
}  // namespace fastgen
