// Torch-free launchers of the CUDA kernels for DRAW's Gaussian-filterbank attention.
//
// This header is plain C++ over the CUDA runtime types, so the torch binding (attention_binding.cpp,
// compiled by the host compiler) can include it, while the kernels themselves (attention.cu) build
// with nvcc alone, without a CUDA build of torch.
//
// Layout contract: every tensor is dense, contiguous and row-major (the binding calls .contiguous()):
//   image [B,C,H,W] (x, write output, canvas, write grad_out), patch [B,C,N,N] (w, read output,
//   read grad_out), params [B,5]. All pointers of one call have the same element type T and live on
//   the current device. Every launcher is asynchronous on `stream` and returns the launch's error.
//
// Types: float, double, __half, __nv_bfloat16. Half types are loaded and stored as such, all
// arithmetic (filterbanks, products, reductions) runs in float; double runs in double.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace fastgen {
namespace cuda {

// Sizes of one call (the binding has checked H, W, N >= 1 and that they fit an int).
struct AttentionShape {
  int64_t B, C;  // batch, channels
  int H, W;      // image size
  int N;         // filters per axis (the patch is N x N)
};

// Which kernel a shared-memory query is about.
enum class AttentionKernel { kReadForward, kWriteForward, kBackward };

// Bytes of dynamic shared memory one block of `kernel` needs; `acc_bytes` is sizeof the compute type
// (4 for float/half/bfloat16, 8 for double). A launcher whose need exceeds the device's opt-in limit
// (cudaDevAttrMaxSharedMemoryPerBlockOptin) returns cudaErrorInvalidValue without launching; the
// binding uses this to say so in words.
size_t attention_shared_bytes(AttentionKernel kernel, const AttentionShape& s, size_t acc_bytes);

// out [B,C,N,N] = gamma * Fy x Fx^T.
template <typename T>
cudaError_t attention_read_forward(const T* x, const T* params, T* out, const AttentionShape& s, cudaStream_t stream);

// grad_x [B,C,H,W] and grad_params [B,5] of attention_read, given grad_out [B,C,N,N].
template <typename T>
cudaError_t attention_read_backward(const T* grad_out, const T* x, const T* params, T* grad_x, T* grad_params,
                                    const AttentionShape& s, cudaStream_t stream);

// out [B,C,H,W] = (1/gamma) Fy^T w Fx (+ canvas when canvas != nullptr; canvas may equal out).
template <typename T>
cudaError_t attention_write_forward(const T* w, const T* params, const T* canvas, T* out, const AttentionShape& s,
                                    cudaStream_t stream);

// grad_w [B,C,N,N] and grad_params [B,5] of attention_write, given grad_out [B,C,H,W] (the canvas
// term has gradient grad_out itself, which the caller passes on without a kernel).
template <typename T>
cudaError_t attention_write_backward(const T* grad_out, const T* w, const T* params, T* grad_w, T* grad_params,
                                     const AttentionShape& s, cudaStream_t stream);

}  // namespace cuda
}  // namespace fastgen
