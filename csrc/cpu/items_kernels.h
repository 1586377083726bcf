// Torch-free entry points of the CPU score-and-sample / score-and-rank kernels of IRGAN
// (items_kernels_impl.h), built per instruction set like the other families. Semantics:
// fastgen/reference/items.py. The kernels never hold the [users x items] score matrix: they stream
// item tiles past a group of users and keep per-user state only.
#pragma once

#include <cstdint>

namespace fastgen {
namespace cpu {

// score[u, i] = user[u] . item[i] + bias[i]; every array dense, row-major.
template <typename T>
struct ItemScores {
  int64_t U, I, d;
  const T* user;  // [U, d]
  const T* item;  // [I, d]
  const T* bias;  // [I]
};

// out[u, j] = the first item whose softmax(score[u] * inv_temperature) CDF exceeds uniforms[u, j].
template <typename T>
struct SamplePlan {
  ItemScores<T> s;
  T inv_temperature;
  int64_t k;
  const T* uniforms;  // [U, k], each in [0, 1)
  int64_t* out;       // [U, k]
};

// The k best (score, item) of each user, descending, ties to the lower index, excluded items skipped;
// missing places get (-inf, -1).
template <typename T>
struct TopkPlan {
  ItemScores<T> s;
  int64_t k;
  const int64_t* indptr;    // [U + 1]
  const int64_t* excluded;  // [nnz], ascending within each user's range
  T* scores_out;            // [U, k]
  int64_t* items_out;       // [U, k]
};

template <typename T>
struct ItemsKernels {
  int64_t panel;  // users per task: the binding parallelises over panels [u0, u0 + panel)
  void (*sample)(const SamplePlan<T>&, int64_t u0, int64_t u1);
  void (*topk)(const TopkPlan<T>&, int64_t u0, int64_t u1);
};

namespace generic {
template <typename T>
ItemsKernels<T> items_kernels();
}
namespace avx2 {
template <typename T>
ItemsKernels<T> items_kernels();
}
namespace avx512 {  // items_kernels_avx512.cpp
template <typename T>
ItemsKernels<T> items_kernels();
}

}  // namespace cpu
}  // namespace fastgen
