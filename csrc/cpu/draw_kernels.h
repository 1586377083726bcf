// Torch-free entry point of the fused DRAW sampler: the whole generative pass of a DRAW model with
// write attention (decoder LSTM, patch and window heads, Gaussian write into the canvas) for T steps
// in one call, so batch-1 sampling pays no per-step dispatch. Built per ISA like the attention
// kernels (kernels_generic.cpp, kernels_avx2.cpp).
#pragma once

#include <cstdint>

#include "attention_kernels.h"

namespace fastgen {
namespace cpu {

struct DrawDims {
  int64_t T, B, Z, D;  // steps, batch, latent size, decoder LSTM size
  AttentionDims write;  // channels, canvas height and width, write patch size N
};

template <typename T>
struct DrawWeights {
  const T* w_ih;      // [4D, Z]   decoder LSTMCell, gate order (i, f, g, o) as torch.nn.LSTMCell
  const T* w_hh;      // [4D, D]
  const T* bias;      // [4D]      b_ih + b_hh
  const T* w_patch;   // [C N N, D] write patch head
  const T* b_patch;   // [C N N]
  const T* w_window;  // [5, D]    write window head
  const T* b_window;  // [5]
};

// Elements of the packed gate weights [W_ih | W_hh]: panels of 8 rows, columns padded to 8 (an
// upper bound for either build's vector width).
inline int64_t draw_packed_elems(const DrawDims& d) {
  const auto pad8 = [](int64_t n) { return (n + 7) / 8 * 8; };
  return pad8(4 * d.D) * pad8(d.Z + d.D);
}

// Scratch elements one worker needs: the attention scratch and the step vectors, each piece rounded
// to a whole vector.
inline int64_t draw_scratch_elems(const DrawDims& d) {
  const int64_t patch = d.write.C * d.write.N * d.write.N;
  return attention_scratch_elems(d.write) + (d.Z + d.D + 8) + 5 * d.D + patch + 8 + 16 * 8;
}

template <typename T>
struct DrawKernels {
  // packed[draw_packed_elems(d)] = the decoder's gate weights in the layout generate reads; once per call
  void (*pack_gate_weights)(const DrawDims&, const DrawWeights<T>& w, T* packed);
  // canvas[b] (logits, zero-initialised by the caller) for examples [b0, b1); noise is [T, B, Z]
  void (*generate)(const DrawDims&, const T* noise, const DrawWeights<T>& w, const T* packed, T* canvas,
                   int64_t b0, int64_t b1, T* scratch);
};

namespace generic {
template <typename T>
DrawKernels<T> draw_kernels();
}
namespace avx2 {
template <typename T>
DrawKernels<T> draw_kernels();
}

}  // namespace cpu
}  // namespace fastgen
