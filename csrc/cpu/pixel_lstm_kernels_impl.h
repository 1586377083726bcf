// Body of the CPU PixelRNN recurrences (pixel_lstm_kernels.h), included once per instruction set
// (kernels_*.cpp) after lstm_kernels_impl.h, whose per-element LSTM math (lstm_forward_element,
// lstm_backward_element, for_each_block) it shares. Torch-free.
//
// Each step (a row, or a diagonal) is: gates of all its cells = pre (+ bias), then one or two small
// GEMMs accumulate the state-to-state term with the cells as the GEMM's rows, read in place at a
// constant stride from h (cells x channels; the weights, packed by the binding, are the broadcast
// operand), then the fused nonlinearities per cell. The backward walks the steps in reverse with the
// transposed weights; the state-to-state weight gradient is left to the binding (one product).
#include <algorithm>
#include <vector>

#include "fastgen/small_gemm.h"
#include "pixel_lstm_kernels.h"

namespace fastgen {
namespace cpu {
namespace FASTGEN_CPU_CAPABILITY {
namespace {

// One cell forward: gates [4n] ordered o, f, i, g (pre-activations), c_prev [n] or null (zero state).
template <typename T>
static inline void cell_forward(int64_t n, const T* g, const T* c_prev, T* h, T* c, T* act) {
  for_each_block<T>(n, [&](int64_t j, auto vector) {
    constexpr bool kV = decltype(vector)::value;
    using E = Elem<T, kV>;
    E hj, cn, a[5];
    const E cp = c_prev != nullptr ? load_elem<T, kV>(c_prev + j) : E{};
    lstm_forward_element<E>(load_elem<T, kV>(g + 2 * n + j), load_elem<T, kV>(g + n + j),
                            load_elem<T, kV>(g + 3 * n + j), load_elem<T, kV>(g + j), cp, &hj, &cn, a);
    store_elem<T, kV>(h + j, hj);
    store_elem<T, kV>(c + j, cn);
    for (int q = 0; q < 5; ++q) store_elem<T, kV>(act + q * n + j, a[q]);
  });
}

// One cell backward: dL/dh (gh) and the cell-gradient carried from the cell's successor (dc, which
// becomes the carry to its predecessor) -> the pre-activation gradient dg [4n] ordered o, f, i, g.
template <typename T>
static inline void cell_backward(int64_t n, const T* act, const T* c_prev, const T* gh, T* dc, T* dg) {
  for_each_block<T>(n, [&](int64_t j, auto vector) {
    constexpr bool kV = decltype(vector)::value;
    using E = Elem<T, kV>;
    E a[5], d[4], carry;
    for (int q = 0; q < 5; ++q) a[q] = load_elem<T, kV>(act + q * n + j);
    const E cp = c_prev != nullptr ? load_elem<T, kV>(c_prev + j) : E{};
    lstm_backward_element<E>(a, cp, load_elem<T, kV>(gh + j), load_elem<T, kV>(dc + j), d, &carry);
    store_elem<T, kV>(dg + j, d[3]);
    store_elem<T, kV>(dg + n + j, d[1]);
    store_elem<T, kV>(dg + 2 * n + j, d[0]);
    store_elem<T, kV>(dg + 3 * n + j, d[2]);
    store_elem<T, kV>(dc + j, carry);
  });
}

// rows [ld] of a padded GEMM operand <- src [width] (+ add [width] when given), padding zeroed
template <typename T>
static inline void load_row(int64_t width, int64_t ld, const T* src, const T* add, T* dst) {
  for (int64_t m = 0; m < width; ++m) dst[m] = add != nullptr ? src[m] + add[m] : src[m];
  std::fill(dst + width, dst + ld, T(0));
}

template <typename T>
void row_forward(const PixelLstmDims& d, const T* pre, const T* w, const T* bias, T* h, T* c, T* act) {
  const int64_t W = d.W, n = d.hidden, G = padded<T>(4 * n), pad = d.k / 2;
  std::vector<T> prev((W + 2 * pad) * n, T(0));  // h of the row above, pad zero cells each side
  std::vector<T> gates(W * G);
  for (int64_t r = 0; r < d.H; ++r) {
    const int64_t row = r * W;
    for (int64_t x = 0; x < W; ++x) load_row(4 * n, G, pre + (row + x) * 4 * n, bias, gates.data() + x * G);
    // cell x reads the k cells x - pad .. x + pad of the row above: k n contiguous values of prev
    if (r > 0) gemm<T>(W, d.k * n, G, prev.data(), n, 1, w, G, gates.data(), G, T(1), true);
    for (int64_t x = 0; x < W; ++x)
      cell_forward(n, gates.data() + x * G, r > 0 ? c + (row - W + x) * n : nullptr, h + (row + x) * n,
                   c + (row + x) * n, act + (row + x) * 5 * n);
    std::copy_n(h + row * n, W * n, prev.data() + pad * n);
  }
}

template <typename T>
void row_backward(const PixelLstmDims& d, const T* grad_h, const T* c, const T* act, const T* w, T* grad_pre) {
  const int64_t W = d.W, n = d.hidden, HP = padded<T>(n), pad = d.k / 2;
  std::vector<T> below((W + 2 * pad) * 4 * n, T(0));  // grad_pre of the row below, zero-padded
  std::vector<T> dh(W * HP), dc(W * n, T(0));
  for (int64_t r = d.H - 1; r >= 0; --r) {
    const int64_t row = r * W;
    for (int64_t x = 0; x < W; ++x) load_row<T>(n, HP, grad_h + (row + x) * n, nullptr, dh.data() + x * HP);
    // dh[x] += sum over taps t of w[:, :, t]^T grad_pre_below[x + pad - t]: taps reversed in the packing,
    // so cell x reads k 4n contiguous values of `below` from position x
    if (r + 1 < d.H) gemm<T>(W, d.k * 4 * n, HP, below.data(), 4 * n, 1, w, HP, dh.data(), HP, T(1), true);
    for (int64_t x = 0; x < W; ++x)
      cell_backward(n, act + (row + x) * 5 * n, r > 0 ? c + (row - W + x) * n : nullptr, dh.data() + x * HP,
                    dc.data() + x * n, grad_pre + (row + x) * 4 * n);
    std::copy_n(grad_pre + row * 4 * n, W * 4 * n, below.data() + pad * 4 * n);
  }
}

// The cells of diagonal `diag` (r + x' = diag, x' the column in the direction's own order): rows
// [lo, hi]; pixel(r, x') their index in the image; consecutive cells are `step` pixels apart.
struct Diagonal {
  int64_t diag, lo, hi, W;
  bool reverse;
  Diagonal(const PixelLstmDims& d, int64_t diag_)
      : diag(diag_), lo(std::max<int64_t>(0, diag_ - d.W + 1)), hi(std::min(d.H - 1, diag_)), W(d.W),
        reverse(d.reverse) {}
  int64_t cells() const { return hi - lo + 1; }
  int64_t pixel(int64_t r, int64_t xd) const { return r * W + (reverse ? W - 1 - xd : xd); }
  int64_t pixel_of_row(int64_t r) const { return pixel(r, diag - r); }
  int64_t step() const { return reverse ? W + 1 : W - 1; }
};

template <typename T>
void diagonal_forward(const PixelLstmDims& d, const T* pre, const T* w_above, const T* w_left, T* h, T* c, T* act) {
  const int64_t n = d.hidden, G = padded<T>(4 * n);
  std::vector<T> gates(std::min(d.H, d.W) * G);
  for (int64_t diag = 0; diag < d.H + d.W - 1; ++diag) {
    const Diagonal s(d, diag);
    const int64_t cells = s.cells(), lo = s.lo;
    for (int64_t p = 0; p < cells; ++p) load_row<T>(4 * n, G, pre + s.pixel_of_row(lo + p) * 4 * n, nullptr, gates.data() + p * G);
    // the cell above exists from row 1; the cell to the left exists up to row diag - 1 (x' >= 1)
    const int64_t first_above = lo == 0 ? 1 : 0, with_left = std::min(s.hi, diag - 1) - lo + 1;
    if (cells > first_above)
      gemm<T>(cells - first_above, n, G, h + s.pixel(lo + first_above - 1, diag - lo - first_above) * n, s.step() * n,
              1, w_above, G, gates.data() + first_above * G, G, T(1), true);
    if (with_left > 0)
      gemm<T>(with_left, n, G, h + s.pixel(lo, diag - lo - 1) * n, s.step() * n, 1, w_left, G, gates.data(), G, T(1),
              true);
    for (int64_t p = 0; p < cells; ++p) {
      const int64_t r = lo + p, xd = diag - r, q = s.pixel(r, xd);
      cell_forward(n, gates.data() + p * G, xd > 0 ? c + s.pixel(r, xd - 1) * n : nullptr, h + q * n, c + q * n,
                   act + q * 5 * n);
    }
  }
}

template <typename T>
void diagonal_backward(const PixelLstmDims& d, const T* grad_h, const T* c, const T* act, const T* w_above,
                       const T* w_left, T* grad_pre) {
  const int64_t n = d.hidden, HP = padded<T>(n);
  std::vector<T> dh(std::min(d.H, d.W) * HP);
  std::vector<T> dc(d.H * n, T(0));  // per row: the cell gradient carried from the cell to the right
  for (int64_t diag = d.H + d.W - 2; diag >= 0; --diag) {
    const Diagonal s(d, diag);
    const int64_t cells = s.cells(), lo = s.lo;
    for (int64_t p = 0; p < cells; ++p) load_row<T>(n, HP, grad_h + s.pixel_of_row(lo + p) * n, nullptr, dh.data() + p * HP);
    // the cell below (which saw this one as "above") exists up to row H - 2; the cell to the right
    // (which saw it as "left") exists from row diag - W + 2 (x' <= W - 2)
    const int64_t with_below = std::min(s.hi, d.H - 2) - lo + 1;
    const int64_t first_right = std::max(lo, diag - d.W + 2) - lo;
    if (with_below > 0)
      gemm<T>(with_below, 4 * n, HP, grad_pre + s.pixel(lo + 1, diag - lo) * 4 * n, s.step() * 4 * n, 1, w_above, HP,
              dh.data(), HP, T(1), true);
    if (cells > first_right)
      gemm<T>(cells - first_right, 4 * n, HP, grad_pre + s.pixel(lo + first_right, diag - lo - first_right + 1) * 4 * n,
              s.step() * 4 * n, 1, w_left, HP, dh.data() + first_right * HP, HP, T(1), true);
    for (int64_t p = 0; p < cells; ++p) {
      const int64_t r = lo + p, xd = diag - r, q = s.pixel(r, xd);
      cell_backward(n, act + q * 5 * n, xd > 0 ? c + s.pixel(r, xd - 1) * n : nullptr, dh.data() + p * HP,
                    dc.data() + r * n, grad_pre + q * 4 * n);
    }
  }
}

}  // namespace

template <typename T>
PixelLstmKernels<T> pixel_lstm_kernels() {
  return {&row_forward<T>, &row_backward<T>, &diagonal_forward<T>, &diagonal_backward<T>};
}
template PixelLstmKernels<float> pixel_lstm_kernels<float>();
template PixelLstmKernels<double> pixel_lstm_kernels<double>();

}  // namespace FASTGEN_CPU_CAPABILITY
}  // namespace cpu
}  // namespace fastgen
