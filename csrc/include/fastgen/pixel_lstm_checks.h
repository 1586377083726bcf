// Argument checks of row_lstm, diagonal_lstm and their backward ops shared by the CPU and CUDA torch
// bindings (csrc/cpu/pixel_lstm.cpp, csrc/cuda/pixel_lstm_binding.cpp), so a bad call fails with the
// same message on either device. Each binding checks its device and dtypes itself, between
// check_ranks and check_sizes. Host only.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

namespace fastgen {
namespace pixel_lstm {

// t (pre [B, 4h, H, W], or the h [B, h, H, W] of a backward: `gates` is 4 or 1) is 4-D, w_ss 3-D.
inline void check_ranks(const char* op, const at::Tensor& t, const char* name, int64_t gates, const at::Tensor& w_ss) {
  TORCH_CHECK(t.dim() == 4, op, ": ", name, " must be 4-D [B, ", gates == 4 ? "4h" : "h", ", H, W], got ", t.sizes());
  TORCH_CHECK(w_ss.dim() == 3, op, ": w_ss must be 3-D [4h, h, k], got ", w_ss.sizes());
}

inline void check_same_dtype(const char* op, const at::Tensor& t, const char* name, const at::Tensor& w_ss) {
  TORCH_CHECK(w_ss.scalar_type() == t.scalar_type(), op, ": w_ss dtype ", w_ss.scalar_type(), " differs from ", name,
              " dtype ", t.scalar_type());
}

// w_ss [4h, h, k] agrees with t's channels (gates h), k is `taps` (2 for the Diagonal LSTM) or, with
// taps = 0, odd and >= 3 (Row LSTM), and nothing is empty. Returns h.
inline int64_t check_sizes(const char* op, const at::Tensor& t, const char* name, int64_t gates,
                           const at::Tensor& w_ss, int64_t taps) {
  const int64_t n = w_ss.size(1), k = w_ss.size(2);
  TORCH_CHECK(n >= 1 && w_ss.size(0) == 4 * n, op, ": w_ss must be [4h, h, k] with h >= 1, got ", w_ss.sizes());
  TORCH_CHECK(t.size(1) == gates * n, op, ": ", name, " has ", t.size(1), " channels but w_ss expects ", gates * n);
  if (taps == 0) {
    TORCH_CHECK(k >= 3 && k % 2 == 1, op, ": the state-to-state kernel width k must be odd and >= 3, got ", k);
  } else {
    TORCH_CHECK(k == taps, op, ": w_ss must be [4h, h, ", taps, "], got ", w_ss.sizes());
  }
  TORCH_CHECK(t.size(0) >= 1 && t.size(2) >= 1 && t.size(3) >= 1, op, ": ", name, " must be non-empty, got ",
              t.sizes());
  return n;
}

// The Row LSTM's bias: [4h], pre's dtype, on pre's device (`where` names it in the message: "CPU").
inline void check_bias(const char* op, const at::Tensor& bias, int64_t hidden, const at::Tensor& pre,
                       const std::string& where) {
  TORCH_CHECK(bias.dim() == 1 && bias.size(0) == 4 * hidden, op, ": bias must be [4h] = [", 4 * hidden, "], got ",
              bias.sizes());
  TORCH_CHECK(bias.scalar_type() == pre.scalar_type() && bias.device() == pre.device(), op, ": bias must be a ", where,
              " ", pre.scalar_type(), " tensor, got ", bias.scalar_type(), " on ", bias.device());
}

}  // namespace pixel_lstm
}  // namespace fastgen
