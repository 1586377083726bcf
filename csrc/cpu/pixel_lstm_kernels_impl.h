// Body of the CPU PixelRNN recurrences (pixel_lstm_kernels.h), included once per instruction set
// after lstm_kernels_impl.h, whose per-element LSTM math (lstm_forward_element, lstm_backward_element)
// it shares: kernels_avx2.cpp and kernels_generic.cpp with 32-byte vectors in the step GEMMs and the
// per-cell math, pixel_lstm_avx512.cpp with 64-byte ones (FASTGEN_PIXEL_LSTM_VECTOR_BYTES). Torch-free.
//
// Each step (a row, or a diagonal) is: gates of all its cells = pre (+ bias), then one or two small
// GEMMs accumulate the state-to-state term with the cells as the GEMM's rows, read in place at a
// constant stride from h (cells x channels; the weights, packed by the binding, are the broadcast
// operand), then the fused nonlinearities per cell. The backward walks the steps in reverse with the
// transposed weights; the state-to-state weight gradient is left to the binding (one product).
#include <algorithm>
#include <type_traits>
#include <vector>

#include "fastgen/small_gemm.h"
#include "pixel_lstm_kernels.h"

#ifndef FASTGEN_PIXEL_LSTM_VECTOR_BYTES
#define FASTGEN_PIXEL_LSTM_VECTOR_BYTES 32
#endif

namespace fastgen {
namespace cpu {
namespace FASTGEN_CPU_CAPABILITY {
namespace {

static_assert(kPixelLstmPadBytes % FASTGEN_PIXEL_LSTM_VECTOR_BYTES == 0, "padded columns hold whole vectors");

template <typename T>
struct StepVecOf {
  typedef T type __attribute__((vector_size(FASTGEN_PIXEL_LSTM_VECTOR_BYTES), aligned(alignof(T))));
};
template <typename T>
using StepVec = typename StepVecOf<T>::type;
template <typename T>
constexpr int64_t kStepLanes = FASTGEN_PIXEL_LSTM_VECTOR_BYTES / sizeof(T);
// Rows per register tile: R x 2 accumulators, 2 loaded vectors and a broadcast fit the registers
// (16 of AVX2, 32 of AVX-512).
constexpr int kStepTileRows = FASTGEN_PIXEL_LSTM_VECTOR_BYTES == 64 ? 12 : 6;

// c[R, NV vectors] += sum_k a[r * am + k] b[k * ldb + ...]: the accumulators stay in registers over K.
template <typename T, int R, int NV>
static inline void step_tile(int64_t K, const T* a, int64_t am, const T* b, int64_t ldb, T* c, int64_t ldc) {
  using V = StepVec<T>;
  constexpr int64_t L = kStepLanes<T>;
  V acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = V{};
  for (int64_t k = 0; k < K; ++k) {
    V bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = *reinterpret_cast<const V*>(b + k * ldb + v * L);
    for (int r = 0; r < R; ++r) {
      const T av = a[r * am + k];
      for (int v = 0; v < NV; ++v) acc[r][v] += av * bv[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) *reinterpret_cast<V*>(c + r * ldc + v * L) += acc[r][v];
}

// The last rows (fewer than a tile) as one tile of exactly that height.
template <typename T, int NV, int R = kStepTileRows - 1>
static inline void step_tail(int64_t rows, int64_t K, const T* a, int64_t am, const T* b, int64_t ldb, T* c,
                             int64_t ldc) {
  if constexpr (R > 0) {
    if (rows == R) return step_tile<T, R, NV>(K, a, am, b, ldb, c, ldc);
    step_tail<T, NV, R - 1>(rows, K, a, am, b, ldb, c, ldc);
  }
}

// C[M, P] += A[M, K] B[K, P], the product of one step: A's rows (the step's cells) of stride am read
// in place, B the packed weights, P and the row strides of B and C multiples of one vector.
template <typename T>
static inline void step_gemm(int64_t M, int64_t K, int64_t P, const T* a, int64_t am, const T* b, int64_t ldb, T* c,
                             int64_t ldc) {
  constexpr int64_t L = kStepLanes<T>;
  const auto columns = [&](auto nv, int64_t p) {
    constexpr int NV = decltype(nv)::value;
    int64_t m = 0;
    for (; m + kStepTileRows <= M; m += kStepTileRows)
      step_tile<T, kStepTileRows, NV>(K, a + m * am, am, b + p, ldb, c + m * ldc + p, ldc);
    step_tail<T, NV>(M - m, K, a + m * am, am, b + p, ldb, c + m * ldc + p, ldc);
  };
  int64_t p = 0;
  for (; p + 2 * L <= P; p += 2 * L) columns(std::integral_constant<int, 2>{}, p);
  if (p < P) columns(std::integral_constant<int, 1>{}, p);
}

// The per-cell math runs on vectors of the build's width (64 bytes in the AVX-512 build, whose
// act_sigmoid / act_tanh overloads pixel_lstm_avx512.cpp declares), then 32-byte ones, then scalars;
// double by scalars (the shared element math has no double vector form).
constexpr int kCellBytes = FASTGEN_PIXEL_LSTM_VECTOR_BYTES;
template <typename T, int Bytes>
struct CellElemOf {  // a specialisation: a vector typedef as a template argument drops its attributes
  using type = Wide<T, Bytes>;
};
template <typename T>
struct CellElemOf<T, 0> {
  using type = T;
};
template <typename T, int Bytes>
using CellElem = typename CellElemOf<T, Bytes>::type;

template <typename T, int Bytes>
static inline CellElem<T, Bytes> cell_load(const T* p) {
  if constexpr (Bytes == 0) return *p; else return wload<Bytes>(p);
}
template <typename T, int Bytes>
static inline void cell_store(T* p, CellElem<T, Bytes> v) {
  if constexpr (Bytes == 0) *p = v; else wstore<Bytes>(p, v);
}

// Calls body(j, width in bytes, 0 for a scalar) over the channels [0, n).
template <typename T, typename Body>
static inline void for_each_cell_block(int64_t n, const Body& body) {
  int64_t j = 0;
  if constexpr (std::is_same_v<T, float>) {
    for (; j + kWideLanes<float, kCellBytes> <= n; j += kWideLanes<float, kCellBytes>)
      body(j, std::integral_constant<int, kCellBytes>{});
    if constexpr (kCellBytes > 32)
      for (; j + kWideLanes<float, 32> <= n; j += kWideLanes<float, 32>) body(j, std::integral_constant<int, 32>{});
  }
  for (; j < n; ++j) body(j, std::integral_constant<int, 0>{});
}

// One cell forward: gates [4n] ordered o, f, i, g (pre-activations), c_prev [n] or null (zero state).
template <typename T>
static inline void cell_forward(int64_t n, const T* g, const T* c_prev, T* h, T* c, T* act) {
  for_each_cell_block<T>(n, [&](int64_t j, auto width) {
    constexpr int B = decltype(width)::value;
    using E = CellElem<T, B>;
    E hj, cn, a[5];
    const E cp = c_prev != nullptr ? cell_load<T, B>(c_prev + j) : E{};
    lstm_forward_element<E>(cell_load<T, B>(g + 2 * n + j), cell_load<T, B>(g + n + j),
                            cell_load<T, B>(g + 3 * n + j), cell_load<T, B>(g + j), cp, &hj, &cn, a);
    cell_store<T, B>(h + j, hj);
    cell_store<T, B>(c + j, cn);
    for (int q = 0; q < 5; ++q) cell_store<T, B>(act + q * n + j, a[q]);
  });
}

// One cell backward: dL/dh (gh) and the cell-gradient carried from the cell's successor (dc, which
// becomes the carry to its predecessor) -> the pre-activation gradient dg [4n] ordered o, f, i, g.
template <typename T>
static inline void cell_backward(int64_t n, const T* act, const T* c_prev, const T* gh, T* dc, T* dg) {
  for_each_cell_block<T>(n, [&](int64_t j, auto width) {
    constexpr int B = decltype(width)::value;
    using E = CellElem<T, B>;
    E a[5], d[4], carry;
    for (int q = 0; q < 5; ++q) a[q] = cell_load<T, B>(act + q * n + j);
    const E cp = c_prev != nullptr ? cell_load<T, B>(c_prev + j) : E{};
    lstm_backward_element<E>(a, cp, cell_load<T, B>(gh + j), cell_load<T, B>(dc + j), d, &carry);
    cell_store<T, B>(dg + j, d[3]);
    cell_store<T, B>(dg + n + j, d[1]);
    cell_store<T, B>(dg + 2 * n + j, d[0]);
    cell_store<T, B>(dg + 3 * n + j, d[2]);
    cell_store<T, B>(dc + j, carry);
  });
}

// The rows of a padded GEMM operand [cells, ld] <- `width` channels of `cells` cells of a caller's
// tensor (cell p at src + p * step, channel m at + m * s.channel), + add [width] when given; padding
// columns zeroed. Cells that are contiguous (a row of an NCHW tensor) go through in-register
// transposes of kLanes x kLanes blocks: the scalar strided copy was a third of the Row LSTM forward.
template <typename T>
static inline void gather_cells(int64_t cells, int64_t width, int64_t ld, const T* src, int64_t step,
                                const PlaneStrides& s, const T* add, T* dst) {
  constexpr int64_t L = kLanes<T>;
  const auto scalar = [&](int64_t m, int64_t p0) {  // channel m of cells p0..
    const T* in = src + m * s.channel;
    const T a = add != nullptr ? add[m] : T(0);
    for (int64_t p = p0; p < cells; ++p) dst[p * ld + m] = in[p * step] + a;
  };
  if (step == 1) {
    const int64_t blocked_cells = cells / L * L;
    int64_t m0 = 0;
    for (; m0 + L <= width; m0 += L) {
      const Vec<T> a = add != nullptr ? vload(add + m0) : Vec<T>{};
      for (int64_t p0 = 0; p0 < blocked_cells; p0 += L) {
        Vec<T> block[L];
        for (int64_t i = 0; i < L; ++i) block[i] = vload(src + (m0 + i) * s.channel + p0);
        transpose_block(block);
        for (int64_t i = 0; i < L; ++i) vstore(dst + (p0 + i) * ld + m0, block[i] + a);
      }
      for (int64_t m = m0; m < m0 + L; ++m) scalar(m, blocked_cells);
    }
    for (int64_t m = m0; m < width; ++m) scalar(m, 0);
  } else {
    for (int64_t m = 0; m < width; ++m) scalar(m, 0);
  }
  for (int64_t p = 0; p < cells; ++p) std::fill(dst + p * ld + width, dst + (p + 1) * ld, T(0));
}

template <typename T>
void row_forward(const PixelLstmDims& d, const T* pre, PlaneStrides ps, const T* w, const T* bias, T* h, T* c,
                 T* act) {
  const int64_t W = d.W, n = d.hidden, G = pad_columns<T>(4 * n), pad = d.k / 2;
  std::vector<T> prev((W + 2 * pad) * n, T(0));  // h of the row above, pad zero cells each side
  std::vector<T> gates(W * G);
  for (int64_t r = 0; r < d.H; ++r) {
    const int64_t row = r * W;
    gather_cells(W, 4 * n, G, pre + r * ps.row, ps.col, ps, bias, gates.data());
    // cell x reads the k cells x - pad .. x + pad of the row above: k n contiguous values of prev
    if (r > 0) step_gemm<T>(W, d.k * n, G, prev.data(), n, w, G, gates.data(), G);
    for (int64_t x = 0; x < W; ++x)
      cell_forward(n, gates.data() + x * G, r > 0 ? c + (row - W + x) * n : nullptr, h + (row + x) * n,
                   c + (row + x) * n, act + (row + x) * 5 * n);
    std::copy_n(h + row * n, W * n, prev.data() + pad * n);
  }
}

template <typename T>
void row_backward(const PixelLstmDims& d, const T* grad_h, PlaneStrides gs, const T* c, const T* act, const T* w,
                  T* grad_pre) {
  const int64_t W = d.W, n = d.hidden, HP = pad_columns<T>(n), pad = d.k / 2;
  std::vector<T> below((W + 2 * pad) * 4 * n, T(0));  // grad_pre of the row below, zero-padded
  std::vector<T> dh(W * HP), dc(W * n, T(0));
  for (int64_t r = d.H - 1; r >= 0; --r) {
    const int64_t row = r * W;
    gather_cells<T>(W, n, HP, grad_h + r * gs.row, gs.col, gs, nullptr, dh.data());
    // dh[x] += sum over taps t of w[:, :, t]^T grad_pre_below[x + pad - t]: taps reversed in the packing,
    // so cell x reads k 4n contiguous values of `below` from position x
    if (r + 1 < d.H) step_gemm<T>(W, d.k * 4 * n, HP, below.data(), 4 * n, w, HP, dh.data(), HP);
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
  int64_t step() const { return reverse ? W + 1 : W - 1; }
  // the same walk in a caller's tensor of strides s: offset of the cell in row lo, and the step
  int64_t first_offset(const PlaneStrides& s) const { return lo * s.row + (reverse ? W - 1 - (diag - lo) : diag - lo) * s.col; }
  int64_t step(const PlaneStrides& s) const { return s.row + (reverse ? s.col : -s.col); }
};

template <typename T>
void diagonal_forward(const PixelLstmDims& d, const T* pre, PlaneStrides ps, const T* w_above, const T* w_left, T* h,
                      T* c, T* act) {
  const int64_t n = d.hidden, G = pad_columns<T>(4 * n);
  std::vector<T> gates(std::min(d.H, d.W) * G);
  for (int64_t diag = 0; diag < d.H + d.W - 1; ++diag) {
    const Diagonal s(d, diag);
    const int64_t cells = s.cells(), lo = s.lo;
    gather_cells<T>(cells, 4 * n, G, pre + s.first_offset(ps), s.step(ps), ps, nullptr, gates.data());
    // the cell above exists from row 1; the cell to the left exists up to row diag - 1 (x' >= 1)
    const int64_t first_above = lo == 0 ? 1 : 0, with_left = std::min(s.hi, diag - 1) - lo + 1;
    if (cells > first_above)
      step_gemm<T>(cells - first_above, n, G, h + s.pixel(lo + first_above - 1, diag - lo - first_above) * n,
                   s.step() * n, w_above, G, gates.data() + first_above * G, G);
    if (with_left > 0)
      step_gemm<T>(with_left, n, G, h + s.pixel(lo, diag - lo - 1) * n, s.step() * n, w_left, G, gates.data(), G);
    for (int64_t p = 0; p < cells; ++p) {
      const int64_t r = lo + p, xd = diag - r, q = s.pixel(r, xd);
      cell_forward(n, gates.data() + p * G, xd > 0 ? c + s.pixel(r, xd - 1) * n : nullptr, h + q * n, c + q * n,
                   act + q * 5 * n);
    }
  }
}

template <typename T>
void diagonal_backward(const PixelLstmDims& d, const T* grad_h, PlaneStrides gs, const T* c, const T* act,
                       const T* w_above, const T* w_left, T* grad_pre) {
  const int64_t n = d.hidden, HP = pad_columns<T>(n);
  std::vector<T> dh(std::min(d.H, d.W) * HP);
  std::vector<T> dc(d.H * n, T(0));  // per row: the cell gradient carried from the cell to the right
  for (int64_t diag = d.H + d.W - 2; diag >= 0; --diag) {
    const Diagonal s(d, diag);
    const int64_t cells = s.cells(), lo = s.lo;
    gather_cells<T>(cells, n, HP, grad_h + s.first_offset(gs), s.step(gs), gs, nullptr, dh.data());
    // the cell below (which saw this one as "above") exists up to row H - 2; the cell to the right
    // (which saw it as "left") exists from row diag - W + 2 (x' <= W - 2)
    const int64_t with_below = std::min(s.hi, d.H - 2) - lo + 1;
    const int64_t first_right = std::max(lo, diag - d.W + 2) - lo;
    if (with_below > 0)
      step_gemm<T>(with_below, 4 * n, HP, grad_pre + s.pixel(lo + 1, diag - lo) * 4 * n, s.step() * 4 * n, w_above,
                   HP, dh.data(), HP);
    if (cells > first_right)
      step_gemm<T>(cells - first_right, 4 * n, HP,
                   grad_pre + s.pixel(lo + first_right, diag - lo - first_right + 1) * 4 * n, s.step() * 4 * n, w_left,
                   HP, dh.data() + first_right * HP, HP);
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
