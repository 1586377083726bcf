// Torch-free launchers of the CUDA kernels of IRGAN's sample_items / topk_items (items.cu).
//
// Plain C++ over the CUDA runtime types, so the torch binding (items_binding.cpp, compiled by the host
// compiler) can include it while the kernels build with nvcc alone. Semantics:
// fastgen/reference/items.py; score[u, i] = user[u] . item[i] + bias[i]. The items are cut into chunks
// of kItemsChunk; no kernel forms the [U, I] score matrix: per-chunk results only.
// Layout contract: every array dense, contiguous, row-major, of element type T (float or double)
// unless stated, on the current device. Launchers are asynchronous on `stream` and return the
// launch's error.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "fastgen/macros.h"

namespace fastgen {
namespace cuda {

constexpr int64_t kItemsChunk = 1024;

struct ItemsShape {
  int64_t U, I;
  int d;
  FASTGEN_HOST_DEVICE int64_t chunks() const { return (I + kItemsChunk - 1) / kItemsChunk; }
};

// chunk_max [U, chunks] = max score of each chunk; chunk_sum [U, chunks] (double) = sum over the
// chunk of exp((score - chunk_max) * inv_t).
template <typename T>
cudaError_t items_chunk_stats(const T* user, const T* item, const T* bias, const ItemsShape& s, T inv_t,
                              T* chunk_max, double* chunk_sum, cudaStream_t stream);

// One draw per entry of chunk [n] (long) / target [n] (double): out[n] = the first item of that chunk
// of user draw_user[n] (long) whose running sum of exp((score - chunk max) * inv_t) exceeds target;
// where none does (a near-tie with the next chunk), the chunk's last item of positive weight, or I - 1
// in the last chunk.
template <typename T>
cudaError_t items_sample_walk(const T* user, const T* item, const T* bias, const ItemsShape& s, T inv_t, int64_t n,
                              const int64_t* draw_user, const int64_t* chunk, const double* target, int64_t* out,
                              cudaStream_t stream);

// Per (user, chunk) the chunk's kc best (score, item) (ties to the lower index, -inf / -1 past its
// eligible items) into cand_scores / cand_items [U, chunks, kc]; items listed in the user's run
// excluded[indptr[u], indptr[u + 1]) (ascending) skipped; indptr may be null (no exclusions).
template <typename T>
cudaError_t items_chunk_topk(const T* user, const T* item, const T* bias, const ItemsShape& s, int kc,
                             const int64_t* indptr, const int64_t* excluded, T* cand_scores, int64_t* cand_items,
                             cudaStream_t stream);

}  // namespace cuda
}  // namespace fastgen
