// CUDA kernels of the masked convolutions (PixelCNN, Gated PixelCNN): forward, grad_x, grad_weight,
// grad_bias. Torch-free (masked_conv.cuh has the layout contract); which weights are live comes from
// fastgen/masked_conv_math.h, the rule the CPU kernels use.
//
// The live taps of every mask are a prefix of the kernel in raster order (rows above the centre, then
// the centre row up to the centre; "V": every row up to the centre row), and they never lie below the
// centre row. So the kernels loop over taps t < n_live (i = t / kw, j = t % kw) and never visit a dead
// tap; within a partially live centre tap (colour groups) the dead channel pairs are staged as zero
// weights, and grad_weight writes live entries only.
//
// Forward and grad_x are one direct convolution (conv_rows_kernel): a block owns one image row h of
// one example, a tile of TW columns and OB produced channels (each thread one column and kRO channels
// in registers). Per step it stages CC summed channels into shared memory: their input rows that the
// live taps reach (forward: rows h - kh/2 .. h of x; grad_x: rows h .. h + kh/2 of grad_out, the taps
// mirrored), zero-padded to TW + kw - 1 columns, and the live weights [CC, n_live, OB]; then every
// thread runs its FMAs from shared memory (a warp reads one weight address: a broadcast, and
// consecutive columns of the rows: no bank conflicts).
// grad_weight: one block per (output channel, input channel, chunk of kTapChunk live taps) sums
// grad_out * shifted x over the batch and every pixel (coalesced loads, kTapChunk sums per thread in
// registers) and reduces in-block: no atomics, deterministic. grad_bias: one block per channel.
#include "masked_conv.cuh"
#include "scalar_convert.cuh"

#include "fastgen/cuda_launch.h"
#include "fastgen/masked_conv_math.h"

namespace fastgen {
namespace cuda {
namespace {

namespace mc = fastgen::masked_conv;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kRO = 4;             // produced channels per thread in conv_rows_kernel
constexpr int kMaxChunk = 16;      // summed channels staged per step, at most
constexpr int kTapChunk = 8;       // taps per grad_weight block
constexpr size_t kDefaultSmem = 48 * 1024;

// How conv_rows_kernel cuts the work; computed on the host, passed by value.
struct Tiling {
  int n_live;  // live taps (a raster prefix)
  int TW;      // columns per block
  int OB;      // produced channels per block = (kThreads / TW) * kRO
  int R;       // staged rows = kh / 2 + 1
  int SW;      // staged row width = TW + kw - 1
  int CC;      // summed channels staged per step
  size_t smem;
};

// Number of live taps; they form a raster-order prefix (see the top of this file).
int live_taps(const MaskedConvShape& s) {
  int n = 0;
  while (n < s.kh * s.kw && mc::tap_live(s.mask, n / s.kw, n % s.kw, s.kh, s.kw, s.cout, s.cin, s.groups)) ++n;
  return n;
}

size_t rows_bytes(const Tiling& t, int cc, size_t acc_bytes) {
  return size_t(cc) * (size_t(t.R) * t.SW + size_t(t.n_live) * t.OB) * acc_bytes;
}

Tiling make_tiling(const MaskedConvShape& s, bool grad_input, size_t acc_bytes) {
  Tiling t;
  t.n_live = live_taps(s);
  t.TW = s.W <= 32 ? 32 : 64;
  t.OB = kThreads / t.TW * kRO;
  t.R = s.kh / 2 + 1;
  t.SW = t.TW + s.kw - 1;
  const int summed = grad_input ? s.cout : s.cin;
  t.CC = summed < kMaxChunk ? summed : kMaxChunk;
  while (t.CC > 1 && rows_bytes(t, t.CC, acc_bytes) > kDefaultSmem) t.CC /= 2;
  t.smem = rows_bytes(t, t.CC, acc_bytes);
  return t;
}

template <typename A>
__device__ __forceinline__ A* shared_base() {
  // One untyped extern array for every instantiation (typed extern __shared__ arrays would clash).
  extern __shared__ __align__(16) unsigned char fastgen_masked_conv_smem[];
  return reinterpret_cast<A*>(fastgen_masked_conv_smem);
}

// Forward (kGradInput = false): in = x, summed channels Cin, produced Cout, weight[o=produced, c=summed].
// grad_x (kGradInput = true): in = grad_out, summed Cout, produced Cin, weight[o=summed, c=produced],
// every tap mirrored (grad_x[h, w] gathers grad_out[h + kh/2 - i, w + kw/2 - j]).
template <bool kGradInput, typename T>
__global__ void __launch_bounds__(kThreads)
    conv_rows_kernel(const T* __restrict__ in, const T* __restrict__ weight, const T* __restrict__ bias,
                     T* __restrict__ out, MaskedConvShape s, Tiling tl) {
  using A = typename AccType<T>::type;
  const int summed = kGradInput ? s.cout : s.cin, produced = kGradInput ? s.cin : s.cout;
  const int cy = s.kh / 2, cx = s.kw / 2, H = s.H, W = s.W;
  const int tiles_w = (W + tl.TW - 1) / tl.TW;
  const int64_t row = blockIdx.x / tiles_w;  // b * H + h
  const int w0 = int(blockIdx.x - row * tiles_w) * tl.TW;
  const int h = int(row % H);
  const int64_t b = row / H;
  const int lane = threadIdx.x % tl.TW, og = threadIdx.x / tl.TW;
  const int o0 = blockIdx.y * tl.OB;
  const int row0 = kGradInput ? h : h - cy;                  // global row of staged row 0
  const int col0 = kGradInput ? w0 - (s.kw - 1 - cx) : w0 - cx;  // global column of staged column 0
  const int rows_n = tl.R * tl.SW, taps_n = tl.n_live * tl.OB;
  A* xs = shared_base<A>();
  A* ws = xs + tl.CC * rows_n;

  A acc[kRO];
#pragma unroll
  for (int r = 0; r < kRO; ++r) acc[r] = A(0);
  for (int c0 = 0; c0 < summed; c0 += tl.CC) {
    const int cc_n = summed - c0 < tl.CC ? summed - c0 : tl.CC;
    for (int k = threadIdx.x; k < cc_n * rows_n; k += kThreads) {
      const int cc = k / rows_n, r = (k - cc * rows_n) / tl.SW, col = k - cc * rows_n - r * tl.SW;
      const int y = row0 + r, x = col0 + col;
      xs[k] = (y >= 0 && y < H && x >= 0 && x < W) ? to_acc(in[((b * summed + c0 + cc) * H + y) * W + x]) : A(0);
    }
    for (int k = threadIdx.x; k < cc_n * taps_n; k += kThreads) {
      const int cc = k / taps_n, t = (k - cc * taps_n) / tl.OB, ob = k - cc * taps_n - t * tl.OB;
      const int i = t / s.kw, j = t - i * s.kw, p = o0 + ob;
      const int co = kGradInput ? c0 + cc : p, ci = kGradInput ? p : c0 + cc;
      const bool live = p < produced && mc::weight_live(s.mask, co, ci, i, j, s.kh, s.kw, s.cout, s.cin, s.groups);
      ws[k] = live ? to_acc(weight[((int64_t(co) * s.cin + ci) * s.kh + i) * s.kw + j]) : A(0);
    }
    __syncthreads();
    for (int cc = 0; cc < cc_n; ++cc) {
      const A* wc = ws + cc * taps_n + og * kRO;
      int t = 0;
      for (int i = 0; t < tl.n_live; ++i) {
        // forward: tap (i, j) reads staged row i, column lane + j; grad_x: row cy - i, column lane + kw - 1 - j
        const A* xr = xs + cc * rows_n + (kGradInput ? cy - i : i) * tl.SW + lane + (kGradInput ? s.kw - 1 : 0);
        for (int j = 0; j < s.kw && t < tl.n_live; ++j, ++t) {
          const A v = kGradInput ? xr[-j] : xr[j];
#pragma unroll
          for (int r = 0; r < kRO; ++r) acc[r] += v * wc[t * tl.OB + r];
        }
      }
    }
    __syncthreads();  // xs and ws are restaged by the next step
  }
  const int w = w0 + lane;
  if (w >= W) return;
#pragma unroll
  for (int r = 0; r < kRO; ++r) {
    const int o = o0 + og * kRO + r;
    if (o >= produced) continue;
    A v = acc[r];
    if (bias != nullptr) v += to_acc(bias[o]);
    put(out + ((b * produced + o) * H + h) * W + w, v);
  }
}

// Sums v[0..N) over the block; the result is valid in thread 0 only.
template <int N, typename A>
__device__ void block_sum(A (&v)[N]) {
  __shared__ A red[kWarps][N];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int k = 0; k < N; ++k)
    for (int off = 16; off > 0; off >>= 1) v[k] += __shfl_down_sync(0xffffffffu, v[k], off);
  if (lane == 0) {
#pragma unroll
    for (int k = 0; k < N; ++k) red[warp][k] = v[k];
  }
  __syncthreads();
  if (threadIdx.x == 0) {
#pragma unroll
    for (int k = 0; k < N; ++k) {
      v[k] = A(0);
      for (int wp = 0; wp < kWarps; ++wp) v[k] += red[wp][k];
    }
  }
}

// grid (Cout * Cin, ceil(n_live / kTapChunk)).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    grad_weight_kernel(const T* __restrict__ grad_out, const T* __restrict__ x, T* __restrict__ grad_weight,
                       MaskedConvShape s, int n_live) {
  using A = typename AccType<T>::type;
  const int co = blockIdx.x / s.cin, ci = blockIdx.x - co * s.cin;
  const int t0 = blockIdx.y * kTapChunk, H = s.H, W = s.W, HW = H * W;
  int dy[kTapChunk], dx[kTapChunk];
  bool live[kTapChunk];
  A acc[kTapChunk];
#pragma unroll
  for (int k = 0; k < kTapChunk; ++k) {
    const int t = t0 + k, i = t / s.kw, j = t - i * s.kw;
    live[k] = t < n_live && mc::weight_live(s.mask, co, ci, i, j, s.kh, s.kw, s.cout, s.cin, s.groups);
    dy[k] = i - s.kh / 2;  // <= 0: live taps never lie below the centre row
    dx[k] = j - s.kw / 2;
    acc[k] = A(0);
  }
  for (int64_t b = 0; b < s.B; ++b) {
    const T* g = grad_out + (b * s.cout + co) * HW;
    const T* xc = x + (b * s.cin + ci) * HW;
    for (int p = threadIdx.x; p < HW; p += kThreads) {
      const int h = p / W, w = p - h * W;
      const A gv = to_acc(g[p]);
#pragma unroll
      for (int k = 0; k < kTapChunk; ++k) {
        const int y = h + dy[k], xx = w + dx[k];
        if (live[k] && y >= 0 && xx >= 0 && xx < W) acc[k] += gv * to_acc(xc[y * W + xx]);
      }
    }
  }
  block_sum(acc);
  if (threadIdx.x == 0) {
#pragma unroll
    for (int k = 0; k < kTapChunk; ++k)
      if (live[k]) put(grad_weight + int64_t(blockIdx.x) * s.kh * s.kw + t0 + k, acc[k]);
  }
}

// grid (Cout).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    grad_bias_kernel(const T* __restrict__ grad_out, T* __restrict__ grad_bias, MaskedConvShape s) {
  using A = typename AccType<T>::type;
  const int o = blockIdx.x, HW = s.H * s.W;
  A v[1] = {A(0)};
  for (int64_t b = 0; b < s.B; ++b) {
    const T* g = grad_out + (b * s.cout + o) * HW;
    for (int p = threadIdx.x; p < HW; p += kThreads) v[0] += to_acc(g[p]);
  }
  block_sum(v);
  if (threadIdx.x == 0) put(grad_bias + o, v[0]);
}

// Raises the kernel's dynamic shared-memory limit when it needs more than the default, then launches.
template <typename... KArgs, typename... Args>
cudaError_t launch(void (*kernel)(KArgs...), dim3 grid, size_t smem, cudaStream_t stream, Args... args) {
  if (smem > kDefaultSmem) {
    size_t optin = 0;
    cudaError_t e = current_optin_shared_bytes(&optin);
    if (e != cudaSuccess) return e;
    if (smem > optin) return cudaErrorInvalidValue;
    e = allow_shared_bytes(kernel, smem);
    if (e != cudaSuccess) return e;
  }
  kernel<<<grid, kThreads, smem, stream>>>(args...);
  return cudaGetLastError();
}

template <bool kGradInput, typename T>
cudaError_t launch_rows(const T* in, const T* weight, const T* bias, T* out, const MaskedConvShape& s,
                        cudaStream_t stream) {
  using A = typename AccType<T>::type;
  const Tiling t = make_tiling(s, kGradInput, sizeof(A));
  const int64_t blocks_x = s.B * s.H * ((s.W + t.TW - 1) / t.TW);
  const int produced = kGradInput ? s.cin : s.cout;
  const int blocks_y = (produced + t.OB - 1) / t.OB;
  if (blocks_x > 0x7fffffff || blocks_y > 65535) return cudaErrorInvalidValue;
  return launch(conv_rows_kernel<kGradInput, T>, dim3(unsigned(blocks_x), unsigned(blocks_y)), t.smem, stream, in,
                weight, bias, out, s, t);
}

}  // namespace

size_t masked_conv_shared_bytes(const MaskedConvShape& s, bool grad_input, size_t acc_bytes) {
  return rows_bytes(make_tiling(s, grad_input, acc_bytes), 1, acc_bytes);
}

template <typename T>
cudaError_t masked_conv2d_forward(const T* x, const T* weight, const T* bias, T* out, const MaskedConvShape& s,
                                  cudaStream_t stream) {
  if (s.B == 0) return cudaSuccess;
  return launch_rows<false>(x, weight, bias, out, s, stream);
}

template <typename T>
cudaError_t masked_conv2d_grad_input(const T* grad_out, const T* weight, T* grad_x, const MaskedConvShape& s,
                                     cudaStream_t stream) {
  if (s.B == 0) return cudaSuccess;
  return launch_rows<true>(grad_out, weight, static_cast<const T*>(nullptr), grad_x, s, stream);
}

template <typename T>
cudaError_t masked_conv2d_grad_weight(const T* grad_out, const T* x, T* grad_weight, const MaskedConvShape& s,
                                      cudaStream_t stream) {
  const int n_live = live_taps(s);
  const int64_t pairs = int64_t(s.cout) * s.cin;
  if (n_live == 0 || pairs == 0) return cudaSuccess;  // nothing live: the zeroed buffer is the answer
  if (pairs > 0x7fffffff) return cudaErrorInvalidValue;
  const dim3 grid(unsigned(pairs), unsigned((n_live + kTapChunk - 1) / kTapChunk));
  return launch(grad_weight_kernel<T>, grid, 0, stream, grad_out, x, grad_weight, s, n_live);
}

template <typename T>
cudaError_t masked_conv2d_grad_bias(const T* grad_out, T* grad_bias, const MaskedConvShape& s, cudaStream_t stream) {
  if (s.cout == 0) return cudaSuccess;
  return launch(grad_bias_kernel<T>, dim3(unsigned(s.cout)), 0, stream, grad_out, grad_bias, s);
}

#define FASTGEN_MASKED_CONV_INSTANTIATE(T)                                                                    \
  template cudaError_t masked_conv2d_forward<T>(const T*, const T*, const T*, T*, const MaskedConvShape&,     \
                                                cudaStream_t);                                                \
  template cudaError_t masked_conv2d_grad_input<T>(const T*, const T*, T*, const MaskedConvShape&, cudaStream_t); \
  template cudaError_t masked_conv2d_grad_weight<T>(const T*, const T*, T*, const MaskedConvShape&, cudaStream_t); \
  template cudaError_t masked_conv2d_grad_bias<T>(const T*, T*, const MaskedConvShape&, cudaStream_t);

FASTGEN_MASKED_CONV_INSTANTIATE(float)
FASTGEN_MASKED_CONV_INSTANTIATE(double)
FASTGEN_MASKED_CONV_INSTANTIATE(__half)
FASTGEN_MASKED_CONV_INSTANTIATE(__nv_bfloat16)
#undef FASTGEN_MASKED_CONV_INSTANTIATE

}  // namespace cuda
}  // namespace fastgen
