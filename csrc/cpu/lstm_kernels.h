// Torch-free entry points of the CPU LSTM-cell pointwise kernels (lstm_kernels_impl.h), built per
// instruction set like the attention kernels. Rows [b0, b1) of contiguous [B, 4D] gates and [B, D]
// states, so threading stays in the torch-facing code (lstm.cpp).
#pragma once

#include <cstdint>

namespace fastgen {
namespace cpu {

struct LstmDims {
  int64_t D;  // hidden size; gates are [4D] per row, ordered i, f, g, o as torch.nn.LSTMCell
};

template <typename T>
struct LstmKernels {
  // (h, c_out, act) from (gates, c); act [B, 5D] holds i, f, g, o and tanh(c_out) for the backward
  void (*forward)(const LstmDims&, const T* gates, const T* c, T* h, T* c_out, T* act, int64_t b0, int64_t b1);
  // (grad_gates, grad_c) from (grad_h, grad_c_out, act, c); a null grad_h or grad_c_out counts as zeros
  void (*backward)(const LstmDims&, const T* grad_h, const T* grad_c_out, const T* act, const T* c, T* grad_gates,
                   T* grad_c, int64_t b0, int64_t b1);
};

namespace generic {
template <typename T>
LstmKernels<T> lstm_kernels();
}
namespace avx2 {
template <typename T>
LstmKernels<T> lstm_kernels();
}

}  // namespace cpu
}  // namespace fastgen
