// Torch-free entry points of the CPU PixelRNN recurrences (pixel_lstm_kernels_impl.h): the Row LSTM
// and one direction of the Diagonal BiLSTM over one image, built per instruction set like the other
// families; the torch binding (pixel_lstm.cpp) packs the weights, threads over images and forms the
// state-to-state weight gradient as one product over all steps.
//
// Layout: pixel-major (channels last) within an image, so that one cell's channels are contiguous
// and the cells of a row, or of a diagonal, are rows of a matrix at a constant stride -- the
// operands of one small GEMM per step (step_gemm in pixel_lstm_kernels_impl.h), read in place:
//   grad_pre       [H, W, 4h]  gates ordered o, f, i, g
//   h, c           [H, W, h]
// The two inputs a caller hands over, pre [4h, H, W] and grad_h [h, H, W], are read in whatever
// layout they come (PlaneStrides): each step gathers its cells into a padded scratch matrix anyway,
// so a copy to channels last beforehand only added a pass over the largest tensor.
//   act            [H, W, 5h]  sigmoid i, sigmoid f, tanh g, sigmoid o, tanh c (what the backward uses)
// The Diagonal LSTM never builds the skewed image: step d is the diagonal r + x' = d of the (possibly
// mirrored, x' = W - 1 - x) image, its cells at a constant stride in these tensors.
#pragma once

#include <cstdint>

namespace fastgen {
namespace cpu {

struct PixelLstmDims {
  int64_t H, W, hidden;
  int64_t k;     // Row LSTM: taps of the state-to-state convolution along the previous row (odd)
  bool reverse;  // Diagonal LSTM: the right-to-left direction (columns mirrored by index arithmetic)
};

// Element strides of one image [C, H, W] of a caller's tensor (any layout, e.g. NCHW or channels last).
struct PlaneStrides {
  int64_t channel, row, col;
};

// Columns of the packed weights and of the kernels' scratch matrices are padded to 64 bytes, a whole
// number of vectors in every build (AVX-512 included).
constexpr int64_t kPixelLstmPadBytes = 64;
template <typename T>
inline int64_t pad_columns(int64_t n) {
  constexpr int64_t lanes = kPixelLstmPadBytes / sizeof(T);
  return (n + lanes - 1) / lanes * lanes;
}

// State-to-state weights packed by the binding as GEMM operands, G = pad_columns(4h),
// HP = pad_columns(h) (padding columns zero):
//   Row LSTM   forward   [k h, G]    row t h + j, column m   = w_ss[m, j, t]
//              backward  [k 4h, HP]  row t' 4h + m, column j = w_ss[m, j, k - 1 - t']
//   Diagonal   forward   2 x [h, G]  (above, left): row j, column m = w_ss[m, j, 0 | 1]
//              backward  2 x [4h, HP] (above, left): row m, column j = w_ss[m, j, 0 | 1]
template <typename T>
struct PixelLstmKernels {
  // One image: h, c, act from pre (+ bias [4h] for the Row LSTM; may be null).
  void (*row_forward)(const PixelLstmDims&, const T* pre, PlaneStrides, const T* w, const T* bias, T* h, T* c,
                      T* act);
  // One image: grad_pre from grad_h and the forward's h, c, act, walking the rows upwards.
  void (*row_backward)(const PixelLstmDims&, const T* grad_h, PlaneStrides, const T* c, const T* act, const T* w,
                       T* grad_pre);
  void (*diagonal_forward)(const PixelLstmDims&, const T* pre, PlaneStrides, const T* w_above, const T* w_left, T* h,
                           T* c, T* act);
  void (*diagonal_backward)(const PixelLstmDims&, const T* grad_h, PlaneStrides, const T* c, const T* act,
                            const T* w_above, const T* w_left, T* grad_pre);
};

namespace generic {
template <typename T>
PixelLstmKernels<T> pixel_lstm_kernels();
}
namespace avx2 {
template <typename T>
PixelLstmKernels<T> pixel_lstm_kernels();
}
namespace avx512 {  // pixel_lstm_avx512.cpp
template <typename T>
PixelLstmKernels<T> pixel_lstm_kernels();
}

}  // namespace cpu
}  // namespace fastgen
