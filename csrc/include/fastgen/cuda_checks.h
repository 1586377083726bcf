// Checks shared by the CUDA torch bindings (csrc/cuda/*_binding.cpp): the tensor is on a CUDA
// device, a block's shared memory fits the device, the launch succeeded. Messages name the op, so a
// failure reads the same from every family. (Shape and dtype checks are shared with the CPU bindings:
// fastgen/checks.h, fastgen/wavenet_checks.h.)
#pragma once

#include <ATen/ATen.h>

#include <cstddef>
#include <string>

#include "fastgen/cuda_launch.h"

namespace fastgen {
namespace cuda {

inline void check_cuda_tensor(const char* op, const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), op, ": the CUDA kernel needs CUDA tensors, got ", name, " on ", t.device());
}

// `sizes` describes the call ("N=5, H=28, W=28 in Float"), `advice` what to do instead.
inline void check_shared_memory(const char* op, size_t need, int device, const std::string& sizes,
                                const char* advice) {
  size_t have = 0;
  const cudaError_t err = optin_shared_bytes(device, &have);
  TORCH_CHECK(err == cudaSuccess, op, ": cannot query the device's shared memory: ", cudaGetErrorString(err));
  TORCH_CHECK(need <= have, op, ": the CUDA kernel needs ", need, " bytes of shared memory per block for ", sizes,
              ", but the device allows ", have, "; ", advice);
}

inline void check_launch(const char* op, cudaError_t err) {
  TORCH_CHECK(err == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(err));
}

}  // namespace cuda
}  // namespace fastgen
