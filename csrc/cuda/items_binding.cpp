// Torch binding of the CUDA IRGAN item kernels (items.cu): argument checks (fastgen/items_checks.h),
// launches on torch's current stream, and the small per-(user, chunk) arithmetic between them done
// with ATen on the device: the chunk weights, each draw's chunk and offset, the candidates' merge.
// Built only when torch has CUDA (the kernels themselves are torch-free).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <optional>
#include <tuple>

#include "fastgen/cuda_checks.h"
#include "fastgen/items_checks.h"
#include "items.cuh"

namespace fastgen {
namespace cuda {
namespace {

void check_like(const char* op, const at::Tensor& t, const char* name, const at::Tensor& user) {
  check_cuda_tensor(op, t, name);
  TORCH_CHECK(t.device() == user.device(), op, ": ", name, " is on ", t.device(), " but user_emb is on ",
              user.device());
  TORCH_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous (call .contiguous()), got strides ", t.strides(),
              " for shape ", t.sizes());
}

ItemsShape shape_of(const char* op, const at::Tensor& user, const at::Tensor& item, const at::Tensor& bias) {
  check_like(op, user, "user_emb", user);
  check_like(op, item, "item_emb", user);
  check_like(op, bias, "item_bias", user);
  items::check_scores(op, user, item, bias);
  // the user vector sits in shared memory next to a chunk of scores (topk): keep both within 48 KB
  TORCH_CHECK(user.size(1) <= 4096, op, ": the CUDA kernel takes d <= 4096, got d = ", user.size(1),
              "; use another backend (fastgen.set_backend('triton'))");
  const ItemsShape s{user.size(0), item.size(0), static_cast<int>(user.size(1))};
  TORCH_CHECK(s.chunks() < (int64_t(1) << 31) && s.U < 65536, op,
              ": the CUDA kernel's grid takes fewer than 65536 users per call, got U = ", s.U);
  return s;
}

at::Tensor sample_items(const at::Tensor& user, const at::Tensor& item, const at::Tensor& bias,
                        const at::Tensor& uniforms, double temperature) {
  const char* op = "sample_items";
  const ItemsShape s = shape_of(op, user, item, bias);
  check_like(op, uniforms, "uniforms", user);
  items::check_sample_args(op, user, uniforms, temperature);
  const c10::cuda::CUDAGuard guard(user.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  auto out = at::empty(uniforms.sizes(), uniforms.options().dtype(at::kLong));
  if (uniforms.numel() == 0) return out;
  const int64_t C = s.chunks();
  auto chunk_max = at::empty({s.U, C}, user.options());
  auto chunk_sum = at::empty({s.U, C}, user.options().dtype(at::kDouble));
  AT_DISPATCH_FLOATING_TYPES(user.scalar_type(), "sample_items", [&] {
    using T = scalar_t;
    const T inv_t = T(1.0 / temperature);
    check_launch(op, items_chunk_stats<T>(user.const_data_ptr<T>(), item.const_data_ptr<T>(), bias.const_data_ptr<T>(),
                                          s, inv_t, chunk_max.mutable_data_ptr<T>(),
                                          chunk_sum.mutable_data_ptr<double>(), stream));
    // each draw's chunk: the first whose inclusive prefix of W_c = S_c exp((m_c - M) / T) passes the
    // target u * total; its offset in units of that chunk's own weights
    const auto m = chunk_max.to(at::kDouble);
    const auto scale = at::exp((m - std::get<0>(m.max(1, true))) * double(inv_t));
    const auto W = chunk_sum * scale;
    const auto inclusive = W.cumsum(1);
    const auto targets = uniforms.to(at::kDouble) * inclusive.narrow(1, C - 1, 1);
    const auto chunk = at::searchsorted(inclusive, targets, false, true).clamp_max(C - 1).contiguous();
    const auto before = inclusive.gather(1, chunk) - W.gather(1, chunk);
    const auto local = ((targets - before) / scale.gather(1, chunk)).contiguous();
    const auto draw_user = at::arange(s.U, chunk.options()).unsqueeze(1).expand_as(chunk).contiguous();
    check_launch(op, items_sample_walk<T>(user.const_data_ptr<T>(), item.const_data_ptr<T>(), bias.const_data_ptr<T>(),
                                          s, inv_t, chunk.numel(), draw_user.const_data_ptr<int64_t>(),
                                          chunk.const_data_ptr<int64_t>(), local.const_data_ptr<double>(),
                                          out.mutable_data_ptr<int64_t>(), stream));
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> topk_items(const at::Tensor& user, const at::Tensor& item, const at::Tensor& bias,
                                              int64_t k, const std::optional<at::Tensor>& indptr,
                                              const std::optional<at::Tensor>& indices) {
  const char* op = "topk_items";
  const ItemsShape s = shape_of(op, user, item, bias);
  const bool has_ptr = items::check_topk_args(op, s.I, k, indptr, indices);
  const c10::cuda::CUDAGuard guard(user.device());
  at::Tensor excluded;
  if (has_ptr) {
    check_like(op, *indptr, "exclude indptr", user);
    check_like(op, *indices, "exclude indices", user);
    items::check_exclusion_layout(op, *indptr, *indices, s.U);
    // each user's run sorted: users are already in order, so sorting user * I + item sorts within runs
    const auto users = at::repeat_interleave(at::arange(s.U, indptr->options()), indptr->diff());
    excluded = std::get<0>(at::sort(users * s.I + *indices)).remainder(s.I).contiguous();
  }
  const int kc = static_cast<int>(std::min<int64_t>(k, kItemsChunk));
  const int64_t C = s.chunks();
  auto cand_scores = at::empty({s.U, C * kc}, user.options());
  auto cand_items = at::empty({s.U, C * kc}, user.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(user.scalar_type(), "topk_items", [&] {
    using T = scalar_t;
    check_launch(op, items_chunk_topk<T>(user.const_data_ptr<T>(), item.const_data_ptr<T>(), bias.const_data_ptr<T>(),
                                         s, kc, has_ptr ? indptr->const_data_ptr<int64_t>() : nullptr,
                                         has_ptr ? excluded.const_data_ptr<int64_t>() : nullptr,
                                         cand_scores.mutable_data_ptr<T>(), cand_items.mutable_data_ptr<int64_t>(),
                                         c10::cuda::getCurrentCUDAStream().stream()));
  });
  // order the candidates by item, then stably by score (descending): ties keep the lower index
  const auto by_item = at::argsort(at::where(cand_items < 0, s.I, cand_items), true, 1, false);
  const auto scores = cand_scores.gather(1, by_item), items = cand_items.gather(1, by_item);
  const auto best = std::get<1>(at::sort(scores, true, 1, true)).narrow(1, 0, k);
  return {scores.gather(1, best), items.gather(1, best)};
}

}  // namespace
}  // namespace cuda
}  // namespace fastgen

TORCH_LIBRARY_IMPL(fastgen, CUDA, m) {
  m.impl("sample_items", &fastgen::cuda::sample_items);
  m.impl("topk_items", &fastgen::cuda::topk_items);
}
