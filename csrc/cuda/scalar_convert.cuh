// The compute type and the explicit element conversions of the torch-free CUDA kernels: float for
// float/half/bfloat16 storage, double for double. Explicit because torch builds define
// __CUDA_NO_HALF_CONVERSIONS__ (no implicit half <-> float). nvcc only.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace fastgen {
namespace cuda {

template <typename T> struct AccType { using type = float; };
template <> struct AccType<double> { using type = double; };

__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }
__device__ __forceinline__ float to_acc(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ void put(float* p, float v) { *p = v; }
__device__ __forceinline__ void put(double* p, double v) { *p = v; }
__device__ __forceinline__ void put(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void put(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

}  // namespace cuda
}  // namespace fastgen
