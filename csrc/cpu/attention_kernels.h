// Torch-free entry points of the CPU attention kernels.
//
// The kernels are compiled twice, for plain x86-64 and for AVX2+FMA (kernels_generic.cpp,
// kernels_avx2.cpp), and the binding picks one at run time, so a wheel runs on any x86-64
// and still uses 8-wide FMAs where the CPU has them. Each call handles examples [b0, b1) with caller
// supplied scratch, so threading and allocation stay in the torch-facing code.
#pragma once

#include <cstdint>

namespace fastgen {
namespace cpu {

struct AttentionDims {
  int64_t C, H, W, N;  // channels, image height and width, patch size
};

// Element strides of a [B, C, H, W] image-sized input. Images are read through these (they are
// copied into padded scratch anyway), so sliced, channels-last or broadcast inputs, such as the
// expanded gradient of image.sum(), need no contiguous copy first.
struct ImageStrides {
  int64_t b, c, h, w;
};

// Scratch elements one worker needs for any of the four kernels (an upper bound of
// attention_kernels_impl.h's use: matrices whose rows, and row counts, are padded to 8 elements,
// plus the rounding of each of at most 16 pieces to a whole vector). The scratch must be
// zero-initialised.
inline int64_t attention_scratch_elems(const AttentionDims& d) {
  const auto pad = [](int64_t n) { return (n + 7) / 8 * 8; };
  const int64_t Wp = pad(d.W), Hp = pad(d.H), Np = pad(d.N);
  return 6 * Np * Wp + Np * Np + 2 * Np * Hp + 2 * Hp * Wp + Hp * Np + 16 * 8;
}

template <typename T>
struct AttentionKernels {
  // out[b] = gamma Fy x[b] Fx^T
  void (*read_forward)(const AttentionDims&, const T* x, const ImageStrides& xs, const T* params, T* out,
                       int64_t b0, int64_t b1, T* scratch);
  void (*read_backward)(const AttentionDims&, const T* grad_out, const T* x, const ImageStrides& xs,
                        const T* params, T* grad_x, T* grad_params, int64_t b0, int64_t b1, T* scratch);
  // out[b] = (1/gamma) Fy^T w[b] Fx, added to what out holds when accumulate
  void (*write_forward)(const AttentionDims&, const T* w, const T* params, T* out, bool accumulate, int64_t b0,
                        int64_t b1, T* scratch);
  void (*write_backward)(const AttentionDims&, const T* grad_out, const ImageStrides& gs, const T* w,
                         const T* params, T* grad_w, T* grad_params, int64_t b0, int64_t b1, T* scratch);
};

namespace generic {
template <typename T>
AttentionKernels<T> attention_kernels();
}
namespace avx2 {
template <typename T>
AttentionKernels<T> attention_kernels();
}

}  // namespace cpu
}  // namespace fastgen
