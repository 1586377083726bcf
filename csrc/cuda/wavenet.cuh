// Torch-free launcher of the persistent CUDA kernel for cached WaveNet generation (wavenet.cu).
//
// This header is plain C++ over the CUDA runtime types, so the torch binding (wavenet_binding.cpp,
// compiled by the host compiler) can include it, while the kernel itself builds with nvcc alone,
// without a CUDA build of torch.
//
// Semantics: exactly those of the CPU kernel (csrc/cpu/wavenet_kernels_impl.h) and of
// fastgen.reference.wavenet.generate_queues: for each batch row b, lengths[b] steps of
//   embed last token; per layer: gather the k taps (ring slots and the current input), push the input
//   into its ring slot (read before write), z = gate_b + cond + taps . gate_w, a = tanh * sigmoid,
//   skip += a . skip_w, x += res_b + a . res_w (not after the last layer); head relu/1x1/relu/1x1;
//   draw the token from uniforms[b][i] (temperature 0: first argmax);
// out[b][i] = token for i < lengths[b], -1 after; positions, last_tokens and queues advance in place.
//
// Layout contract (every pointer a dense, contiguous device buffer on the current device; the
// binding checks this): the packed weights of csrc/cpu/wavenet_kernels.h, i.e. with Rp = pad8(R) etc.
//   embed [C][Rp] f32     gate_w [L][k*R][2*Rp] W    gate_b [L][2*Rp] f32
//   res_w [L-1][R][Rp] W  res_b [L-1][Rp] f32        skip_w [L][R][Sp] W    skip_b [Sp] f32
//   head1_w [S][Hp] W     head1_b [Hp] f32           head2_w [H][Cp] W      head2_b [Cp] f32
//   queues [B][Q][Rp] f32, positions/last_tokens/lengths [B] int64, uniforms [B][n] f32,
//   cond [B][Tc][L][2*Rp] f32 or null, out [B][n] int64
// where W is float32 or bfloat16 (raw bits, widened exactly like the CPU kernel does). bfloat16 matrices
// store row pairs interleaved per column: element (r, c) of an even r and (r+1, c) share the 32-bit word
// (r/2) * P + c, low half first; so R, S and H must be even and those matrices 4-byte aligned.
//
// NOTE: written and compile-checked (nvcc, sm_80 and sm_90) on a machine without a GPU; it has not
// yet run on hardware. tests/gpu/test_wavenet_gpu.py is the check to run where a GPU exists.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace fastgen {
namespace cuda {

// Same limit as the CPU kernel (csrc/cpu/wavenet_kernels.h kMaxWaveNetLayers).
constexpr int kWaveNetMaxLayers = 256;

enum class WaveNetWeightType : int { kFloat32 = 0, kBFloat16 = 1 };

// Where the kernel reads the weight matrices and biases from during generation.
//   kAuto:   on-chip shared memory when the whole set fits one block's opt-in shared memory and
//            every row gets its own SM (B <= SM count); otherwise global memory (L2-resident).
//   kGlobal: always global memory.
//   kShared: shared memory whenever it fits (else global, silently).
enum class WaveNetWeightPlacement : int { kAuto = 0, kGlobal = 1, kShared = 2 };

struct WaveNetParamsCuda {
  // Sizes (the binding has checked they are positive and fit an int).
  int64_t B, n;           // batch rows, samples (steps) in this call
  int C, R, S, H, L, k;   // classes, residual, skip, head widths, layers, kernel size
  int64_t Q;              // queue rows per batch row: sum over layers of (k-1) * dilations[l]
  int32_t dilations[kWaveNetMaxLayers];  // [L], each >= 1

  // Packed weights (device pointers). Matrices are float or bfloat16 bits per weight_type.
  WaveNetWeightType weight_type;
  const float* embed;
  const void* gate_w;
  const float* gate_b;
  const void* res_w;  // may be null when L == 1
  const float* res_b;  // may be null when L == 1
  const void* skip_w;
  const float* skip_b;
  const void* head1_w;
  const float* head1_b;
  const void* head2_w;
  const float* head2_b;

  // Generation state, advanced in place.
  float* queues;          // [B][Q][Rp]
  int64_t* positions;     // [B]  time index of each row's next input
  int64_t* last_tokens;   // [B]  each row's next input token (in [0, C))
  const float* cond;      // [B][Tc][L][2*Rp] or null
  int64_t cond_row_stride;   // Tc * L * 2 * Rp
  int64_t cond_step_stride;  // L * 2 * Rp, or 0 when Tc = 1
  const float* uniforms;     // [B][n] in [0, 1)
  const int64_t* lengths;    // [B] in [0, n]
  float temperature;         // >= 0; 0 = argmax
  int64_t* out;              // [B][n]

  WaveNetWeightPlacement placement;
};

// Threads per block of the generation kernel (one block per batch row).
constexpr int kWaveNetThreads = 512;

// Bytes of dynamic shared memory one block needs: scratch only (weights_in_shared = false), or scratch
// plus the whole weight set (true).
size_t wavenet_shared_bytes(const WaveNetParamsCuda& p, bool weights_in_shared);

// Launches the generation kernel for all p.B rows on `stream` (asynchronous) and returns the launch's
// error. cudaErrorInvalidValue without launching when even the scratch does not fit the device's
// opt-in shared memory per block (the binding checks this first and says so in words). B == 0 or
// n == 0 launches nothing.
cudaError_t launch_wavenet_generate(const WaveNetParamsCuda& p, cudaStream_t stream);

}  // namespace cuda
}  // namespace fastgen
