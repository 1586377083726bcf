// Body of the fused DRAW sampler, included after attention_kernels_impl.h and lstm_kernels_impl.h in
// the same translation unit (it reuses their write_forward and lstm_row_forward from the same
// anonymous namespace).
//
// Per example and step: gates = b + [W_ih | W_hh] [z_t; h] (one pass over the decoder weights, packed
// once per call; that pass is the floor at batch 1), the LSTM cell update, the patch and window
// heads, and the Gaussian write added into the canvas. Batch rows are independent, so the binding
// packs the weights once and parallelises over the rows.
#include "draw_kernels.h"

namespace fastgen {
namespace cpu {
namespace FASTGEN_CPU_CAPABILITY {
namespace {

// y[j] += sum_k W[j, k] x[k] for the R rows of W (row-major, K long) starting at W; the R rows share
// each load of x.
template <typename T, int R>
static inline void gemv_rows(int64_t K, const T* W, const T* x, T* y) {
  constexpr int64_t L = kLanes<T>;
  const int64_t Kv = K / L * L;
  Vec<T> acc[R] = {};
  for (int64_t k = 0; k < Kv; k += L) {
    const Vec<T> xv = vload(x + k);
    for (int j = 0; j < R; ++j) acc[j] += vload(W + j * K + k) * xv;
  }
  for (int j = 0; j < R; ++j) {
    T s = hsum<T>(acc[j]);
    for (int64_t k = Kv; k < K; ++k) s += W[j * K + k] * x[k];
    y[j] += s;
  }
}

// y += W x for the small heads (W [R, K], row-major).
template <typename T>
void gemv_acc(int64_t R, int64_t K, const T* W, const T* x, T* y) {
  int64_t r = 0;
  for (; r + 8 <= R; r += 8) gemv_rows<T, 8>(K, W + r * K, x, y + r);
  for (; r < R; ++r) gemv_rows<T, 1>(K, W + r * K, x, y + r);
}

// The gate product b + [W_ih | W_hh] [z; h] reads the whole decoder weight set every step, so its
// layout is the kernel's speed. Packed panels of kPanelRows rows: for each vector-wide column
// slice, the slices of the panel's rows lie back to back. The product then reads one sequential
// stream (the prefetcher's best case) rather than kPanelRows interleaved rows, and the panel's
// kPanelRows independent accumulators hide the FMA latency. Rows and columns past the ends are 0.
constexpr int64_t kPanelRows = 8;

template <typename T>
void pack_gate_weights(const DrawDims& d, const DrawWeights<T>& w, T* packed) {
  constexpr int64_t L = kLanes<T>;
  const int64_t R = 4 * d.D, K = d.Z + d.D, Kp = padded<T>(K);
  for (int64_t p = 0; p < R; p += kPanelRows)
    for (int64_t v = 0; v < Kp; v += L)
      for (int64_t r = p; r < p + kPanelRows; ++r, packed += L) {
        if (r < R && v + L <= d.Z) {  // whole slices: one vector copy (this is nearly all of them)
          std::memcpy(packed, w.w_ih + r * d.Z + v, L * sizeof(T));
        } else if (r < R && v >= d.Z && v + L <= K) {
          std::memcpy(packed, w.w_hh + r * d.D + (v - d.Z), L * sizeof(T));
        } else {  // a slice across the W_ih | W_hh seam or the padding
          for (int64_t l = 0, k = v; l < L; ++l, ++k)
            packed[l] = r >= R || k >= K ? T(0) : k < d.Z ? w.w_ih[r * d.Z + k] : w.w_hh[r * d.D + (k - d.Z)];
        }
      }
}

// y[0..R) += W x with W packed by pack_gate_weights (Kp = padded columns, x zero-padded to Kp).
template <typename T>
void packed_gemv_acc(int64_t R, int64_t Kp, const T* packed, const T* x, T* y) {
  constexpr int64_t L = kLanes<T>;
  for (int64_t p = 0; p < R; p += kPanelRows) {
    Vec<T> acc[kPanelRows] = {};
    for (int64_t v = 0; v < Kp; v += L, packed += kPanelRows * L) {
      const Vec<T> xv = vload(x + v);
      for (int64_t j = 0; j < kPanelRows; ++j) acc[j] += vload(packed + j * L) * xv;
    }
    for (int64_t j = 0; j < kPanelRows && p + j < R; ++j) y[p + j] += hsum<T>(acc[j]);
  }
}

template <typename T>
void generate(const DrawDims& d, const T* noise, const DrawWeights<T>& w, const T* packed, T* canvas, int64_t b0,
              int64_t b1, T* scratch) {
  const AttentionDims& a = d.write;
  const int64_t D = d.D, patch_size = a.C * a.N * a.N, Kp = padded<T>(d.Z + d.D);
  T* attention_scratch = scratch;
  Arena<T> arena{scratch + attention_scratch_elems(a)};
  T* zh = arena.take(Kp);  // [z_t; h; zero padding]: the gate product's input
  T* h = zh + d.Z;
  T* c = arena.take(D);
  T* gates = arena.take(4 * D);
  T* patch = arena.take(patch_size);
  T* window = arena.take(am::kNumParams);
  for (int64_t b = b0; b < b1; ++b) {
    std::fill(zh, zh + Kp, T(0));
    std::fill(c, c + D, T(0));
    T* image = canvas + b * a.C * a.H * a.W;
    for (int64_t t = 0; t < d.T; ++t) {
      const T* z = noise + (t * d.B + b) * d.Z;
      std::copy(z, z + d.Z, zh);
      std::copy(w.bias, w.bias + 4 * D, gates);
      packed_gemv_acc<T>(4 * D, Kp, packed, zh, gates);
      lstm_row_forward<T>(D, gates, c, h, c);
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
  return {&pack_gate_weights<T>, &generate<T>};
}
template DrawKernels<float> draw_kernels<float>();
template DrawKernels<double> draw_kernels<double>();

}  // namespace FASTGEN_CPU_CAPABILITY
}  // namespace cpu
}  // namespace fastgen
