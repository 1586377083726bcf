// Torch-free launchers of the CUDA kernels for the masked convolutions of PixelCNN / Gated PixelCNN.
//
// Plain C++ over the CUDA runtime types, so the torch binding (masked_conv_binding.cpp, compiled by the
// host compiler) can include it while the kernels (masked_conv.cu) build with nvcc alone.
//
// Semantics: fastgen.reference.masked_conv; which weights are live: fastgen/masked_conv_math.h.
// out = conv2d(x, weight * M, bias, padding (kh / 2, kw / 2)), stride 1, kh and kw odd.
// Layout contract: every tensor dense, contiguous, row-major (the binding calls .contiguous()):
//   x, grad_x [B,Cin,H,W]; out, grad_out [B,Cout,H,W]; weight, grad_weight [Cout,Cin,kh,kw]; bias [Cout].
// All pointers of one call have the element type T and live on the current device. Every launcher
// is asynchronous on `stream` and returns the launch's error (cudaErrorInvalidValue without launching
// when a grid or the shared memory would not fit the device).
//
// Types: float, double, __half, __nv_bfloat16; half types are loaded and stored as such, all
// arithmetic runs in float (double for double).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace fastgen {
namespace cuda {

// Sizes of one call (the binding has checked them: non-empty, odd kernel, int-sized, and channels
// divisible by groups when groups > 1).
struct MaskedConvShape {
  int64_t B;
  int cin, cout, H, W, kh, kw;
  int mask;    // fastgen::masked_conv::kMaskA / kMaskB / kMaskV
  int groups;  // colour groups, 1 or 3
};

// Bytes of dynamic shared memory one block of the forward / grad_x kernel needs (`acc_bytes`: 4 for
// float/half/bfloat16, 8 for double); the binding compares it with the device's opt-in limit to say
// so in words. The kernels stage as few summed channels per step as it takes to fit 48 KB, one at
// the least: this is the need at one channel.
size_t masked_conv_shared_bytes(const MaskedConvShape& s, bool grad_input, size_t acc_bytes);

// out [B,Cout,H,W] = conv2d(x, weight * M) (+ bias[o] when bias != nullptr).
template <typename T>
cudaError_t masked_conv2d_forward(const T* x, const T* weight, const T* bias, T* out, const MaskedConvShape& s,
                                  cudaStream_t stream);

// grad_x [B,Cin,H,W] given grad_out.
template <typename T>
cudaError_t masked_conv2d_grad_input(const T* grad_out, const T* weight, T* grad_x, const MaskedConvShape& s,
                                     cudaStream_t stream);

// grad_weight [Cout,Cin,kh,kw] given grad_out and x: writes the live entries only, so the caller passes
// a zeroed buffer and every masked entry stays exactly 0.
template <typename T>
cudaError_t masked_conv2d_grad_weight(const T* grad_out, const T* x, T* grad_weight, const MaskedConvShape& s,
                                      cudaStream_t stream);

// grad_bias [Cout] = grad_out summed over batch and pixels.
template <typename T>
cudaError_t masked_conv2d_grad_bias(const T* grad_out, T* grad_bias, const MaskedConvShape& s, cudaStream_t stream);

}  // namespace cuda
}  // namespace fastgen
