// Torch-free entry points of the CPU masked-convolution kernels (masked_conv_kernels_impl.h), built
// per instruction set like the other families. The torch binding (masked_conv.cpp) lays each image
// out as a zero-padded "grid": channel rows of a flat image of width Wp = W + 2 (kw / 2), so that a
// tap of the kernel is one constant shift of the flat index, borders included, and a convolution is a
// sum over the live taps of shifted channel-by-channel products (no im2col, no masked tap visited).
#pragma once

#include <cstdint>

namespace fastgen {
namespace cpu {

// out[m, p] = sum over live taps t, k in the tap's range of weights[t, k, m] * in[k, p + offsets[t]]
// for the rows m of a forward (m = output channel, k = input channel) or of grad_x (m = input
// channel, k = output channel, transposed taps). Off the centre every k is in range; at the centre
// tap (index `centre`, -1 when it is dead) row m takes k in [kbeg[m], kend[m]) -- the colour groups.
template <typename T>
struct ConvPlan {
  int64_t M, K, ntaps, centre;
  const int64_t* offsets;  // [ntaps] flat shift of each live tap
  const int64_t* kbeg;     // [M]
  const int64_t* kend;     // [M]
  const T* weights;        // [ntaps, K, M]; masked entries inside a range are zero
  const T* in;             // [K, in_stride] one image's grid
  int64_t in_stride;
  int64_t P;  // grid columns computed per row: a multiple of 16
};

// grad_weight of one tap: out[co, ci] = sum_b sum_q g[b, co, q] * x[b, ci, q + offset] for q in
// [0, P); g is zero off the image, so every product outside it vanishes.
template <typename T>
struct WeightGradPlan {
  int64_t B, P;
  const T* g;  // [B, Cout, g_stride]
  int64_t g_image, g_stride;
  const T* x;  // [B, Cin, x_stride], x may be read at negative offsets down to -(kw / 2)
  int64_t x_image, x_stride;
};

template <typename T>
struct MaskedConvKernels {
  // rows [m0, m1) of one image into grid [m1 - m0, P]
  void (*conv)(const ConvPlan<T>&, int64_t m0, int64_t m1, T* grid);
  // out[co - co0, ci] (row stride ld) for co in [co0, co1), ci in [0, ci_end)
  void (*weight_grad)(const WeightGradPlan<T>&, int64_t offset, int64_t co0, int64_t co1, int64_t ci_end, T* out,
                      int64_t ld);
};

namespace generic {
template <typename T>
MaskedConvKernels<T> masked_conv_kernels();
}
namespace avx2 {
template <typename T>
MaskedConvKernels<T> masked_conv_kernels();
}

}  // namespace cpu
}  // namespace fastgen
