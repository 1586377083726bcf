// Persistent CUDA kernel for cached WaveNet generation (see wavenet.cuh for the contract).
//
// Run on hardware once (H200, 2026-11-29): tests/gpu/test_wavenet_gpu.py gave the CPU kernel's and the
// plain-PyTorch reference's tokens and cache state, token for token (fp32/bf16, both weight placements,
// k = 2 and 3, conditioning, streaming, lengths); benchmarks/results/gpu.md has its speed.
//
// Shape of the work (the baseline of NVIDIA's nv-wavenet "persistent" design):
// - One launch generates all n samples: one thread block per batch row (rows are independent, so
//   blocks never wait for each other) loops over the row's samples and all layers inside the kernel,
//   with __syncthreads() between the phases of a step. The generation state (the current input h,
//   the gathered taps, the gated output, the skip sum, head activations, logits) lives in shared
//   memory for the whole launch; the ring-buffer queues stay in global memory (each block touches
//   only its own row's rings, k-1 rows read and one row written per layer and step).
// - Weights: when the whole packed set fits one block's opt-in shared memory (small models: up to
//   ~220 KB on A100/H100), each block stages it into shared memory once per launch and reads it
//   from there for every sample ("weights resident on chip"). Otherwise (the benchmark model R=64,
//   S=128, 20 layers is ~2.3 MB in float32) they are read from global memory, which the L2 cache
//   (40-50 MB) keeps hot for every block. nv-wavenet's faster multi-block variant, which splits the
//   layers over several blocks/SMs so that each keeps its share of the weights in registers or shared
//   memory and passes activations on with flag-based synchronisation in global memory, is future work.
// - Every matrix-vector product of a step (gate [k*R x 2Rp], skip+residual [R x (Sp+Rp)], head1
//   [S x Hp], head2 [H x C]) is spread over the block with one thread per output column and, when the
//   columns are fewer than the threads, the input rows split into `splits` contiguous ranges: item
//   s*P + c = the partial dot product of column c over range s. Split 0 starts from the column's bias
//   (and conditioning, or the running skip / residual value), so with a single split the summation
//   order is exactly the CPU kernel's (init, then a fused multiply-add per input row in order); the
//   next phase adds the splits in order. Consecutive threads read consecutive columns of one weight
//   row: coalesced loads, and conflict-free shared-memory reads when the weights are staged.
// - Sampling runs in warp 0: the logits' first argmax by a warp reduction (ties -> lower index), the
//   weights exp((logit - max) / T) per lane, the cdf as a running sum in double in ONE thread (the
//   order the CPU kernel and torch.cumsum use; C = 256 adds are cheap), and the search for the first
//   cdf[c] > u * cdf[C-1] (wavenet::search_cdf's rule) with warp ballots.
// The per-element rules are the shared ones of fastgen/wavenet_math.h: ring_slot, gated_unit, pad8.
#include "wavenet.cuh"

#include "fastgen/cuda_launch.h"
#include "fastgen/wavenet_math.h"

namespace fastgen {
namespace cuda {
namespace {

namespace wm = fastgen::wavenet;

constexpr int kThreads = kWaveNetThreads;
constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;
static_assert(kThreads % kWarp == 0 && kThreads >= kWarp, "whole warps, at least one");

// Sizes of one call, padded like the packed layout.
struct Dims {
  int C, R, S, H, L, k;
  int Rp, Sp, Hp, Cp, kR;
};

__host__ __device__ inline Dims dims_of(const WaveNetParamsCuda& p) {
  Dims d;
  d.C = p.C;
  d.R = p.R;
  d.S = p.S;
  d.H = p.H;
  d.L = p.L;
  d.k = p.k;
  d.Rp = static_cast<int>(wm::pad8(p.R));
  d.Sp = static_cast<int>(wm::pad8(p.S));
  d.Hp = static_cast<int>(wm::pad8(p.H));
  d.Cp = static_cast<int>(wm::pad8(p.C));
  d.kR = p.k * p.R;
  return d;
}

// Input-row ranges one matvec with P output columns is split into (see the file comment).
__host__ __device__ inline int num_splits(int P) { return P >= kThreads ? 1 : kThreads / P; }

__host__ __device__ inline size_t align16(size_t bytes) { return (bytes + 15) / 16 * 16; }

// Byte offsets of the shared-memory buffers; one function for the host (sizing) and the device
// (carving), so the two cannot disagree.
struct Layout {
  size_t tx;       // float [(k-1)*R + Rp]: gathered ring taps, then the current input h (the gate's input)
  size_t a;        // float [Rp]  gated output
  size_t skip;     // float [Sp]  skip sum
  size_t hidden;   // float [Hp]  head hidden layer
  size_t logits;   // float [Cp]
  size_t cdf;      // float [Cp]
  size_t partial;  // float [max(P, kThreads)] over the matvecs' P: split partial sums
  size_t ring_off; // int64 [L]   first queue row of each layer's ring
  size_t slots;    // int64 [L*k] per layer: the k-1 tap slots (tap j at j), then the push slot (at k-1)
  size_t token;    // int64 [1]   the row's next input token
  // Only with the weights staged in shared memory:
  size_t gate_b, res_b, skip_b, head1_b, head2_b;  // float
  size_t gate_w, res_w, skip_w, head1_w, head2_w;  // weight type (wbytes each)
  size_t total;
};

__host__ __device__ inline Layout make_layout(const Dims& d, size_t wbytes, bool weights_in_shared) {
  Layout l = {};
  size_t o = 0;
  auto take = [&o](size_t bytes) {
    const size_t at = o;
    o = align16(o + bytes);
    return at;
  };
  const size_t f = sizeof(float), i64 = sizeof(int64_t);
  size_t partial = size_t(kThreads);
  const size_t widths[4] = {size_t(2 * d.Rp), size_t(d.Sp + d.Rp), size_t(d.Hp), size_t(d.Cp)};
  for (size_t w : widths) partial = w > partial ? w : partial;
  l.tx = take(f * (size_t(d.k - 1) * d.R + d.Rp));
  l.a = take(f * d.Rp);
  l.skip = take(f * d.Sp);
  l.hidden = take(f * d.Hp);
  l.logits = take(f * d.Cp);
  l.cdf = take(f * d.Cp);
  l.partial = take(f * partial);
  l.ring_off = take(i64 * d.L);
  l.slots = take(i64 * size_t(d.L) * d.k);
  l.token = take(i64);
  if (weights_in_shared) {
    const size_t L = d.L, Lr = d.L - 1;
    l.gate_b = take(f * L * 2 * d.Rp);
    l.res_b = take(f * Lr * d.Rp);
    l.skip_b = take(f * d.Sp);
    l.head1_b = take(f * d.Hp);
    l.head2_b = take(f * d.Cp);
    l.gate_w = take(wbytes * L * d.kR * 2 * d.Rp);
    l.res_w = take(wbytes * Lr * d.R * d.Rp);
    l.skip_w = take(wbytes * L * d.R * d.Sp);
    l.head1_w = take(wbytes * size_t(d.S) * d.Hp);
    l.head2_w = take(wbytes * size_t(d.H) * d.Cp);
  }
  l.total = o;
  return l;
}

// Copies count elements into shared memory at dst (all threads; the caller syncs before use).
template <typename T>
__device__ const T* stage(const T* __restrict__ src, int64_t count, unsigned char* dst_bytes) {
  T* dst = reinterpret_cast<T*>(dst_bytes);
  for (int64_t e = threadIdx.x; e < count; e += kThreads) dst[e] = src[e];
  return dst;
}

// Column c of a packed weight matrix: element (r, c) of a float matrix is base[r * ld + c]; a bfloat16
// matrix stores row pairs interleaved per column (csrc/cpu/wavenet_kernels.h): the 32-bit word
// (r / 2) * ld + c holds row r (even) in its low half and row r + 1 in its high half.
template <typename W>
struct Column {
  const W* base;  // the matrix (one layer's), not the column
  int64_t ld;     // padded output width P of the matrix
  int c;          // column within the matrix
};

// Input rows a split covers come in multiples of this (bfloat16: whole row pairs).
template <typename W> struct RowGrain { static constexpr int value = 1; };
template <> struct RowGrain<uint16_t> { static constexpr int value = 2; };

// acc + sum over rows r in [r0, r1) of in(r) * W[r, c], one fused multiply-add per row in row order.
template <typename In>
__device__ __forceinline__ float dot_rows(const Column<float>& m, int r0, int r1, In in, float acc) {
  const float* w = m.base + m.c;
#pragma unroll 4
  for (int r = r0; r < r1; ++r) acc = fmaf(in(r), w[int64_t(r) * m.ld], acc);
  return acc;
}

// bfloat16: one 32-bit load gives rows r and r+1, each widened exactly (a bfloat16 is the top half of
// a float), as the CPU kernel's tile() widens them. r0 and r1 are even.
template <typename In>
__device__ __forceinline__ float dot_rows(const Column<uint16_t>& m, int r0, int r1, In in, float acc) {
  const uint32_t* w = reinterpret_cast<const uint32_t*>(m.base) + m.c;
#pragma unroll 2
  for (int r = r0; r < r1; r += 2) {
    const uint32_t word = w[int64_t(r / 2) * m.ld];
    acc = fmaf(in(r), __uint_as_float(word << 16), acc);
    acc = fmaf(in(r + 1), __uint_as_float(word & 0xffff0000u), acc);
  }
  return acc;
}

// partial[s*P + c] = (s == 0 ? init(c) : 0) + sum over the input rows r of split s of in(r) * W_c[r],
// where col(c) names output column c's matrix column. Split boundaries are multiples of the row grain.
template <typename W, typename In, typename Col, typename Init>
__device__ __forceinline__ void partial_sums(int K, int P, In in, Col col, Init init, float* partial) {
  constexpr int grain = RowGrain<W>::value;
  const int splits = num_splits(P);
  const int per = ((K + splits - 1) / splits + grain - 1) / grain * grain;
  for (int item = threadIdx.x; item < splits * P; item += kThreads) {
    const int s = item / P, c = item - s * P;
    const int r0 = min(K, s * per), r1 = min(K, r0 + per);
    const Column<W> m = col(c);
    partial[item] = dot_rows(m, r0, r1, in, s == 0 ? init(c) : 0.0f);
  }
}

// Column c's value from partial_sums: the splits added in order.
__device__ __forceinline__ float reduce_partials(const float* partial, int P, int c) {
  const int splits = num_splits(P);
  float v = partial[c];
  for (int s = 1; s < splits; ++s) v += partial[s * P + c];
  return v;
}

// Ring slots of every layer for the input of time t (all threads; the caller syncs before use).
__device__ __forceinline__ void fill_slots(const WaveNetParamsCuda& p, int L, int k, int64_t t, int64_t* slots) {
  for (int e = threadIdx.x; e < L * k; e += kThreads) {
    const int l = e / k, j = e - l * k;
    const int64_t dil = p.dilations[l], q = int64_t(k - 1) * dil;
    // Tap j (< k-1) reads the input (k-1-j)*d steps back; j = k-1 is where the current input goes.
    slots[e] = wm::ring_slot(t, j < k - 1 ? int64_t(k - 1 - j) * dil : 0, q);
  }
}

// The ring taps of layer l (tap j, channel i at tx[j*R + i]) from its ring in global memory.
__device__ __forceinline__ void gather_taps(const float* ring, const int64_t* layer_slots, int R, int Rp, int k,
                                            float* tx) {
  for (int e = threadIdx.x; e < (k - 1) * R; e += kThreads) {
    const int j = e / R, ch = e - j * R;
    tx[e] = ring[layer_slots[j] * Rp + ch];
  }
}

// Warp 0 only (all 32 lanes): the token drawn from the head2 partial sums by
// fastgen.reference.wavenet.sample_tokens's rule, as the CPU kernel's draw_token computes it.
__device__ int draw_token_warp(int C, const float* partial, float* logits, float* cdf, float u, float temperature) {
  const int lane = threadIdx.x & (kWarp - 1);
  // Logits, and each lane's first argmax over its classes c = lane, lane + 32, ...
  float best_v = 0.0f;
  int best_c = -1;
  for (int c = lane; c < C; c += kWarp) {
    const float v = reduce_partials(partial, C, c);
    logits[c] = v;
    if (best_c < 0 || v > best_v) {
      best_v = v;
      best_c = c;
    }
  }
  // The block's first argmax: the larger value wins, a tie goes to the lower class.
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    const float other_v = __shfl_xor_sync(kFullMask, best_v, offset);
    const int other_c = __shfl_xor_sync(kFullMask, best_c, offset);
    if (other_c >= 0 && (best_c < 0 || other_v > best_v || (other_v == best_v && other_c < best_c))) {
      best_v = other_v;
      best_c = other_c;
    }
  }
  // Lane 0's answer for everyone (lanes could only disagree with NaN logits).
  best_c = __shfl_sync(kFullMask, best_c, 0);
  best_v = __shfl_sync(kFullMask, best_v, 0);
  if (temperature == 0.0f) return best_c;

  const float inv_t = 1.0f / temperature;
  for (int c = lane; c < C; c += kWarp) cdf[c] = expf((logits[c] - best_v) * inv_t);
  __syncwarp();
  if (lane == 0) {
    // Running sum in double, rounded to float per class: the CPU kernel's (and torch.cumsum's) order.
    double running = 0.0;
    for (int c = 0; c < C; ++c) {
      running += cdf[c];
      cdf[c] = float(running);
    }
  }
  __syncwarp();
  // wavenet::search_cdf: the first c with cdf[c] > u * cdf[C-1], else C-1 (32 classes per ballot).
  const float threshold = u * cdf[C - 1];
  for (int base = 0; base < C; base += kWarp) {
    const int c = base + lane;
    const unsigned hit = __ballot_sync(kFullMask, c < C && cdf[c] > threshold);
    if (hit != 0u) return base + __ffs(int(hit)) - 1;
  }
  return C - 1;
}

// (kThreads, 2): at most 64 registers per thread (no spills at sm_80/sm_90 with CUDA 13), so two
// blocks (rows) can share an SM when the batch has more rows than the device has SMs.
template <typename W, bool kWeightsInShared>
__global__ void __launch_bounds__(kThreads, 2) wavenet_generate_kernel(const __grid_constant__ WaveNetParamsCuda p) {
  const Dims d = dims_of(p);
  const int C = d.C, R = d.R, S = d.S, H = d.H, L = d.L, k = d.k;
  const int Rp = d.Rp, Sp = d.Sp, Hp = d.Hp, Cp = d.Cp, kR = d.kR;
  const int tid = threadIdx.x;
  const int64_t b = blockIdx.x;
  const int64_t n = p.n;
  const int64_t len = p.lengths[b];
  int64_t* out = p.out + b * n;
  for (int64_t i = len + tid; i < n; i += kThreads) out[i] = -1;
  if (len <= 0) return;  // the whole block leaves together: no barrier is skipped by some threads only

  extern __shared__ __align__(16) unsigned char fastgen_wavenet_smem[];
  unsigned char* smem = fastgen_wavenet_smem;
  const Layout lay = make_layout(d, sizeof(W), kWeightsInShared);
  float* tx = reinterpret_cast<float*>(smem + lay.tx);
  float* x = tx + (k - 1) * R;  // the current input h, right after the taps: the gate's input is tx[0, k*R)
  float* a = reinterpret_cast<float*>(smem + lay.a);
  float* skip = reinterpret_cast<float*>(smem + lay.skip);
  float* hidden = reinterpret_cast<float*>(smem + lay.hidden);
  float* logits = reinterpret_cast<float*>(smem + lay.logits);
  float* cdf = reinterpret_cast<float*>(smem + lay.cdf);
  float* partial = reinterpret_cast<float*>(smem + lay.partial);
  int64_t* ring_off = reinterpret_cast<int64_t*>(smem + lay.ring_off);
  int64_t* slots = reinterpret_cast<int64_t*>(smem + lay.slots);
  int64_t* token_s = reinterpret_cast<int64_t*>(smem + lay.token);

  const W* gate_w = static_cast<const W*>(p.gate_w);
  const W* res_w = static_cast<const W*>(p.res_w);
  const W* skip_w = static_cast<const W*>(p.skip_w);
  const W* head1_w = static_cast<const W*>(p.head1_w);
  const W* head2_w = static_cast<const W*>(p.head2_w);
  const float* gate_b = p.gate_b;
  const float* res_b = p.res_b;
  const float* skip_b = p.skip_b;
  const float* head1_b = p.head1_b;
  const float* head2_b = p.head2_b;
  if constexpr (kWeightsInShared) {
    // Once per launch, amortised over all n samples.
    const int64_t Lr = L - 1;
    gate_b = stage(gate_b, int64_t(L) * 2 * Rp, smem + lay.gate_b);
    res_b = stage(res_b, Lr * Rp, smem + lay.res_b);
    skip_b = stage(skip_b, Sp, smem + lay.skip_b);
    head1_b = stage(head1_b, Hp, smem + lay.head1_b);
    head2_b = stage(head2_b, Cp, smem + lay.head2_b);
    gate_w = stage(gate_w, int64_t(L) * kR * 2 * Rp, smem + lay.gate_w);
    res_w = stage(res_w, Lr * R * Rp, smem + lay.res_w);
    skip_w = stage(skip_w, int64_t(L) * R * Sp, smem + lay.skip_w);
    head1_w = stage(head1_w, int64_t(S) * Hp, smem + lay.head1_w);
    head2_w = stage(head2_w, int64_t(H) * Cp, smem + lay.head2_w);
  }
  if (tid == 0) {
    int64_t off = 0;
    for (int l = 0; l < L; ++l) {
      ring_off[l] = off;
      off += int64_t(k - 1) * p.dilations[l];
    }
    *token_s = p.last_tokens[b];
  }
  const int64_t t0 = p.positions[b];
  fill_slots(p, L, k, t0, slots);
  float* const ring_row = p.queues + b * p.Q * Rp;  // this row's queues [Q][Rp]
  __syncthreads();

  for (int64_t i = 0; i < len; ++i) {
    const float* cond_i = p.cond == nullptr ? nullptr : p.cond + b * p.cond_row_stride + i * p.cond_step_stride;

    // Phase S: embed the input token, start the skip sum from its bias, gather layer 0's ring taps.
    const float* e = p.embed + *token_s * Rp;
    for (int c = tid; c < Rp; c += kThreads) x[c] = e[c];
    for (int c = tid; c < Sp; c += kThreads) skip[c] = skip_b[c];
    gather_taps(ring_row, slots, R, Rp, k, tx);
    __syncthreads();

    for (int l = 0; l < L; ++l) {
      const bool has_res = l + 1 < L;
      // Phase B: push h into its ring slot (the taps were read in the previous phase: read before
      // write, which matters when k = 2 and the push slot is the oldest tap's slot), and the gate's
      // partial sums z = gate_b + cond + taps . gate_w.
      {
        float* ring = ring_row + ring_off[l] * Rp;
        const int64_t push = slots[l * k + (k - 1)];
        for (int c = tid; c < Rp; c += kThreads) ring[push * Rp + c] = x[c];
        const float* gb = gate_b + int64_t(l) * 2 * Rp;
        const float* cl = cond_i == nullptr ? nullptr : cond_i + int64_t(l) * 2 * Rp;
        const W* gw = gate_w + int64_t(l) * kR * 2 * Rp;
        partial_sums<W>(
            kR, 2 * Rp, [&](int r) { return tx[r]; },
            [&](int c) { return Column<W>{gw, 2 * Rp, c}; },
            [&](int c) { return cl == nullptr ? gb[c] : gb[c] + cl[c]; }, partial);
      }
      __syncthreads();
      // Phase C: the gated unit a = tanh(z[:Rp]) * sigmoid(z[Rp:]).
      for (int c = tid; c < Rp; c += kThreads)
        a[c] = wm::gated_unit(reduce_partials(partial, 2 * Rp, c), reduce_partials(partial, 2 * Rp, Rp + c));
      __syncthreads();
      // Phase D: skip (columns [0, Sp)) and residual (columns [Sp, Sp+Rp)) partial sums over a.
      const int P = Sp + (has_res ? Rp : 0);
      {
        const W* sw = skip_w + int64_t(l) * R * Sp;
        const W* rw = has_res ? res_w + int64_t(l) * R * Rp : nullptr;
        const float* rb = has_res ? res_b + int64_t(l) * Rp : nullptr;
        partial_sums<W>(
            R, P, [&](int r) { return a[r]; },
            [&](int c) { return c < Sp ? Column<W>{sw, Sp, c} : Column<W>{rw, Rp, c - Sp}; },
            [&](int c) { return c < Sp ? skip[c] : x[c - Sp] + rb[c - Sp]; }, partial);
      }
      __syncthreads();
      // Phase E: the new skip sum and h; layer l+1's ring taps.
      for (int c = tid; c < Sp; c += kThreads) skip[c] = reduce_partials(partial, P, c);
      if (has_res) {
        for (int c = tid; c < Rp; c += kThreads) x[c] = reduce_partials(partial, P, Sp + c);
        gather_taps(ring_row + ring_off[l + 1] * Rp, slots + (l + 1) * k, R, Rp, k, tx);
      }
      __syncthreads();
    }

    // Phase F: head1's partial sums over relu(skip); the ring slots of the next step (the last use of
    // this step's slots, the last layer's push, is behind the previous barrier).
    partial_sums<W>(
        S, Hp, [&](int r) { return skip[r] > 0.0f ? skip[r] : 0.0f; },
        [&](int c) { return Column<W>{head1_w, Hp, c}; },
        [&](int c) { return head1_b[c]; }, partial);
    fill_slots(p, L, k, t0 + i + 1, slots);
    __syncthreads();
    // Phase G: hidden = relu(head1).
    for (int c = tid; c < Hp; c += kThreads) {
      const float v = reduce_partials(partial, Hp, c);
      hidden[c] = v > 0.0f ? v : 0.0f;
    }
    __syncthreads();
    // Phase H: head2's partial sums (the C logits).
    partial_sums<W>(
        H, C, [&](int r) { return hidden[r]; },
        [&](int c) { return Column<W>{head2_w, Cp, c}; },
        [&](int c) { return head2_b[c]; }, partial);
    __syncthreads();
    // Phase J: warp 0 draws the token.
    if (tid < kWarp) {
      const int token = draw_token_warp(C, partial, logits, cdf, p.uniforms[b * n + i], p.temperature);
      if (tid == 0) {
        out[i] = token;
        *token_s = token;
      }
    }
    __syncthreads();
  }
  if (tid == 0) {
    p.positions[b] = t0 + len;
    p.last_tokens[b] = *token_s;
  }
}

template <typename W, bool kWeightsInShared>
cudaError_t launch_kernel(const WaveNetParamsCuda& p, size_t smem, cudaStream_t stream) {
  auto kernel = &wavenet_generate_kernel<W, kWeightsInShared>;
  const cudaError_t e = allow_shared_bytes(kernel, smem);
  if (e != cudaSuccess) return e;
  kernel<<<dim3(unsigned(p.B)), kThreads, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

size_t wavenet_shared_bytes(const WaveNetParamsCuda& p, bool weights_in_shared) {
  const size_t wbytes = p.weight_type == WaveNetWeightType::kBFloat16 ? sizeof(uint16_t) : sizeof(float);
  return make_layout(dims_of(p), wbytes, weights_in_shared).total;
}

cudaError_t launch_wavenet_generate(const WaveNetParamsCuda& p, cudaStream_t stream) {
  if (p.B <= 0 || p.n <= 0) return cudaSuccess;
  if (p.B > 0x7fffffff || p.L < 1 || p.L > kWaveNetMaxLayers || p.k < 2 || p.C < 2 || p.R < 1 || p.S < 1 ||
      p.H < 1)
    return cudaErrorInvalidValue;
  int dev = 0, sms = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess) return e;
  size_t optin = 0;
  e = optin_shared_bytes(dev, &optin);
  if (e != cudaSuccess) return e;
  e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  if (e != cudaSuccess) return e;
  const size_t scratch = wavenet_shared_bytes(p, false), all = wavenet_shared_bytes(p, true);
  bool in_shared = false;
  if (p.placement != WaveNetWeightPlacement::kGlobal && all <= optin)
    in_shared = p.placement == WaveNetWeightPlacement::kShared || p.B <= sms;
  if (!in_shared && scratch > optin) return cudaErrorInvalidValue;
  const size_t smem = in_shared ? all : scratch;
  if (p.weight_type == WaveNetWeightType::kBFloat16)
    return in_shared ? launch_kernel<uint16_t, true>(p, smem, stream) : launch_kernel<uint16_t, false>(p, smem, stream);
  return in_shared ? launch_kernel<float, true>(p, smem, stream) : launch_kernel<float, false>(p, smem, stream);
}

}  // namespace cuda
}  // namespace fastgen
