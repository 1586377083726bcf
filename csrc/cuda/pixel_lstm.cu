// CUDA kernels of PixelRNN's recurrences (Row LSTM, one direction of the Diagonal BiLSTM): forward,
// the backward's reverse walk, and the state-to-state weight gradient. Torch-free (pixel_lstm.cuh has
// the layout contract).
//
// One persistent block per image runs the whole recurrence: the step loop lives inside the kernel, a
// __syncthreads() between steps. Why not blocks per (image, hidden slice): every hidden unit of a step
// reads every unit of the previous step's h (and the backward every gate of the next step's
// grad_pre), so slices would need a grid-wide barrier per step (a cooperative launch, all blocks
// resident); at the small hidden sizes of PixelRNN (h = 16 on MNIST) that barrier would cost more
// than a step's work. A thread owns one hidden unit j of kTile consecutive cells of a
// step: it computes all four gates of its cells (so the cell's nonlinearity needs no exchange) and
// reuses each weight it loads kTile times. Weights are read so that consecutive threads (consecutive
// j) touch consecutive addresses; the previous step's states are read from the outputs themselves
// (global memory, visible to the block after the step's barrier; the block's L1 keeps them).
//
// Steps and cells come from a Walk, so one kernel serves both layers:
//   RowWalk       step r = image row r, its W cells; tap t reads h(r - 1, x + t - k/2); c from above.
//   DiagonalWalk  step d = the diagonal r + x' = d (x' the column in the direction's order, x' = x or
//                 W - 1 - x): only its valid cells, rows max(0, d - W + 1) .. min(H - 1, d); tap 0
//                 reads the cell above, tap 1 (and c) the cell to the left in the direction's order.
//                 The skewed image of the paper is never built: a skewed column is this diagonal.
// The backward walks the steps in reverse: a cell's dL/dh gathers the gate gradients of the cells
// that read it (reader(q, t): the tap relation inverted), and its cell gradient comes from the cell
// that took it as c_prev, through a per-column (Row) or per-row (Diagonal) carry in scratch memory.
// grad_w_ss[m, j, t] = sum over every cell q of grad_pre[q, m] h[source(q, t), j]: one tiled product
// [4h, cells] x [cells, k h] whose second operand is gathered by index (no tap tensor): a block per
// 32 x 32 tile of the result and slice of the cells, then the slices' partial sums added in order by a
// third kernel: no atomics, deterministic.
#include "pixel_lstm.cuh"
#include "scalar_convert.cuh"

namespace fastgen {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kTile = 4;  // cells per thread in a step
constexpr int kGemmTile = 32;

// Accurate exp (not the __expf intrinsic): float32 must match the float64 reference to 1e-5. Saturated
// inputs give exactly 0 or 1 (exp overflows to inf), never NaN.
__device__ __forceinline__ float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }
__device__ __forceinline__ double sigmoid(double v) { return 1.0 / (1.0 + exp(-v)); }
__device__ __forceinline__ float tanh_of(float v) { return tanhf(v); }
__device__ __forceinline__ double tanh_of(double v) { return tanh(v); }

// Pixels are indexed q = r W + x within an image; -1 means "no such cell" (off the image: zero state).
struct RowWalk {
  int H, W, k;
  __device__ int steps() const { return H; }
  __device__ int cells(int step) const { return W; }
  __device__ int pixel(int step, int p) const { return step * W + p; }
  // the cell whose h the cell q reads through tap t, and the one whose c it continues
  __device__ int source(int q, int t) const {
    const int r = q / W, x = q - r * W + t - k / 2;
    return r >= 1 && x >= 0 && x < W ? q - W + t - k / 2 : -1;
  }
  __device__ int c_source(int q) const { return q >= W ? q - W : -1; }
  // the cell that reads q through tap t (source inverted), and the one that continues q's c
  __device__ int reader(int q, int t) const {
    const int r = q / W, x = q - r * W - t + k / 2;
    return r + 1 < H && x >= 0 && x < W ? q + W - t + k / 2 : -1;
  }
  __device__ bool has_c_reader(int q) const { return q + W < H * W; }
  __device__ int carry_slot(int q) const { return q % W; }  // the column: its cell gradient flows up
};

struct DiagonalWalk {
  int H, W, k;  // k = 2
  bool reverse;
  __device__ int steps() const { return H + W - 1; }
  __device__ int first_row(int step) const { return step - W + 1 > 0 ? step - W + 1 : 0; }
  __device__ int cells(int step) const { return (step < H - 1 ? step : H - 1) - first_row(step) + 1; }
  __device__ int pixel(int step, int p) const {
    const int r = first_row(step) + p, xd = step - r;
    return r * W + (reverse ? W - 1 - xd : xd);
  }
  // the neighbour one column further in the direction's order (left: -1, right: +1), or -1
  __device__ int beside(int q, int dir) const {
    const int r = q / W, x = q - r * W + (reverse ? -dir : dir);
    return x >= 0 && x < W ? r * W + x : -1;
  }
  __device__ int source(int q, int t) const { return t == 0 ? (q >= W ? q - W : -1) : beside(q, -1); }
  __device__ int c_source(int q) const { return beside(q, -1); }
  __device__ int reader(int q, int t) const { return t == 0 ? (q + W < H * W ? q + W : -1) : beside(q, 1); }
  __device__ bool has_c_reader(int q) const { return beside(q, 1) >= 0; }
  __device__ int carry_slot(int q) const { return q / W; }  // the row: its cell gradient flows left
};

// Forward of one image per block (see the top of the file). bias may be null.
template <typename Walk, typename T>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const T* __restrict__ pre, ImageStrides ps, const T* __restrict__ w, const T* __restrict__ bias,
                   T* h, T* c, T* act, Walk walk, int n) {
  using A = typename AccType<T>::type;
  const int W = walk.W, G = 4 * n;
  const int64_t image = int64_t(walk.H) * W;
  const T* pb = pre + blockIdx.x * ps.image;
  h += blockIdx.x * image * n;
  c += blockIdx.x * image * n;
  act += blockIdx.x * image * 5 * n;
  for (int step = 0; step < walk.steps(); ++step) {
    const int cells = walk.cells(step), items = (cells + kTile - 1) / kTile * n;
    for (int item = threadIdx.x; item < items; item += blockDim.x) {
      const int j = item % n, p0 = item / n * kTile;
      int q[kTile];
      A acc[kTile][4];
#pragma unroll
      for (int u = 0; u < kTile; ++u) {
        q[u] = p0 + u < cells ? walk.pixel(step, p0 + u) : -1;
        const int r = q[u] / W, x = q[u] - r * W;
#pragma unroll
        for (int g = 0; g < 4; ++g) {
          const A b = bias != nullptr ? to_acc(bias[g * n + j]) : A(0);
          acc[u][g] = q[u] >= 0 ? to_acc(pb[(g * n + j) * ps.channel + r * ps.row + x * ps.col]) + b : A(0);
        }
      }
      for (int t = 0; t < walk.k; ++t) {
        int src[kTile];
        bool any = false;
#pragma unroll
        for (int u = 0; u < kTile; ++u) {
          src[u] = q[u] >= 0 ? walk.source(q[u], t) : -1;
          any |= src[u] >= 0;
        }
        if (!any) continue;
        const T* wt = w + int64_t(t) * n * G + j;
        for (int jj = 0; jj < n; ++jj) {
          A wv[4];
#pragma unroll
          for (int g = 0; g < 4; ++g) wv[g] = to_acc(wt[jj * G + g * n]);
#pragma unroll
          for (int u = 0; u < kTile; ++u) {
            if (src[u] < 0) continue;
            const A hv = to_acc(h[src[u] * n + jj]);
#pragma unroll
            for (int g = 0; g < 4; ++g) acc[u][g] += hv * wv[g];
          }
        }
      }
#pragma unroll
      for (int u = 0; u < kTile; ++u) {
        if (q[u] < 0) continue;
        const int cs = walk.c_source(q[u]);
        const A c_prev = cs >= 0 ? to_acc(c[cs * n + j]) : A(0);
        // gates o, f, i, g -> act i, f, g, o, tanh c (the CPU kernels' saved layout)
        const A i = sigmoid(acc[u][2]), f = sigmoid(acc[u][1]), g = tanh_of(acc[u][3]), o = sigmoid(acc[u][0]);
        const A cn = f * c_prev + i * g, tc = tanh_of(cn);
        T* a = act + int64_t(q[u]) * 5 * n + j;
        put(a, i);
        put(a + n, f);
        put(a + 2 * n, g);
        put(a + 3 * n, o);
        put(a + 4 * n, tc);
        put(c + q[u] * n + j, cn);
        put(h + q[u] * n + j, o * tc);
      }
    }
    __syncthreads();  // the next step reads this step's h and c
  }
}

// The reverse walk of one image per block: grad_pre of every cell. carry [carry_slots, n] per image.
template <typename Walk, typename T>
__global__ void __launch_bounds__(kThreads)
    grad_pre_kernel(const T* __restrict__ grad_h, ImageStrides gs, const T* __restrict__ c,
                    const T* __restrict__ act, const T* __restrict__ w, T* grad_pre,
                    typename AccType<T>::type* carry, Walk walk, int n, int carry_slots) {
  using A = typename AccType<T>::type;
  const int W = walk.W, G = 4 * n;
  const int64_t image = int64_t(walk.H) * W;
  const T* gb = grad_h + blockIdx.x * gs.image;
  c += blockIdx.x * image * n;
  act += blockIdx.x * image * 5 * n;
  grad_pre += blockIdx.x * image * G;
  carry += blockIdx.x * int64_t(carry_slots) * n;
  for (int step = walk.steps() - 1; step >= 0; --step) {
    const int cells = walk.cells(step), items = (cells + kTile - 1) / kTile * n;
    for (int item = threadIdx.x; item < items; item += blockDim.x) {
      const int j = item % n, p0 = item / n * kTile;
      int q[kTile];
      A dh[kTile];
#pragma unroll
      for (int u = 0; u < kTile; ++u) {
        q[u] = p0 + u < cells ? walk.pixel(step, p0 + u) : -1;
        const int r = q[u] / W, x = q[u] - r * W;
        dh[u] = q[u] >= 0 ? to_acc(gb[j * gs.channel + r * gs.row + x * gs.col]) : A(0);
      }
      // dh += sum over taps t of w_ss[:, j, t] . grad_pre(reader(q, t))
      for (int t = 0; t < walk.k; ++t) {
        int dst[kTile];
        bool any = false;
#pragma unroll
        for (int u = 0; u < kTile; ++u) {
          dst[u] = q[u] >= 0 ? walk.reader(q[u], t) : -1;
          any |= dst[u] >= 0;
        }
        if (!any) continue;
        const T* wt = w + int64_t(t) * G * n + j;
        for (int m = 0; m < G; ++m) {
          const A wv = to_acc(wt[m * n]);
#pragma unroll
          for (int u = 0; u < kTile; ++u)
            if (dst[u] >= 0) dh[u] += to_acc(grad_pre[int64_t(dst[u]) * G + m]) * wv;
        }
      }
#pragma unroll
      for (int u = 0; u < kTile; ++u) {
        if (q[u] < 0) continue;
        const T* a = act + int64_t(q[u]) * 5 * n + j;
        const A i = to_acc(a[0]), f = to_acc(a[n]), g = to_acc(a[2 * n]), o = to_acc(a[3 * n]), tc = to_acc(a[4 * n]);
        const int cs = walk.c_source(q[u]);
        const A c_prev = cs >= 0 ? to_acc(c[cs * n + j]) : A(0);
        A* slot = carry + walk.carry_slot(q[u]) * n + j;
        const A dc_next = walk.has_c_reader(q[u]) ? *slot : A(0);
        const A dc = dc_next + dh[u] * o * (A(1) - tc * tc);
        T* d = grad_pre + int64_t(q[u]) * G + j;
        put(d, dh[u] * tc * o * (A(1) - o));             // o
        put(d + n, dc * c_prev * f * (A(1) - f));        // f
        put(d + 2 * n, dc * g * i * (A(1) - i));         // i
        put(d + 3 * n, dc * i * (A(1) - g * g));         // g
        *slot = dc * f;                                  // to the cell that gave this one its c
      }
    }
    __syncthreads();  // the previous step reads this step's grad_pre and carries
  }
}

// grad_w[m, j, t] = sum over cells P (all images) of grad_pre[P, m] h[source(P, t), j]: block (x, y, z)
// sums the cells of slice z into the tile of rows m0.. and columns col0.. (col = t n + j) of the
// [4h, k h] product, partial[z, m, col]. 256 threads, 2 x 2 results each.
template <typename Walk, typename T>
__global__ void __launch_bounds__(kThreads)
    grad_w_kernel(const T* __restrict__ grad_pre, const T* __restrict__ h,
                  typename AccType<T>::type* __restrict__ partial, Walk walk, int n, int64_t total,
                  int64_t per_slice) {
  using A = typename AccType<T>::type;
  __shared__ A gs[kGemmTile][kGemmTile + 1];  // [cell][m]
  __shared__ A hs[kGemmTile][kGemmTile + 1];  // [cell][col]
  const int G = 4 * n, cols = walk.k * n, image = walk.H * walk.W;
  const int m0 = blockIdx.y * kGemmTile, col0 = blockIdx.x * kGemmTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t first = blockIdx.z * per_slice;
  const int64_t end = first + per_slice < total ? first + per_slice : total;
  A acc[2][2] = {{A(0), A(0)}, {A(0), A(0)}};
  for (int64_t p0 = first; p0 < end; p0 += kGemmTile) {
    for (int e = threadIdx.x; e < kGemmTile * kGemmTile; e += kThreads) {
      const int pp = e / kGemmTile, cc = e - pp * kGemmTile;  // consecutive threads: consecutive m / j
      const int64_t P = p0 + pp;
      const int m = m0 + cc, col = col0 + cc;
      gs[pp][cc] = P < end && m < G ? to_acc(grad_pre[P * G + m]) : A(0);
      A hv = A(0);
      if (P < end && col < cols) {
        const int64_t b = P / image;
        const int t = col / n, src = walk.source(int(P - b * image), t);
        if (src >= 0) hv = to_acc(h[(b * image + src) * n + col - t * n]);
      }
      hs[pp][cc] = hv;
    }
    __syncthreads();
#pragma unroll 8
    for (int pp = 0; pp < kGemmTile; ++pp) {
      const A g0 = gs[pp][ty], g1 = gs[pp][ty + 16], h0 = hs[pp][tx], h1 = hs[pp][tx + 16];
      acc[0][0] += g0 * h0;
      acc[0][1] += g0 * h1;
      acc[1][0] += g1 * h0;
      acc[1][1] += g1 * h1;
    }
    __syncthreads();  // the tiles are restaged
  }
#pragma unroll
  for (int a = 0; a < 2; ++a)
#pragma unroll
    for (int b = 0; b < 2; ++b) {
      const int m = m0 + ty + 16 * a, col = col0 + tx + 16 * b;
      if (m < G && col < cols) partial[(int64_t(blockIdx.z) * G + m) * cols + col] = acc[a][b];
    }
}

// grad_w[m, j, t] = sum of the slices' partial[z, m, t n + j] in slice order (deterministic).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    sum_slices_kernel(const typename AccType<T>::type* __restrict__ partial, T* __restrict__ grad_w, int n, int k,
                      int slices) {
  using A = typename AccType<T>::type;
  const int G = 4 * n, cols = k * n;
  const int64_t e = int64_t(blockIdx.x) * kThreads + threadIdx.x;  // = m cols + col
  if (e >= int64_t(G) * cols) return;
  A v = A(0);
  for (int z = 0; z < slices; ++z) v += partial[int64_t(z) * G * cols + e];
  const int m = int(e / cols), col = int(e - int64_t(m) * cols), t = col / n, j = col - t * n;
  put(grad_w + (int64_t(m) * n + j) * k + t, v);
}

// Threads of a step block: enough for the widest step's items, whole warps, at most kThreads.
int step_threads(int max_cells, int n) {
  const int64_t items = int64_t(max_cells + kTile - 1) / kTile * n;
  const int64_t warps = (items + 31) / 32;
  return warps * 32 < kThreads ? int(warps * 32) : kThreads;
}

RowWalk row_walk(const PixelLstmShape& s) { return RowWalk{s.H, s.W, s.k}; }
DiagonalWalk diagonal_walk(const PixelLstmShape& s) { return DiagonalWalk{s.H, s.W, 2, s.reverse}; }
int max_cells(const RowWalk& w) { return w.W; }
int max_cells(const DiagonalWalk& w) { return w.H < w.W ? w.H : w.W; }
int carry_slots(const RowWalk& w) { return w.W; }
int carry_slots(const DiagonalWalk& w) { return w.H; }

bool grid_fits(int64_t B) { return B >= 1 && B <= 0x7fffffff; }

template <typename Walk, typename T>
cudaError_t launch_forward(const T* pre, ImageStrides ps, const T* w, const T* bias, T* h, T* c, T* act, Walk walk,
                           const PixelLstmShape& s, cudaStream_t stream) {
  if (!grid_fits(s.B)) return cudaErrorInvalidValue;
  forward_kernel<Walk, T><<<unsigned(s.B), step_threads(max_cells(walk), s.hidden), 0, stream>>>(
      pre, ps, w, bias, h, c, act, walk, s.hidden);
  return cudaGetLastError();
}

// How the weight-gradient product is cut: the cells into `slices` runs of per_slice, so that the tiles
// times the slices make about kProductBlocks blocks (two waves on a 132-SM H100/H200; a fixed number,
// so that the sums, and hence the results, are the same on every GPU), each slice at least
// kMinSliceCells cells.
constexpr int64_t kProductBlocks = 256;
constexpr int64_t kMinSliceCells = 256;

struct ProductPlan {
  dim3 grid;
  int64_t total, per_slice;
  int slices;
};

ProductPlan product_plan(const PixelLstmShape& s) {
  ProductPlan p;
  const int64_t G = 4 * int64_t(s.hidden), cols = int64_t(s.k) * s.hidden;
  const int64_t tiles_x = (cols + kGemmTile - 1) / kGemmTile, tiles_y = (G + kGemmTile - 1) / kGemmTile;
  p.total = s.B * s.H * s.W;
  int64_t slices = (kProductBlocks + tiles_x * tiles_y - 1) / (tiles_x * tiles_y);
  const int64_t most = (p.total + kMinSliceCells - 1) / kMinSliceCells;
  slices = slices < most ? slices : most;
  slices = slices < 1 ? 1 : slices > 65535 ? 65535 : slices;
  p.per_slice = ((p.total + slices - 1) / slices + kGemmTile - 1) / kGemmTile * kGemmTile;
  p.slices = int((p.total + p.per_slice - 1) / p.per_slice);
  p.grid = dim3(unsigned(tiles_x), unsigned(tiles_y), unsigned(p.slices));
  return p;
}

template <typename Walk, typename T>
cudaError_t launch_backward(const T* grad_h, ImageStrides gs, const T* h, const T* c, const T* act, const T* w,
                            T* grad_pre, T* grad_w, void* workspace, Walk walk, const PixelLstmShape& s,
                            cudaStream_t stream) {
  using A = typename AccType<T>::type;
  if (!grid_fits(s.B)) return cudaErrorInvalidValue;
  A* carry = static_cast<A*>(workspace);
  A* partial = carry + s.B * int64_t(carry_slots(walk)) * s.hidden;
  grad_pre_kernel<Walk, T><<<unsigned(s.B), step_threads(max_cells(walk), s.hidden), 0, stream>>>(
      grad_h, gs, c, act, w, grad_pre, carry, walk, s.hidden, carry_slots(walk));
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  const ProductPlan p = product_plan(s);
  if (p.grid.y > 65535) return cudaErrorInvalidValue;
  grad_w_kernel<Walk, T><<<p.grid, kThreads, 0, stream>>>(grad_pre, h, partial, walk, s.hidden, p.total, p.per_slice);
  e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  const int64_t outputs = 4 * int64_t(s.hidden) * s.k * s.hidden;
  sum_slices_kernel<T><<<unsigned((outputs + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
      partial, grad_w, s.hidden, s.k, p.slices);
  return cudaGetLastError();
}

}  // namespace

size_t pixel_lstm_workspace_bytes(const PixelLstmShape& s, bool diagonal, size_t acc_bytes) {
  const int64_t carry = s.B * int64_t(diagonal ? carry_slots(diagonal_walk(s)) : carry_slots(row_walk(s))) * s.hidden;
  const int64_t partial = int64_t(product_plan(s).slices) * 4 * s.hidden * s.k * s.hidden;
  return size_t(carry + partial) * acc_bytes;
}

template <typename T>
cudaError_t row_lstm_forward(const T* pre, ImageStrides ps, const T* w_fwd, const T* bias, T* h, T* c, T* act,
                             const PixelLstmShape& s, cudaStream_t stream) {
  return launch_forward(pre, ps, w_fwd, bias, h, c, act, row_walk(s), s, stream);
}

template <typename T>
cudaError_t diagonal_lstm_forward(const T* pre, ImageStrides ps, const T* w_fwd, T* h, T* c, T* act,
                                  const PixelLstmShape& s, cudaStream_t stream) {
  return launch_forward(pre, ps, w_fwd, static_cast<const T*>(nullptr), h, c, act, diagonal_walk(s), s, stream);
}

template <typename T>
cudaError_t row_lstm_backward(const T* grad_h, ImageStrides gs, const T* h, const T* c, const T* act,
                              const T* w_bwd, T* grad_pre, T* grad_w, void* workspace, const PixelLstmShape& s,
                              cudaStream_t stream) {
  return launch_backward(grad_h, gs, h, c, act, w_bwd, grad_pre, grad_w, workspace, row_walk(s), s, stream);
}

template <typename T>
cudaError_t diagonal_lstm_backward(const T* grad_h, ImageStrides gs, const T* h, const T* c, const T* act,
                                   const T* w_bwd, T* grad_pre, T* grad_w, void* workspace, const PixelLstmShape& s,
                                   cudaStream_t stream) {
  return launch_backward(grad_h, gs, h, c, act, w_bwd, grad_pre, grad_w, workspace, diagonal_walk(s), s, stream);
}

#define FASTGEN_PIXEL_LSTM_INSTANTIATE(T)                                                                         \
  template cudaError_t row_lstm_forward<T>(const T*, ImageStrides, const T*, const T*, T*, T*, T*,                \
                                           const PixelLstmShape&, cudaStream_t);                                   \
  template cudaError_t diagonal_lstm_forward<T>(const T*, ImageStrides, const T*, T*, T*, T*, const PixelLstmShape&, \
                                                cudaStream_t);                                                     \
  template cudaError_t row_lstm_backward<T>(const T*, ImageStrides, const T*, const T*, const T*, const T*, T*, T*, \
                                            void*, const PixelLstmShape&, cudaStream_t);                           \
  template cudaError_t diagonal_lstm_backward<T>(const T*, ImageStrides, const T*, const T*, const T*, const T*,   \
                                                 T*, T*, void*, const PixelLstmShape&, cudaStream_t);

FASTGEN_PIXEL_LSTM_INSTANTIATE(float)
FASTGEN_PIXEL_LSTM_INSTANTIATE(double)
FASTGEN_PIXEL_LSTM_INSTANTIATE(__half)
FASTGEN_PIXEL_LSTM_INSTANTIATE(__nv_bfloat16)
#undef FASTGEN_PIXEL_LSTM_INSTANTIATE

}  // namespace cuda
}  // namespace fastgen
