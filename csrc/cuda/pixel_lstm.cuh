// Torch-free launchers of the CUDA kernels for PixelRNN's recurrences: the Row LSTM and one direction
// of the Diagonal BiLSTM, forward and backward (van den Oord et al. 2016, sec. 3.1-3.2).
//
// Plain C++ over the CUDA runtime types, so the torch binding (pixel_lstm_binding.cpp, compiled by the
// host compiler) can include it while the kernels (pixel_lstm.cu) build with nvcc alone.
//
// Semantics: fastgen.reference.pixel_lstm (gates o, f, i, g; zero initial states). Layouts, the same
// as the CPU binding's (csrc/cpu/pixel_lstm.cpp) so that either device's saved state feeds either
// backward: per image, pixel-major (channels last), pixel q = r W + x:
//   h, c      [B, H, W, h]       act  [B, H, W, 5h]: sigmoid i, sigmoid f, tanh g, sigmoid o, tanh c
//   grad_pre  [B, H, W, 4h]      gates o, f, i, g
// pre and grad_h are read in place in any layout (ImageStrides). The state-to-state weight comes
// packed by the binding (two permutes of w_ss [4h, h, k], so that consecutive threads, which own
// consecutive hidden units, read consecutive weights):
//   forward   w_fwd [k, h, 4h]   w_fwd[t, j, m] = w_ss[m, j, t]
//   backward  w_bwd [k, 4h, h]   w_bwd[t, m, j] = w_ss[m, j, t]
// The Diagonal LSTM is k = 2: tap 0 the cell above, tap 1 the cell to the left in the direction's
// column order (reverse: the cell to the right of the image).
// All pointers of one call have the element type T and live on the current device (the backward's
// workspace: pixel_lstm_workspace_bytes). Every launcher is asynchronous on `stream` and returns the
// launch's error.
//
// Types: float, double, __half, __nv_bfloat16; half types are loaded and stored as such (h, c and
// act included), all arithmetic runs in float (double for double).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace fastgen {
namespace cuda {

// Sizes of one call (the binding has checked them: non-empty, one image's tensors int-indexable).
struct PixelLstmShape {
  int64_t B;
  int H, W, hidden;
  int k;         // taps of the state-to-state convolution: odd >= 3 (Row LSTM) or 2 (Diagonal LSTM)
  bool reverse;  // Diagonal LSTM: the right-to-left direction
};

// Element strides of a caller's [B, C, H, W] tensor (any layout: NCHW, channels last, a slice).
struct ImageStrides {
  int64_t image, channel, row, col;
};

// Forward: h, c, act from pre (+ bias [4h], may be null; Row LSTM only).
template <typename T>
cudaError_t row_lstm_forward(const T* pre, ImageStrides ps, const T* w_fwd, const T* bias, T* h, T* c, T* act,
                             const PixelLstmShape& s, cudaStream_t stream);
template <typename T>
cudaError_t diagonal_lstm_forward(const T* pre, ImageStrides ps, const T* w_fwd, T* h, T* c, T* act,
                                  const PixelLstmShape& s, cudaStream_t stream);

// Bytes of the scratch `workspace` a backward needs (acc_bytes: 8 for double, else 4), never read
// before written: the cell gradient each column (Row LSTM) or row (Diagonal LSTM) passes to the step
// before, and the weight-gradient product's partial sums over slices of the cells.
size_t pixel_lstm_workspace_bytes(const PixelLstmShape& s, bool diagonal, size_t acc_bytes);

// Backward: grad_pre from grad_h and the forward's h, c, act (the reverse walk), then grad_w_ss
// [4h, h, k] as one product over every cell of every image.
template <typename T>
cudaError_t row_lstm_backward(const T* grad_h, ImageStrides gs, const T* h, const T* c, const T* act,
                              const T* w_bwd, T* grad_pre, T* grad_w, void* workspace, const PixelLstmShape& s,
                              cudaStream_t stream);
template <typename T>
cudaError_t diagonal_lstm_backward(const T* grad_h, ImageStrides gs, const T* h, const T* c, const T* act,
                                   const T* w_bwd, T* grad_pre, T* grad_w, void* workspace, const PixelLstmShape& s,
                                   cudaStream_t stream);

}  // namespace cuda
}  // namespace fastgen
