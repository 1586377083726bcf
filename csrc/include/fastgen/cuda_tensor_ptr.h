// Raw data pointers of torch tensors in the element types the torch-free CUDA kernels take. Shared by
// the CUDA bindings (csrc/cuda/*_binding.cpp); compiled only where those are (torch with CUDA, or the
// CMake compile check against a stand-in header).
#pragma once

#include <ATen/ATen.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace fastgen {
namespace cuda {

// torch's Half/BFloat16 have the layout of CUDA's __half/__nv_bfloat16, which the kernels take.
template <typename S> struct CudaScalar { using type = S; };
template <> struct CudaScalar<at::Half> { using type = __half; };
template <> struct CudaScalar<at::BFloat16> { using type = __nv_bfloat16; };

template <typename S>
const typename CudaScalar<S>::type* in_ptr(const at::Tensor& t) {
  return reinterpret_cast<const typename CudaScalar<S>::type*>(t.const_data_ptr<S>());
}

template <typename S>
typename CudaScalar<S>::type* out_ptr(at::Tensor& t) {
  return reinterpret_cast<typename CudaScalar<S>::type*>(t.mutable_data_ptr<S>());
}

}  // namespace cuda
}  // namespace fastgen
