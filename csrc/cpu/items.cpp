// Torch binding of the CPU IRGAN item kernels (items_kernels.h): argument checks that name the op and
// the argument, the exclusion lists sorted per user, threading over panels of users, and the run-time
// choice of the ISA build. Semantics: fastgen/reference/items.py.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <optional>
#include <tuple>

#include "fastgen/isa_dispatch.h"
#include "fastgen/items_checks.h"
#include "items_kernels.h"

namespace fastgen {
namespace cpu {
namespace {

// The AVX-512 build where the CPU has it (cpu_has_avx512), else the AVX2 / generic choice.
template <typename T>
const ItemsKernels<T>& kernels() {
  return wide_isa_table<&avx512::items_kernels<T>, &avx2::items_kernels<T>, &generic::items_kernels<T>>();
}

void check_cpu_contiguous(const char* op, const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), op, ": ", name, " must be a CPU tensor, got one on ", t.device());
  TORCH_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous (call .contiguous()), got strides ",
              t.strides(), " for shape ", t.sizes());
}

// The shared shape and dtype checks (fastgen/items_checks.h), then CPU and contiguous.
void check_scores(const char* op, const at::Tensor& user, const at::Tensor& item, const at::Tensor& bias) {
  items::check_scores(op, user, item, bias);
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
  items::check_sample_args(op, user, uniforms, temperature);
  check_cpu_contiguous(op, uniforms, "uniforms");
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
  items::check_exclusion_layout(op, indptr, indices, U);
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
  const bool has_ptr = items::check_topk_args(op, I, k, indptr, indices);
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
