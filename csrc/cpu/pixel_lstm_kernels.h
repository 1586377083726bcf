// Torch-free entry points of the CPU PixelRNN recurrences (pixel_lstm_kernels_impl.h): the Row LSTM
// and one direction of the Diagonal BiLSTM over one image, built per instruction set like the other
// families; the torch binding (pixel_lstm.cpp) packs the weights, threads over images and forms the
// state-to-state weight gradient as one product over all steps.
//
// Layout: pixel-major (channels last) within an image, so that one cell's channels are contiguous
// and the cells of a row, or of a diagonal, are rows of a matrix at a constant stride -- the
// operands of one small GEMM per step (fastgen/small_gemm.h), read in place:
//   pre, grad_pre  [H, W, 4h]  gates ordered o, f, i, g
//   h, grad_h, c   [H, W, h]
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

// State-to-state weights packed by the binding as GEMM operands, G = padded(4h), HP = padded(h)
// (padding columns zero):
//   Row LSTM   forward   [k h, G]    row t h + j, column m   = w_ss[m, j, t]
//              backward  [k 4h, HP]  row t' 4h + m, column j = w_ss[m, j, k - 1 - t']
//   Diagonal   forward   2 x [h, G]  (above, left): row j, column m = w_ss[m, j, 0 | 1]
//              backward  2 x [4h, HP] (above, left): row m, column j = w_ss[m, j, 0 | 1]
template <typename T>
struct PixelLstmKernels {
  // One image: h, c, act from pre (+ bias [4h] for the Row LSTM; may be null).
  void (*row_forward)(const PixelLstmDims&, const T* pre, const T* w, const T* bias, T* h, T* c, T* act);
  // One image: grad_pre from grad_h and the forward's h, c, act, walking the rows upwards.
  void (*row_backward)(const PixelLstmDims&, const T* grad_h, const T* c, const T* act, const T* w, T* grad_pre);
  void (*diagonal_forward)(const PixelLstmDims&, const T* pre, const T* w_above, const T* w_left, T* h, T* c, T* act);
  void (*diagonal_backward)(const PixelLstmDims&, const T* grad_h, const T* c, const T* act, const T* w_above,
                            const T* w_left, T* grad_pre);
};

namespace generic {
template <typename T>
PixelLstmKernels<T> pixel_lstm_kernels();
}
namespace avx2 {
template <typename T>
PixelLstmKernels<T> pixel_lstm_kernels();
}

}  // namespace cpu
}  // namespace fastgen
