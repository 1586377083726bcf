// CUDA kernels of DRAW's Gaussian-filterbank attention: read, write and their backward ops.
//
// Torch-free (see attention.cuh for the layout contract). The per-element math (window, filter rows,
// their gradients) comes from fastgen/attention_math.h, the same code the CPU kernels run.
//
// Shape of the work: one block owns one example's filterbanks Fx [N,W] and Fy [N,H], computed once into
// shared memory with filter_row and reused for every channel it handles. Per channel the block forms
// the two [N,W] products the op needs in shared memory and writes outputs with w fastest, so global
// loads and stores are coalesced. Forward blocks may split an example's channels (grid.y) for
// parallelism at small batch; a backward block owns all channels of its example, so dL/dFx, dL/dFy and
// dL/dlog(gamma) accumulate in shared memory/registers and grad_params is reduced in-block, without
// atomics or a second pass.
//
// Algebra per channel (x/G/w/S/T are per channel; scale = gamma for read, 1/gamma for write):
//   read:   T = Fy x;                 out    = gamma T Fx^T
//   write:  S = w Fx;                 out    = (1/gamma) Fy^T S (+ canvas)
//   backward with "small" = the N x N operand (read: grad_out, write: w) and "image" = the H x W operand
//   (read: x, write: grad_out):  S = small Fx,  T = Fy image
//     read:  grad_x = gamma Fy^T S          write: grad_w = (1/gamma) T Fx^T
//     dFy[i,h] += scale sum_w S[i,w] image[h,w]     dFx[j,w] += scale sum_i small[i,j] T[i,w]
//     dlog_gamma += +-scale <S,T>  (= <out, G> for read, -<image part, G> for write)
#include "attention.cuh"

#include "fastgen/attention_math.h"
#include "fastgen/cuda_launch.h"

namespace fastgen {
namespace cuda {
namespace {

namespace am = fastgen::attention;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kRed = 5;  // values reduced at the end of backward: gx, gy, delta, log_var, log_gamma
// Forward grids aim for at least this many blocks, splitting channels when the batch is small.
constexpr int64_t kTargetBlocks = 1024;

// Compute type: float for float/half/bfloat16, double for double.
template <typename T> struct AccType { using type = float; };
template <> struct AccType<double> { using type = double; };

// Explicit conversions (torch builds define __CUDA_NO_HALF_CONVERSIONS__, so no implicit ones).
__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ double load(const double* p) { return *p; }
__device__ __forceinline__ float load(const __half* p) { return __half2float(*p); }
__device__ __forceinline__ float load(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(double* p, double v) { *p = v; }
__device__ __forceinline__ void store(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// Element offsets of the shared-memory buffers of each kernel; one function for host (sizing) and
// device (carving) so the two cannot disagree.
struct Layout {
  size_t Fx, Fy, patch, S, T, dFx, dFy, red, total;
};

__host__ __device__ inline Layout make_layout(AttentionKernel k, int N, int H, int W) {
  const size_t nw = size_t(N) * W, nh = size_t(N) * H, nn = size_t(N) * N;
  const bool bwd = k == AttentionKernel::kBackward;
  const bool has_patch = k != AttentionKernel::kReadForward;  // staged N x N operand and S = patch Fx
  const bool has_T = k != AttentionKernel::kWriteForward;     // T = Fy image
  Layout l;
  size_t o = 0;
  l.Fx = o;
  o += nw;
  l.Fy = o;
  o += nh;
  l.patch = o;
  o += has_patch ? nn : 0;
  l.S = o;
  o += has_patch ? nw : 0;
  l.T = o;
  o += has_T ? nw : 0;
  l.dFx = o;
  o += bwd ? nw : 0;
  l.dFy = o;
  o += bwd ? nh : 0;
  l.red = o;
  o += bwd ? size_t(kWarps) * kRed : 0;
  l.total = o;
  return l;
}

template <typename A>
__device__ __forceinline__ A* shared_base() {
  // One untyped extern array for every instantiation (typed extern __shared__ arrays would clash).
  extern __shared__ __align__(16) unsigned char fastgen_attention_smem[];
  return reinterpret_cast<A*>(fastgen_attention_smem);
}

// Calls f(r, c) for every element of a rows x cols grid, spread over the block with c fastest (so
// consecutive threads touch consecutive addresses), without 64-bit division. The thread -> element
// map is the same on every call, so an element accumulated across channels always has one owner.
template <typename F>
__device__ __forceinline__ void for_each_2d(int rows, int cols, F f) {
  if (cols >= kThreads) {
    for (int r = 0; r < rows; ++r)
      for (int c = threadIdx.x; c < cols; c += kThreads) f(r, c);
  } else {
    const int per_step = kThreads / cols, r0 = threadIdx.x / cols, c = threadIdx.x - r0 * cols;
    if (r0 < per_step)
      for (int r = r0; r < rows; r += per_step) f(r, c);
  }
}

// Window of example b, and its filterbanks written into shared Fx [N,W], Fy [N,H] (one thread per row;
// every thread gets the window, which is a handful of flops, instead of a broadcast through memory).
// The caller must __syncthreads() before reading the filterbanks.
template <typename A, typename T>
__device__ am::Window<A> compute_filterbanks(const T* params_b, int N, int H, int W, A* Fx, A* Fy) {
  A raw[am::kNumParams];
#pragma unroll
  for (int k = 0; k < am::kNumParams; ++k) raw[k] = load(params_b + k);
  const am::Window<A> win = am::window_from_params<A>(raw, N, H, W);
  for (int r = threadIdx.x; r < 2 * N; r += kThreads) {
    if (r < N) {
      am::filter_row<A>(win.gx + am::filter_offset<A>(r, N) * win.delta, win.inv_two_var, W, Fx + r * W);
    } else {
      const int i = r - N;
      am::filter_row<A>(win.gy + am::filter_offset<A>(i, N) * win.delta, win.inv_two_var, H, Fy + i * H);
    }
  }
  return win;
}

// out [N,W] = Fy [N,H] * img [H,W] (img in global memory). Each thread keeps RB output rows in
// registers, so every image element it loads feeds RB products; RB = 1 when that would leave most
// threads idle.
template <int RB, typename A, typename T>
__device__ void fy_times_image_rb(const A* Fy, const T* __restrict__ img, int N, int H, int W, A* out) {
  for_each_2d((N + RB - 1) / RB, W, [&](int g, int w) {
    const int i0 = g * RB;
    const A* fy[RB];
    A acc[RB];
#pragma unroll
    for (int r = 0; r < RB; ++r) {
      fy[r] = Fy + (i0 + r < N ? i0 + r : N - 1) * H;  // rows past N redo row N-1; dropped below
      acc[r] = A(0);
    }
    for (int h = 0; h < H; ++h) {
      const A v = load(img + int64_t(h) * W + w);
#pragma unroll
      for (int r = 0; r < RB; ++r) acc[r] += fy[r][h] * v;
    }
#pragma unroll
    for (int r = 0; r < RB; ++r)
      if (i0 + r < N) out[(i0 + r) * W + w] = acc[r];
  });
}

template <typename A, typename T>
__device__ void fy_times_image(const A* Fy, const T* __restrict__ img, int N, int H, int W, A* out) {
  constexpr int kRB = 4;
  if ((N + kRB - 1) / kRB * W >= kThreads) {
    fy_times_image_rb<kRB>(Fy, img, N, H, W, out);
  } else {
    fy_times_image_rb<1>(Fy, img, N, H, W, out);
  }
}

// Stage one channel's N x N operand from global into shared memory.
template <typename A, typename T>
__device__ void load_patch(const T* __restrict__ src, int N, A* patch) {
  for (int k = threadIdx.x; k < N * N; k += kThreads) patch[k] = load(src + k);
}

// S [N,W] = patch [N,N] * Fx [N,W] (all shared).
template <typename A>
__device__ void patch_times_fx(const A* patch, const A* Fx, int N, int W, A* S) {
  for_each_2d(N, W, [&](int i, int w) {
    A acc = A(0);
    for (int j = 0; j < N; ++j) acc += patch[i * N + j] * Fx[j * W + w];
    S[i * W + w] = acc;
  });
}

// out [H,W] = scale * Fy^T S (+ canvas), written to global memory. canvas may alias out (no
// __restrict__): each element is read before it is written, by the same thread.
template <typename A, typename T>
__device__ void image_out(const A* Fy, const A* S, A scale, const T* canvas, T* out, int N, int H, int W) {
  for_each_2d(H, W, [&](int h, int w) {
    A acc = A(0);
    for (int i = 0; i < N; ++i) acc += Fy[i * H + h] * S[i * W + w];
    acc *= scale;
    const int64_t o = int64_t(h) * W + w;
    if (canvas != nullptr) acc += load(canvas + o);
    store(out + o, acc);
  });
}

// out [N,N] = scale * T Fx^T, written to global memory.
template <typename A, typename T>
__device__ void patch_out(const A* Tm, const A* Fx, A scale, T* __restrict__ out, int N, int W) {
  for_each_2d(N, N, [&](int i, int j) {
    A acc = A(0);
    for (int w = 0; w < W; ++w) acc += Tm[i * W + w] * Fx[j * W + w];
    store(out + i * N + j, scale * acc);
  });
}

// dFy [N,H] += scale * S [N,W] img^T. A reduction along w, which is contiguous in img: a group of gw
// lanes (a power of two, <= 32, ~W) walks one (i,h) pair with coalesced loads and reduces with
// shuffles. Loop bounds depend only on the warp, so the full-mask shuffles see every lane.
template <typename A, typename T>
__device__ void accumulate_dfy(const A* S, const T* __restrict__ img, A scale, int N, int H, int W, A* dFy) {
  int gw = 1;
  while (gw < W && gw < 32) gw <<= 1;
  const int per_warp = 32 / gw;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane / gw, sl = lane & (gw - 1);
  const int pairs = N * H;
  for (int base = warp * per_warp; base < pairs; base += kWarps * per_warp) {
    const int p = base + sub;  // p = h * N + i: neighbouring groups share the image row h
    const int h = p / N, i = p - h * N;
    A acc = A(0);
    if (p < pairs) {
      const T* row = img + int64_t(h) * W;
      for (int w = sl; w < W; w += gw) acc += S[i * W + w] * load(row + w);
    }
    for (int off = gw >> 1; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off, gw);
    if (p < pairs && sl == 0) dFy[i * H + h] += scale * acc;
  }
}

// Sums v over the block; the result is valid in thread 0 only. red holds kWarps * kRed values.
template <typename A>
__device__ void block_sum(A (&v)[kRed], A* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int k = 0; k < kRed; ++k)
    for (int off = 16; off > 0; off >>= 1) v[k] += __shfl_down_sync(0xffffffffu, v[k], off);
  if (lane == 0) {
#pragma unroll
    for (int k = 0; k < kRed; ++k) red[warp * kRed + k] = v[k];
  }
  __syncthreads();
  if (threadIdx.x == 0) {
#pragma unroll
    for (int k = 0; k < kRed; ++k) {
      v[k] = A(0);
      for (int w = 0; w < kWarps; ++w) v[k] += red[w * kRed + k];
    }
  }
}

// grid (B, channel groups): block (b, g) handles channels g, g + gridDim.y, ...
template <typename T>
__global__ void __launch_bounds__(kThreads)
    read_forward_kernel(const T* __restrict__ x, const T* __restrict__ params, T* __restrict__ out,
                        AttentionShape s) {
  using A = typename AccType<T>::type;
  const int N = s.N, H = s.H, W = s.W;
  const Layout L = make_layout(AttentionKernel::kReadForward, N, H, W);
  A* sm = shared_base<A>();
  A *Fx = sm + L.Fx, *Fy = sm + L.Fy, *Tm = sm + L.T;
  const int64_t b = blockIdx.x;
  const am::Window<A> win = compute_filterbanks(params + b * am::kNumParams, N, H, W, Fx, Fy);
  __syncthreads();
  for (int64_t c = blockIdx.y; c < s.C; c += gridDim.y) {
    const int64_t bc = b * s.C + c;
    fy_times_image(Fy, x + bc * H * W, N, H, W, Tm);
    __syncthreads();
    patch_out(Tm, Fx, win.gamma, out + bc * N * N, N, W);
    __syncthreads();  // Tm is rewritten by the next channel
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    write_forward_kernel(const T* __restrict__ w, const T* __restrict__ params, const T* canvas, T* out,
                         AttentionShape s) {
  // canvas and out are not __restrict__: the caller may pass the same buffer (in-place accumulate).
  using A = typename AccType<T>::type;
  const int N = s.N, H = s.H, W = s.W;
  const Layout L = make_layout(AttentionKernel::kWriteForward, N, H, W);
  A* sm = shared_base<A>();
  A *Fx = sm + L.Fx, *Fy = sm + L.Fy, *patch = sm + L.patch, *S = sm + L.S;
  const int64_t b = blockIdx.x;
  const am::Window<A> win = compute_filterbanks(params + b * am::kNumParams, N, H, W, Fx, Fy);
  const A inv_gamma = A(1) / win.gamma;
  for (int64_t c = blockIdx.y; c < s.C; c += gridDim.y) {
    const int64_t bc = b * s.C + c;
    load_patch(w + bc * N * N, N, patch);
    __syncthreads();  // also publishes the filterbanks on the first channel
    patch_times_fx(patch, Fx, N, W, S);
    __syncthreads();
    image_out(Fy, S, inv_gamma, canvas == nullptr ? canvas : canvas + bc * H * W, out + bc * H * W, N, H, W);
    __syncthreads();  // patch and S are rewritten by the next channel
  }
}

// One block per example (grid (B)); see the algebra at the top. kRead picks the op:
//   read:  small = grad_out [B,C,N,N], image = x [B,C,H,W],        grad_in = grad_x [B,C,H,W]
//   write: small = w [B,C,N,N],        image = grad_out [B,C,H,W], grad_in = grad_w [B,C,N,N]
template <bool kRead, typename T>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const T* __restrict__ small, const T* __restrict__ image, const T* __restrict__ params,
                    T* __restrict__ grad_in, T* __restrict__ grad_params, AttentionShape s) {
  using A = typename AccType<T>::type;
  const int N = s.N, H = s.H, W = s.W;
  const Layout L = make_layout(AttentionKernel::kBackward, N, H, W);
  A* sm = shared_base<A>();
  A *Fx = sm + L.Fx, *Fy = sm + L.Fy, *patch = sm + L.patch, *S = sm + L.S, *Tm = sm + L.T;
  A *dFx = sm + L.dFx, *dFy = sm + L.dFy, *red = sm + L.red;
  const int64_t b = blockIdx.x;
  const am::Window<A> win = compute_filterbanks(params + b * am::kNumParams, N, H, W, Fx, Fy);
  const A scale = kRead ? win.gamma : A(1) / win.gamma;
  for (int k = threadIdx.x; k < N * W; k += kThreads) dFx[k] = A(0);
  for (int k = threadIdx.x; k < N * H; k += kThreads) dFy[k] = A(0);
  A dlog_gamma = A(0);  // this thread's share of +-scale <S,T>, summed over channels

  for (int64_t c = 0; c < s.C; ++c) {
    const int64_t bc = b * s.C + c;
    const T* img = image + bc * H * W;
    load_patch(small + bc * N * N, N, patch);
    __syncthreads();  // patch ready (and, on the first channel, filterbanks and zeroed dFx/dFy)
    patch_times_fx(patch, Fx, N, W, S);
    fy_times_image(Fy, img, N, H, W, Tm);
    __syncthreads();
    if (kRead) {
      image_out(Fy, S, scale, static_cast<const T*>(nullptr), grad_in + bc * H * W, N, H, W);
    } else {
      patch_out(Tm, Fx, scale, grad_in + bc * N * N, N, W);
    }
    for_each_2d(N, W, [&](int j, int w) {
      A acc = A(0);
      for (int i = 0; i < N; ++i) acc += patch[i * N + j] * Tm[i * W + w];
      dFx[j * W + w] += scale * acc;
    });
    accumulate_dfy(S, img, scale, N, H, W, dFy);
    A dot = A(0);
    for (int k = threadIdx.x; k < N * W; k += kThreads) dot += S[k] * Tm[k];
    dlog_gamma += kRead ? scale * dot : -scale * dot;
    __syncthreads();  // patch, S and Tm are rewritten by the next channel; dFx/dFy complete
  }
  if (s.C == 0) __syncthreads();  // no channel loop ran: publish the filterbanks and zeroed grads

  // Each filter row's softmax backward gives dL/dmu_i and dL/dlog(sigma^2); mu_i = g + offset_i delta.
  A v[kRed] = {A(0), A(0), A(0), A(0), dlog_gamma};  // gx, gy, delta, log_var, log_gamma
  for (int r = threadIdx.x; r < 2 * N; r += kThreads) {
    const bool is_x = r < N;
    const int i = is_x ? r : r - N;
    const A off = am::filter_offset<A>(i, N);
    A dmu, dlv;
    if (is_x) {
      am::filter_row_backward<A>(Fx + i * W, dFx + i * W, win.gx + off * win.delta, win.inv_two_var, W, &dmu, &dlv);
      v[0] += dmu;
    } else {
      am::filter_row_backward<A>(Fy + i * H, dFy + i * H, win.gy + off * win.delta, win.inv_two_var, H, &dmu, &dlv);
      v[1] += dmu;
    }
    v[2] += dmu * off;
    v[3] += dlv;
  }
  block_sum(v, red);
  if (threadIdx.x == 0) {
    am::WindowGrad<A> g;
    g.gx = v[0];
    g.gy = v[1];
    g.delta = v[2];
    g.log_var = v[3];
    g.log_gamma = v[4];
    A out[am::kNumParams];
    am::window_grad_to_params<A>(g, win, H, W, out);
#pragma unroll
    for (int k = 0; k < am::kNumParams; ++k) store(grad_params + b * am::kNumParams + k, out[k]);
  }
}

// Checks the shared-memory need against the device, raises the kernel's dynamic limit past the
// default 48 KB when needed, and launches.
template <typename... KArgs, typename... Args>
cudaError_t launch(void (*kernel)(KArgs...), dim3 grid, size_t smem, cudaStream_t stream, Args... args) {
  size_t optin = 0;
  cudaError_t e = current_optin_shared_bytes(&optin);
  if (e != cudaSuccess) return e;
  if (smem > optin) return cudaErrorInvalidValue;
  e = allow_shared_bytes(kernel, smem);
  if (e != cudaSuccess) return e;
  kernel<<<grid, kThreads, smem, stream>>>(args...);
  return cudaGetLastError();
}

// B blocks in x (limit 2^31 - 1); forward kernels split channels over y (limit 65535).
bool batch_fits_grid(const AttentionShape& s) { return s.B <= 0x7fffffff; }

dim3 forward_grid(const AttentionShape& s) {
  int64_t groups = (kTargetBlocks + s.B - 1) / s.B;
  groups = groups < s.C ? groups : s.C;
  groups = groups < 65535 ? groups : 65535;
  return dim3(unsigned(s.B), unsigned(groups > 0 ? groups : 1));
}

}  // namespace

size_t attention_shared_bytes(AttentionKernel kernel, const AttentionShape& s, size_t acc_bytes) {
  return make_layout(kernel, s.N, s.H, s.W).total * acc_bytes;
}

template <typename T>
cudaError_t attention_read_forward(const T* x, const T* params, T* out, const AttentionShape& s, cudaStream_t stream) {
  if (s.B == 0 || s.C == 0) return cudaSuccess;  // empty output
  if (!batch_fits_grid(s)) return cudaErrorInvalidValue;
  using A = typename AccType<T>::type;
  const size_t smem = attention_shared_bytes(AttentionKernel::kReadForward, s, sizeof(A));
  return launch(read_forward_kernel<T>, forward_grid(s), smem, stream, x, params, out, s);
}

template <typename T>
cudaError_t attention_write_forward(const T* w, const T* params, const T* canvas, T* out, const AttentionShape& s,
                                    cudaStream_t stream) {
  if (s.B == 0 || s.C == 0) return cudaSuccess;
  if (!batch_fits_grid(s)) return cudaErrorInvalidValue;
  using A = typename AccType<T>::type;
  const size_t smem = attention_shared_bytes(AttentionKernel::kWriteForward, s, sizeof(A));
  return launch(write_forward_kernel<T>, forward_grid(s), smem, stream, w, params, canvas, out, s);
}

template <typename T>
cudaError_t attention_read_backward(const T* grad_out, const T* x, const T* params, T* grad_x, T* grad_params,
                                    const AttentionShape& s, cudaStream_t stream) {
  // C == 0 still launches: grad_params must be written (zeros).
  if (s.B == 0) return cudaSuccess;
  if (!batch_fits_grid(s)) return cudaErrorInvalidValue;
  using A = typename AccType<T>::type;
  const size_t smem = attention_shared_bytes(AttentionKernel::kBackward, s, sizeof(A));
  return launch(backward_kernel<true, T>, dim3(unsigned(s.B)), smem, stream, grad_out, x, params, grad_x,
                grad_params, s);
}

template <typename T>
cudaError_t attention_write_backward(const T* grad_out, const T* w, const T* params, T* grad_w, T* grad_params,
                                     const AttentionShape& s, cudaStream_t stream) {
  if (s.B == 0) return cudaSuccess;
  if (!batch_fits_grid(s)) return cudaErrorInvalidValue;
  using A = typename AccType<T>::type;
  const size_t smem = attention_shared_bytes(AttentionKernel::kBackward, s, sizeof(A));
  return launch(backward_kernel<false, T>, dim3(unsigned(s.B)), smem, stream, w, grad_out, params, grad_w,
                grad_params, s);
}

#define FASTGEN_ATTENTION_INSTANTIATE(T)                                                                         \
  template cudaError_t attention_read_forward<T>(const T*, const T*, T*, const AttentionShape&, cudaStream_t);  \
  template cudaError_t attention_read_backward<T>(const T*, const T*, const T*, T*, T*, const AttentionShape&,  \
                                                  cudaStream_t);                                                \
  template cudaError_t attention_write_forward<T>(const T*, const T*, const T*, T*, const AttentionShape&,      \
                                                  cudaStream_t);                                                \
  template cudaError_t attention_write_backward<T>(const T*, const T*, const T*, T*, T*, const AttentionShape&, \
                                                   cudaStream_t);

FASTGEN_ATTENTION_INSTANTIATE(float)
FASTGEN_ATTENTION_INSTANTIATE(double)
FASTGEN_ATTENTION_INSTANTIATE(__half)
FASTGEN_ATTENTION_INSTANTIATE(__nv_bfloat16)
#undef FASTGEN_ATTENTION_INSTANTIATE

}  // namespace cuda
}  // namespace fastgen
