// Torch-free entry points of the CPU masked-convolution kernels (masked_conv_kernels_impl.h), built
// per instruction set like the other families. The torch binding (masked_conv.cpp) lays each image
// out as a zero-padded "grid": channel rows of a flat image of width Wp = W + 2 (kw / 2), so that a
// tap of the kernel is one constant shift of the flat index, borders included: the forward and grad_x
// are sums over the live taps of shifted channel-by-channel products (no im2col, no masked tap
// visited), grad_weight a GEMM over an im2col of the live taps, one tile of image rows at a time.
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
  int64_t P;  // grid columns computed per row: a multiple of 32
};

// grad_weight as one GEMM per tile of image rows: for the tile's pixels p,
//   acc[col, co] += sum_p xcol[col, p] * g[co, p],   col = (live tap t, input channel ci < its range),
// xcol[col, p] = x grid at pixel p shifted by offsets[t] (the tile's im2col of the live taps only). A
// tile's grad_out is read once, transposed to [p, co] so that co runs along the vector lanes, and
// serves every live tap. Columns of tap t: [col_begin[t], col_begin[t + 1]), input channels from 0.
template <typename T>
struct WeightGradPlan {
  int64_t H, W, Wp, cout, ntaps;
  const int64_t* offsets;    // [ntaps] the forward shift of each live tap
  const int64_t* col_begin;  // [ntaps + 1]
  const T* x;                // [B, Cin, x_stride] grids; pixel (y, x) of tap t at y * Wp + x + offsets[t]
  int64_t x_image, x_stride;
  const T* g;    // [B, Cout, H, W] grad_out, contiguous
  int64_t rows;   // image rows per tile
  int64_t width;  // Cout padded to a multiple of 32: the columns of acc computed
  int64_t ldc;    // the row stride of acc and of the transposed tile, >= width

  int64_t tiles() const { return (H + rows - 1) / rows; }
  int64_t columns() const { return col_begin[ntaps]; }
  // elements of the scratch one weight_grad call needs: xcol [columns, rows * W] and gt [rows * W, ldc]
  int64_t scratch() const { return rows * W * (columns() + ldc); }
};

template <typename T>
struct MaskedConvKernels {
  // rows [m0, m1) of one image into grid [m1 - m0, P]
  void (*conv)(const ConvPlan<T>&, int64_t m0, int64_t m1, T* grid);
  // acc [columns, ldc] += the products of the tiles u in [u0, u1) (image u / tiles(), tile u % tiles())
  void (*weight_grad)(const WeightGradPlan<T>&, int64_t u0, int64_t u1, T* acc, T* scratch);
};

namespace generic {
template <typename T>
MaskedConvKernels<T> masked_conv_kernels();
}
namespace avx2 {
template <typename T>
MaskedConvKernels<T> masked_conv_kernels();
}
namespace avx512 {  // masked_conv_avx512.cpp: AVX-512 registers of 16 floats (AVX2's are 8)
template <typename T>
MaskedConvKernels<T> masked_conv_kernels();
}

}  // namespace cpu
}  // namespace fastgen
