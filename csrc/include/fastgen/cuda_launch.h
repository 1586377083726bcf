// Launch helpers shared by the torch-free CUDA kernels (csrc/cuda/*.cu) and their bindings: the
// device's shared-memory limit and the raising of a kernel's dynamic limit. Plain C++ over the CUDA
// runtime, so it builds with nvcc alone and with the host compiler.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace fastgen {
namespace cuda {

// Shared memory one block may use on `device` once its kernel raised its limit (the opt-in limit,
// e.g. 227 KB on H100, against the default 48 KB).
inline cudaError_t optin_shared_bytes(int device, size_t* bytes) {
  int have = 0;
  const cudaError_t e = cudaDeviceGetAttribute(&have, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  *bytes = e == cudaSuccess ? static_cast<size_t>(have) : 0;
  return e;
}

// The same for the current device (what a launcher runs on).
inline cudaError_t current_optin_shared_bytes(size_t* bytes) {
  int device = 0;
  const cudaError_t e = cudaGetDevice(&device);
  if (e != cudaSuccess) return e;
  return optin_shared_bytes(device, bytes);
}

// Lets `kernel` take `smem` bytes of dynamic shared memory: a kernel needing more than the default
// 48 KB must say so before its launch, or the launch fails.
template <typename Kernel>
cudaError_t allow_shared_bytes(Kernel kernel, size_t smem) {
  if (smem <= 48 * 1024) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
}

}  // namespace cuda
}  // namespace fastgen
