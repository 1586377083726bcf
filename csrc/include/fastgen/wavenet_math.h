// WaveNet generation's per-element rules, shared by the CPU and CUDA kernels (and tested by ctest).
//
// Ring-buffer queues: layer l keeps its last (k-1)*d inputs in a ring of Q = (k-1)*d slots; the input
// of time t lives in slot t mod Q, so the tap j steps back reads slot (t - j) mod Q and a new input
// overwrites exactly the slot that held the oldest one (read before write). Nothing is shifted.
#pragma once

#include <cmath>
#include <cstdint>

#include "fastgen/macros.h"

namespace fastgen {
namespace wavenet {

// Slot holding the input of time t - back in a ring of q slots (t - back may be negative: slots
// that were never written hold zeros, the causal zero padding).
FASTGEN_INLINE int64_t ring_slot(int64_t t, int64_t back, int64_t q) {
  const int64_t r = (t - back) % q;
  return r < 0 ? r + q : r;
}

// The gated activation unit: tanh(filter) * sigmoid(gate).
FASTGEN_INLINE float gated_unit(float filter, float gate) {
  return tanhf(filter) * (1.0f / (1.0f + expf(-gate)));
}

// Sampling rule shared by every generation path (fastgen.reference.wavenet.sample_tokens): given
// cdf[c] = float(sum_{c' <= c} w[c']) with w >= 0, the first c with cdf[c] > u * cdf[C-1], else C-1.
FASTGEN_INLINE int64_t search_cdf(const float* cdf, int64_t C, float u) {
  const float threshold = u * cdf[C - 1];
  for (int64_t c = 0; c < C; ++c)
    if (cdf[c] > threshold) return c;
  return C - 1;
}

// Round up to a multiple of 8 floats (one AVX2 vector): the padded width of every kernel matrix.
FASTGEN_INLINE int64_t pad8(int64_t n) { return (n + 7) / 8 * 8; }

}  // namespace wavenet
}  // namespace fastgen
