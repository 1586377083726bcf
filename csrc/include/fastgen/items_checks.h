// Argument checks of sample_items and topk_items shared by the CPU and CUDA torch bindings
// (csrc/cpu/items.cpp, csrc/cuda/items_binding.cpp), so a bad call fails with the same message on
// either device. Each binding checks devices and contiguity itself. Host only.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <optional>

namespace fastgen {
namespace items {

// user_emb [U, d], item_emb [I, d], item_bias [I]: one float dtype, non-empty.
inline void check_scores(const char* op, const at::Tensor& user, const at::Tensor& item, const at::Tensor& bias) {
  TORCH_CHECK(user.dim() == 2, op, ": user_emb must be 2-D [U, d], got ", user.sizes());
  TORCH_CHECK(item.dim() == 2, op, ": item_emb must be 2-D [I, d], got ", item.sizes());
  TORCH_CHECK(user.size(1) == item.size(1), op, ": user_emb has d = ", user.size(1), " but item_emb has d = ",
              item.size(1));
  TORCH_CHECK(bias.dim() == 1 && bias.size(0) == item.size(0), op, ": item_bias must be [I] = [", item.size(0),
              "], got ", bias.sizes());
  TORCH_CHECK(user.scalar_type() == at::kFloat || user.scalar_type() == at::kDouble, op,
              ": user_emb must be float32 or float64, got ", user.scalar_type());
  TORCH_CHECK(item.scalar_type() == user.scalar_type(), op, ": item_emb dtype ", item.scalar_type(),
              " differs from user_emb dtype ", user.scalar_type());
  TORCH_CHECK(bias.scalar_type() == user.scalar_type(), op, ": item_bias dtype ", bias.scalar_type(),
              " differs from user_emb dtype ", user.scalar_type());
  TORCH_CHECK(user.size(0) >= 1 && item.size(0) >= 1 && user.size(1) >= 1, op,
              ": user_emb and item_emb must be non-empty, got ", user.sizes(), " and ", item.sizes());
}

// uniforms [U, k] of user_emb's dtype; a finite temperature > 0.
inline void check_sample_args(const char* op, const at::Tensor& user, const at::Tensor& uniforms,
                              double temperature) {
  TORCH_CHECK(uniforms.dim() == 2 && uniforms.size(0) == user.size(0), op, ": uniforms must be [U, k] with U = ",
              user.size(0), ", got ", uniforms.sizes());
  TORCH_CHECK(uniforms.scalar_type() == user.scalar_type(), op, ": uniforms dtype ", uniforms.scalar_type(),
              " differs from user_emb dtype ", user.scalar_type());
  TORCH_CHECK(std::isfinite(temperature) && temperature > 0, op, ": temperature must be finite and > 0, got ",
              temperature);
}

// k in [1, I]; the exclusion lists given whole (both CSR tensors) or not at all. True when given.
inline bool check_topk_args(const char* op, int64_t I, int64_t k, const std::optional<at::Tensor>& indptr,
                            const std::optional<at::Tensor>& indices) {
  TORCH_CHECK(k >= 1 && k <= I, op, ": k must be in [1, I = ", I, "], got ", k);
  const bool has_ptr = indptr.has_value() && indptr->defined(), has_idx = indices.has_value() && indices->defined();
  TORCH_CHECK(has_ptr == has_idx, op, ": exclude needs both indptr and indices, got only ",
              has_ptr ? "indptr" : "indices");
  return has_ptr;
}

// The exclusion lists' layout: indptr [U + 1], indices [nnz], both int64. (Their values are checked
// where they are read: the CPU binding walks them anyway; the Python wrapper checks them for CUDA.)
inline void check_exclusion_layout(const char* op, const at::Tensor& indptr, const at::Tensor& indices,
                                   int64_t U) {
  TORCH_CHECK(indptr.dim() == 1 && indptr.size(0) == U + 1, op, ": exclude indptr must be [U + 1] = [", U + 1,
              "], got ", indptr.sizes());
  TORCH_CHECK(indices.dim() == 1, op, ": exclude indices must be 1-D [nnz], got ", indices.sizes());
  TORCH_CHECK(indptr.scalar_type() == at::kLong && indices.scalar_type() == at::kLong, op,
              ": exclude indptr and indices must be int64, got ", indptr.scalar_type(), " and ",
              indices.scalar_type());
}

}  // namespace items
}  // namespace fastgen
