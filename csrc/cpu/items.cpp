// Torch binding of the CPU IRGAN item kernels (items_kernels.h): argument checks that name the op and
// the argument, the exclusion lists sorted per user, threading over panels of users, and the run-time
// choice of the ISA build. Semantics: fastgen/reference/items.py.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>
#include <tuple>

#include "fastgen/isa_dispatch.h"
#include "items_kernels.h"

namespace fastgen {
namespace cpu {
namespace {

// AVX-512 where the CPU has it and FASTGEN_CPU_CAPABILITY does not name an older build ("avx2",
// "generic"), else the AVX2 / generic choice every family makes.
bool use_avx512() {
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
  static const bool use = [] {
    const char* forced = std::getenv("FASTGEN_CPU_CAPABILITY");
    if (!cpu_has_avx2_fma() || (forced != nullptr && std::string(forced) == "avx2")) return false;
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
  }();
  return use;
#else
  return false;
#endif
}

template <typename T>
const ItemsKernels<T>& kernels() {
  static const ItemsKernels<T> avx512_build = avx512::items_kernels<T>();
  return use_avx512() ? avx512_build : isa_table<&avx2::items_kernels<T>, &generic::items_kernels<T>>();
}

void check_cpu_contiguous(const char* op, const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), op, ": ", name, " must be a CPU tensor, got one on ", t.device());
  TORCH_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous (call .contiguous()), got strides ",
              t.strides(), " for shape ", t.sizes());
}

// user_emb [U, d], item_emb [I, d], item_bias [I]: one float dtype, CPU, contiguous, non-empty.
void check_scores(const char* op, const at::Tensor& user, const at::Tensor& item, const at::Tensor& bias) {
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
  check_cpu_contiguous(op, user, "user_emb");
  check_cpu_contiguous(op, item, "item_emb");
  check_cpu_contiguous(op, bias, "item_bias");
}

template <typename T>
ItemScores<T> item_scores(const at::Tensor& user, const at::Tensor& item, const at::Tensor& bias) {
  return {user.size(0), item.size(0), user.size(1), user.const_data_ptr<T>(), item.const_data_ptr<T>(),
          bias.const_data_ptr<T>()};
}

// Runs fn(u0, u1) over the panels of U users, in parallel.
template <typename Fn>
void over_panels(int64_t U, int64_t panel, const Fn& fn) {
  at::parallel_for(0, (U + panel - 1) / panel, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) fn(p * panel, std::min(U, (p + 1) * panel));
  });
}

at::Tensor sample_items(const at::Tensor& user, const at::Tensor& item, const at::Tensor& bias,
                        const at::Tensor& uniforms, double temperature) {
  const char* op = "sample_items";
  check_scores(op, user, item, bias);
  TORCH_CHECK(uniforms.dim() == 2 && uniforms.size(0) == user.size(0), op, ": uniforms must be [U, k] with U = ",
              user.size(0), ", got ", uniforms.sizes());
  TORCH_CHECK(uniforms.scalar_type() == user.scalar_type(), op, ": uniforms dtype ", uniforms.scalar_type(),
              " differs from user_emb dtype ", user.scalar_type());
  check_cpu_contiguous(op, uniforms, "uniforms");
  TORCH_CHECK(std::isfinite(temperature) && temperature > 0, op, ": temperature must be finite and > 0, got ",
              temperature);
  auto out = at::empty(uniforms.sizes(), uniforms.options().dtype(at::kLong));
  if (uniforms.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(user.scalar_type(), "sample_items", [&] {
    using T = scalar_t;
    const SamplePlan<T> plan{item_scores<T>(user, item, bias), T(1.0 / temperature), uniforms.size(1),
                             uniforms.const_data_ptr<T>(), out.mutable_data_ptr<int64_t>()};
    const auto& k = kernels<T>();
    over_panels(user.size(0), k.panel, [&](int64_t u0, int64_t u1) { k.sample(plan, u0, u1); });
  });
  return out;
}

// The exclusion lists as CSR (indptr [U + 1], indices [nnz]) checked, each user's run sorted (a copy).
at::Tensor sorted_exclusions(const char* op, const at::Tensor& indptr, const at::Tensor& indices, int64_t U,
                             int64_t I) {
  TORCH_CHECK(indptr.dim() == 1 && indptr.size(0) == U + 1, op, ": exclude indptr must be [U + 1] = [", U + 1,
              "], got ", indptr.sizes());
  TORCH_CHECK(indices.dim() == 1, op, ": exclude indices must be 1-D [nnz], got ", indices.sizes());
  TORCH_CHECK(indptr.scalar_type() == at::kLong && indices.scalar_type() == at::kLong, op,
              ": exclude indptr and indices must be int64, got ", indptr.scalar_type(), " and ", indices.scalar_type());
  check_cpu_contiguous(op, indptr, "exclude indptr");
  check_cpu_contiguous(op, indices, "exclude indices");
  const int64_t* ptr = indptr.const_data_ptr<int64_t>();
  TORCH_CHECK(ptr[0] == 0 && ptr[U] == indices.size(0), op, ": exclude indptr must start at 0 and end at nnz = ",
              indices.size(0), ", got ", ptr[0], " and ", ptr[U]);
  for (int64_t u = 0; u < U; ++u)
    TORCH_CHECK(ptr[u] <= ptr[u + 1], op, ": exclude indptr must be non-decreasing, got ", ptr[u], " then ",
                ptr[u + 1], " at user ", u);
  at::Tensor sorted = indices.clone();
  int64_t* idx = sorted.mutable_data_ptr<int64_t>();
  for (int64_t n = 0; n < sorted.size(0); ++n)
    TORCH_CHECK(idx[n] >= 0 && idx[n] < I, op, ": exclude indices must be item indices in [0, ", I, "), got ",
                idx[n]);
  at::parallel_for(0, U, 64, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; ++u) std::sort(idx + ptr[u], idx + ptr[u + 1]);
  });
  return sorted;
}

std::tuple<at::Tensor, at::Tensor> topk_items(const at::Tensor& user, const at::Tensor& item, const at::Tensor& bias,
                                              int64_t k, const std::optional<at::Tensor>& indptr,
                                              const std::optional<at::Tensor>& indices) {
  const char* op = "topk_items";
  check_scores(op, user, item, bias);
  const int64_t U = user.size(0), I = item.size(0);
  TORCH_CHECK(k >= 1 && k <= I, op, ": k must be in [1, I = ", I, "], got ", k);
  const bool has_ptr = indptr.has_value() && indptr->defined(), has_idx = indices.has_value() && indices->defined();
  TORCH_CHECK(has_ptr == has_idx, op, ": exclude needs both indptr and indices, got only ",
              has_ptr ? "indptr" : "indices");
  const at::Tensor excluded = has_ptr ? sorted_exclusions(op, *indptr, *indices, U, I) : at::Tensor();
  auto scores = at::empty({U, k}, user.options());
  auto items = at::empty({U, k}, user.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(user.scalar_type(), "topk_items", [&] {
    using T = scalar_t;
    const TopkPlan<T> plan{item_scores<T>(user, item, bias), k,
                           has_ptr ? indptr->const_data_ptr<int64_t>() : nullptr,
                           has_ptr ? excluded.const_data_ptr<int64_t>() : nullptr, scores.mutable_data_ptr<T>(),
                           items.mutable_data_ptr<int64_t>()};
    const auto& kern = kernels<T>();
    over_panels(U, kern.panel, [&](int64_t u0, int64_t u1) { kern.topk(plan, u0, u1); });
  });
  return {scores, items};
}

}  // namespace
}  // namespace cpu
}  // namespace fastgen

TORCH_LIBRARY_IMPL(fastgen, CPU, m) {
  m.impl("sample_items", &fastgen::cpu::sample_items);
  m.impl("topk_items", &fastgen::cpu::topk_items);
}
