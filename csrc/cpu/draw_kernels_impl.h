// Body of the fused DRAW sampler, included after attention_kernels_impl.h in the same translation
// unit (it reuses that file's write_forward and helpers from the same anonymous namespace).
//
// Per example and step: gates = b + W_ih z_t + W_hh h (one pass over the decoder weights, which is
// the floor at batch 1), the LSTM cell update, the patch and window heads, and the Gaussian write
// added into the canvas. Batch rows are independent, so the binding parallelises over them.
#include <cmath>

#include "draw_kernels.h"

namespace fastgen {
namespace cpu {
namespace FASTGEN_CPU_CAPABILITY {
namespace {

// y[r] += sum_k W[r, k] x[k] for r < R (W row-major [R, K]); four rows share each load of x.
template <typename T>
void gemv_acc(int64_t R, int64_t K, const T* W, const T* x, T* y) {
  constexpr int64_t L = kLanes<T>;
  const int64_t Kv = K / L * L;
  int64_t r = 0;
  for (; r + 4 <= R; r += 4) {
    Vec<T> acc[4] = {};
    for (int64_t k = 0; k < Kv; k += L) {
      const Vec<T> xv = vload(x + k);
      for (int j = 0; j < 4; ++j) acc[j] += vload(W + (r + j) * K + k) * xv;
    }
    for (int j = 0; j < 4; ++j) {
      T s = hsum<T>(acc[j]);
      for (int64_t k = Kv; k < K; ++k) s += W[(r + j) * K + k] * x[k];
      y[r + j] += s;
    }
  }
  for (; r < R; ++r) {
    T s = T(0);
    for (int64_t k = 0; k < K; ++k) s += W[r * K + k] * x[k];
    y[r] += s;
  }
}

template <typename T>
T sigmoid_scalar(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// torch.nn.LSTMCell's update from pre-activation gates [i | f | g | o] (each D long).
template <typename T>
void lstm_update_scalar(int64_t j0, int64_t D, const T* gates, T* h, T* c) {
  for (int64_t j = j0; j < D; ++j) {
    const T i = sigmoid_scalar(gates[j]), f = sigmoid_scalar(gates[D + j]);
    const T g = std::tanh(gates[2 * D + j]), o = sigmoid_scalar(gates[3 * D + j]);
    c[j] = f * c[j] + i * g;
    h[j] = o * std::tanh(c[j]);
  }
}
static inline void lstm_update(int64_t D, const float* gates, float* h, float* c) {
  constexpr int64_t L = kLanes<float>;
  int64_t j = 0;
  for (; j + L <= D; j += L) {
    const Vec<float> i = vsigmoid(vload(gates + j)), f = vsigmoid(vload(gates + D + j));
    const Vec<float> g = vtanh(vload(gates + 2 * D + j)), o = vsigmoid(vload(gates + 3 * D + j));
    const Vec<float> cn = f * vload(c + j) + i * g;
    vstore(c + j, cn);
    vstore(h + j, o * vtanh(cn));
  }
  lstm_update_scalar(j, D, gates, h, c);
}
static inline void lstm_update(int64_t D, const double* gates, double* h, double* c) {
  lstm_update_scalar<double>(0, D, gates, h, c);
}

template <typename T>
void generate(const DrawDims& d, const T* noise, const DrawWeights<T>& w, T* canvas, int64_t b0, int64_t b1,
              T* scratch) {
  const AttentionDims& a = d.write;
  const int64_t D = d.D, patch_size = a.C * a.N * a.N;
  T* attention_scratch = scratch;
  Arena<T> arena{scratch + attention_scratch_elems(a)};
  T* h = arena.take(D);
  T* c = arena.take(D);
  T* gates = arena.take(4 * D);
  T* patch = arena.take(patch_size);
  T* window = arena.take(am::kNumParams);
  for (int64_t b = b0; b < b1; ++b) {
    std::fill(h, h + D, T(0));
    std::fill(c, c + D, T(0));
    T* image = canvas + b * a.C * a.H * a.W;
    for (int64_t t = 0; t < d.T; ++t) {
      std::copy(w.bias, w.bias + 4 * D, gates);
      gemv_acc<T>(4 * D, d.Z, w.w_ih, noise + (t * d.B + b) * d.Z, gates);
      gemv_acc<T>(4 * D, D, w.w_hh, h, gates);
      lstm_update(D, gates, h, c);
      std::copy(w.b_patch, w.b_patch + patch_size, patch);
      gemv_acc<T>(patch_size, D, w.w_patch, h, patch);
      std::copy(w.b_window, w.b_window + am::kNumParams, window);
      gemv_acc<T>(am::kNumParams, D, w.w_window, h, window);
      write_forward<T>(a, patch, window, image, /*accumulate=*/true, 0, 1, attention_scratch);
    }
  }
}

}  // namespace

template <typename T>
DrawKernels<T> draw_kernels() {
  return {&generate<T>};
}
template DrawKernels<float> draw_kernels<float>();
template DrawKernels<double> draw_kernels<double>();

}  // namespace FASTGEN_CPU_CAPABILITY
}  // namespace cpu
}  // namespace fastgen
