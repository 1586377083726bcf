// CUDA kernels of IRGAN's sample_items / topk_items (items.cuh has the contract). Torch-free.
//
// A block scores one chunk of kItemsChunk items for one user: the user's vector in shared memory,
// each thread kPer items, each score one FMA chain over d plus the bias (the same function in every
// kernel, so every kernel sees the same bits). Reductions are plain shared-memory trees (in double:
// exact for a float max, and the sums' accumulator).
//   chunk_stats  grid (chunks, U): the chunk's max m and sum of exp((s - m) * inv_t)
//   sample_walk  grid (draws): the draw's chunk again, its weights' running sum (a block scan, items
//                in index order) and the first item past the target
//   chunk_topk   grid (chunks, U): scores staged in shared memory, excluded items (binary search in
//                the user's sorted run) set to -inf, then kc rounds of a block arg-max
#include "items.cuh"

#include <cfloat>
#include <climits>
#include <cmath>

namespace fastgen {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kPer = static_cast<int>(kItemsChunk) / kThreads;

__device__ __forceinline__ float exp_of(float x) { return expf(x); }
__device__ __forceinline__ double exp_of(double x) { return exp(x); }

template <typename T>
__device__ __forceinline__ T neg_inf() {
  return -static_cast<T>(INFINITY);
}

// The user's vector into shared memory (all threads; synchronises).
template <typename T>
__device__ void load_user(const T* user, int64_t u, int d, T* u_sh) {
  for (int k = threadIdx.x; k < d; k += kThreads) u_sh[k] = user[u * d + k];
  __syncthreads();
}

template <typename T>
__device__ __forceinline__ T score(const T* u_sh, const T* item, const T* bias, int64_t i, int d) {
  const T* row = item + i * d;
  T acc = T(0);
  for (int k = 0; k < d; ++k) acc = fma(row[k], u_sh[k], acc);
  return acc + bias[i];
}

struct Max {
  __device__ double operator()(double a, double b) const { return a > b ? a : b; }
};
struct Sum {
  __device__ double operator()(double a, double b) const { return a + b; }
};
struct Min {
  __device__ long long operator()(long long a, long long b) const { return a < b ? a : b; }
};
struct MaxIndex {
  __device__ long long operator()(long long a, long long b) const { return a > b ? a : b; }
};

// Every thread gets op over the block's values.
template <typename V, typename Op>
__device__ V block_reduce(V v, Op op, V* scratch) {
  scratch[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (static_cast<int>(threadIdx.x) < s) scratch[threadIdx.x] = op(scratch[threadIdx.x], scratch[threadIdx.x + s]);
    __syncthreads();
  }
  const V r = scratch[0];
  __syncthreads();
  return r;
}

template <typename T>
__global__ void chunk_stats_kernel(const T* user, const T* item, const T* bias, ItemsShape s, T inv_t, T* chunk_max,
                                   double* chunk_sum) {
  extern __shared__ unsigned char smem[];
  T* u_sh = reinterpret_cast<T*>(smem);
  __shared__ double scratch[kThreads];
  const int64_t c = blockIdx.x, u = blockIdx.y;
  load_user(user, u, s.d, u_sh);
  T sc[kPer];
  double m = -INFINITY;
  for (int j = 0; j < kPer; ++j) {
    const int64_t i = c * kItemsChunk + j * kThreads + threadIdx.x;
    sc[j] = i < s.I ? score(u_sh, item, bias, i, s.d) : neg_inf<T>();
    m = Max()(m, double(sc[j]));
  }
  const T mt = T(block_reduce(m, Max(), scratch));
  double sum = 0;
  for (int j = 0; j < kPer; ++j)
    if (c * kItemsChunk + j * kThreads + threadIdx.x < s.I) sum += double(exp_of((sc[j] - mt) * inv_t));
  sum = block_reduce(sum, Sum(), scratch);
  if (threadIdx.x == 0) {
    chunk_max[u * s.chunks() + c] = mt;
    chunk_sum[u * s.chunks() + c] = sum;
  }
}

template <typename T>
__global__ void sample_walk_kernel(const T* user, const T* item, const T* bias, ItemsShape s, T inv_t,
                                   const int64_t* draw_user, const int64_t* chunk, const double* target,
                                   int64_t* out) {
  extern __shared__ unsigned char smem[];
  T* u_sh = reinterpret_cast<T*>(smem);
  __shared__ double scratch[kThreads];
  __shared__ long long index_scratch[kThreads];
  const int64_t draw = blockIdx.x, u = draw_user[draw], c = chunk[draw];
  load_user(user, u, s.d, u_sh);
  // thread t owns the consecutive items first + t * kPer + j: a block scan keeps index order
  const int64_t first = c * kItemsChunk + threadIdx.x * kPer;
  T sc[kPer];
  double m = -INFINITY;
  for (int j = 0; j < kPer; ++j) {
    sc[j] = first + j < s.I ? score(u_sh, item, bias, first + j, s.d) : neg_inf<T>();
    m = Max()(m, double(sc[j]));
  }
  const T mt = T(block_reduce(m, Max(), scratch));
  double e[kPer], own = 0;
  long long last_positive = -1;
  for (int j = 0; j < kPer; ++j) {
    e[j] = first + j < s.I ? double(exp_of((sc[j] - mt) * inv_t)) : 0.0;
    own += e[j];
    if (e[j] > 0) last_positive = first + j;
  }
  // inclusive scan of the threads' sums (Hillis-Steele), then this thread's exclusive prefix
  scratch[threadIdx.x] = own;
  __syncthreads();
  for (int step = 1; step < kThreads; step <<= 1) {
    const double add = static_cast<int>(threadIdx.x) >= step ? scratch[threadIdx.x - step] : 0.0;
    __syncthreads();
    scratch[threadIdx.x] += add;
    __syncthreads();
  }
  double running = scratch[threadIdx.x] - own;
  __syncthreads();
  long long found = LLONG_MAX;
  for (int j = 0; j < kPer && found == LLONG_MAX; ++j) {
    running += e[j];
    if (first + j < s.I && running > target[draw]) found = first + j;
  }
  found = block_reduce(found, Min(), index_scratch);
  last_positive = block_reduce(last_positive, MaxIndex(), index_scratch);
  if (threadIdx.x == 0)
    out[draw] = found != LLONG_MAX ? found : (c == s.chunks() - 1 ? s.I - 1 : last_positive);
}

template <typename T>
__global__ void chunk_topk_kernel(const T* user, const T* item, const T* bias, ItemsShape s, int kc,
                                  const int64_t* indptr, const int64_t* excluded, T* cand_scores,
                                  int64_t* cand_items) {
  extern __shared__ unsigned char smem[];
  T* u_sh = reinterpret_cast<T*>(smem);
  T* sc = u_sh + s.d;  // [kItemsChunk]
  __shared__ double best_score[kThreads];
  __shared__ int best_local[kThreads];
  const int64_t c = blockIdx.x, u = blockIdx.y;
  load_user(user, u, s.d, u_sh);
  const int64_t lo0 = indptr != nullptr ? indptr[u] : 0, hi0 = indptr != nullptr ? indptr[u + 1] : 0;
  for (int l = threadIdx.x; l < kItemsChunk; l += kThreads) {
    const int64_t i = c * kItemsChunk + l;
    T v = neg_inf<T>();
    if (i < s.I) {
      int64_t lo = lo0, hi = hi0;  // lower_bound of i in the user's sorted run
      while (lo < hi) {
        const int64_t mid = (lo + hi) / 2;
        if (excluded[mid] < i) lo = mid + 1; else hi = mid;
      }
      if (!(lo < hi0 && excluded[lo] == i)) v = score(u_sh, item, bias, i, s.d);
    }
    sc[l] = v;
  }
  __syncthreads();
  const int64_t base = (u * s.chunks() + c) * kc;
  for (int r = 0; r < kc; ++r) {
    double bs = -INFINITY;
    int bl = kItemsChunk;
    for (int l = threadIdx.x; l < kItemsChunk; l += kThreads)
      if (double(sc[l]) > bs || (double(sc[l]) == bs && l < bl)) bs = double(sc[l]), bl = l;
    best_score[threadIdx.x] = bs;
    best_local[threadIdx.x] = bl;
    __syncthreads();
    for (int h = kThreads / 2; h > 0; h >>= 1) {
      const int t = threadIdx.x;
      if (t < h && (best_score[t + h] > best_score[t] ||
                    (best_score[t + h] == best_score[t] && best_local[t + h] < best_local[t]))) {
        best_score[t] = best_score[t + h];
        best_local[t] = best_local[t + h];
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      const bool any = best_score[0] > -INFINITY;
      cand_scores[base + r] = T(best_score[0]);
      cand_items[base + r] = any ? c * kItemsChunk + best_local[0] : -1;
      if (any) sc[best_local[0]] = neg_inf<T>();
    }
    __syncthreads();
  }
}

}  // namespace

template <typename T>
cudaError_t items_chunk_stats(const T* user, const T* item, const T* bias, const ItemsShape& s, T inv_t,
                              T* chunk_max, double* chunk_sum, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(s.chunks()), static_cast<unsigned>(s.U));
  chunk_stats_kernel<T><<<grid, kThreads, s.d * sizeof(T), stream>>>(user, item, bias, s, inv_t, chunk_max, chunk_sum);
  return cudaGetLastError();
}

template <typename T>
cudaError_t items_sample_walk(const T* user, const T* item, const T* bias, const ItemsShape& s, T inv_t, int64_t n,
                              const int64_t* draw_user, const int64_t* chunk, const double* target, int64_t* out,
                              cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  sample_walk_kernel<T><<<static_cast<unsigned>(n), kThreads, s.d * sizeof(T), stream>>>(
      user, item, bias, s, inv_t, draw_user, chunk, target, out);
  return cudaGetLastError();
}

template <typename T>
cudaError_t items_chunk_topk(const T* user, const T* item, const T* bias, const ItemsShape& s, int kc,
                             const int64_t* indptr, const int64_t* excluded, T* cand_scores, int64_t* cand_items,
                             cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(s.chunks()), static_cast<unsigned>(s.U));
  const size_t smem = (s.d + kItemsChunk) * sizeof(T);
  chunk_topk_kernel<T><<<grid, kThreads, smem, stream>>>(user, item, bias, s, kc, indptr, excluded, cand_scores,
                                                         cand_items);
  return cudaGetLastError();
}

#define FASTGEN_ITEMS_INSTANTIATE(T)                                                                              \
  template cudaError_t items_chunk_stats<T>(const T*, const T*, const T*, const ItemsShape&, T, T*, double*,      \
                                            cudaStream_t);                                                        \
  template cudaError_t items_sample_walk<T>(const T*, const T*, const T*, const ItemsShape&, T, int64_t,          \
                                            const int64_t*, const int64_t*, const double*, int64_t*,              \
                                            cudaStream_t);                                                        \
  template cudaError_t items_chunk_topk<T>(const T*, const T*, const T*, const ItemsShape&, int, const int64_t*, \
                                           const int64_t*, T*, int64_t*, cudaStream_t);
FASTGEN_ITEMS_INSTANTIATE(float)
FASTGEN_ITEMS_INSTANTIATE(double)
#undef FASTGEN_ITEMS_INSTANTIATE

}  // namespace cuda
}  // namespace fastgen
