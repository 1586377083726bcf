// Body of cached WaveNet generation (wavenet_kernels.h), compiled once per ISA.
//
// Per step, for the rows still generating: embed the input token; per layer gather the k taps (ring
// slots and the current input), z = b + cond + taps . W_gate, a = tanh * sigmoid, skip += a . W_skip,
// h += a . W_res, and push h into the ring; then the ReLU head, logits and the in-kernel draw. The
// rows of one call share every weight load (a small GEMM per matrix), which is what makes batches
// cheap; at batch 1 the step streams the whole weight set once (the floor).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "fastgen/small_gemm.h"
#include "wavenet_kernels.h"

namespace fastgen {
namespace cpu {
namespace FASTGEN_CPU_CAPABILITY {
namespace {

using wavenet::pad8;

// C[MR, NV*8] += A[MR, K] . B[K, NV*8] with the accumulators in registers. Float weights are plain
// rows; bfloat16 weights come in row pairs interleaved per column (one 32-bit word = row k in its low
// half, row k+1 in its high half; K even), so one 32-byte load widens to two float
// vectors with a shift and a mask (a bfloat16 is the top half of a float).
template <int MR, int NV>
static inline void tile(int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc) {
  Vec<float> acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = vload(C + r * ldc + v * 8);
  for (int64_t k = 0; k < K; ++k) {
    Vec<float> b[NV];
    for (int v = 0; v < NV; ++v) b[v] = vload(B + k * ldb + v * 8);
    for (int r = 0; r < MR; ++r) {
      const float a = A[r * lda + k];
      for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) vstore(C + r * ldc + v * 8, acc[r][v]);
}

template <int MR, int NV>
static inline void tile(int64_t K, const float* A, int64_t lda, const uint16_t* B, int64_t ldb, float* C,
                        int64_t ldc) {
  typedef uint32_t Word8 __attribute__((vector_size(32), aligned(4)));
  Vec<float> acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = vload(C + r * ldc + v * 8);
  for (int64_t k = 0; k < K; k += 2) {  // K is even (the binding checks it)
    Vec<float> lo[NV], hi[NV];
    for (int v = 0; v < NV; ++v) {
      const Word8 w = *reinterpret_cast<const Word8*>(B + k * ldb + v * 16);
      const Word8 l = w << 16, h = w & 0xFFFF0000u;
      std::memcpy(&lo[v], &l, sizeof(l));
      std::memcpy(&hi[v], &h, sizeof(h));
    }
    for (int r = 0; r < MR; ++r) {
      const float a0 = A[r * lda + k], a1 = A[r * lda + k + 1];
      for (int v = 0; v < NV; ++v) acc[r][v] += a0 * lo[v] + a1 * hi[v];
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) vstore(C + r * ldc + v * 8, acc[r][v]);
}

// Column p of a weight matrix (bfloat16 columns are word pairs).
static inline const float* column(const float* B, int64_t p) { return B + p; }
static inline const uint16_t* column(const uint16_t* B, int64_t p) { return B + 2 * p; }

template <int MR, int NV, typename W>
static inline void tile_columns(int64_t K, int64_t P, const float* A, int64_t lda, const W* B, int64_t ldb, float* C,
                                int64_t ldc) {
  int64_t p = 0;
  for (; p + NV * 8 <= P; p += NV * 8) tile<MR, NV>(K, A, lda, column(B, p), ldb, C + p, ldc);
  for (; p < P; p += 8) tile<MR, 1>(K, A, lda, column(B, p), ldb, C + p, ldc);
}

// One column panel of NV vectors for all M rows: 6-row tiles, then the remaining rows.
template <int NV, typename W>
static inline void panel_rows(int64_t M, int64_t K, const float* A, int64_t lda, const W* B, int64_t ldb, float* C,
                              int64_t ldc) {
  int64_t m = 0;
  for (; m + 6 <= M; m += 6) tile<6, NV>(K, A + m * lda, lda, B, ldb, C + m * ldc, ldc);
  const float* a = A + m * lda;
  float* c = C + m * ldc;
  switch (M - m) {
    case 5: tile<5, NV>(K, a, lda, B, ldb, c, ldc); break;
    case 4: tile<4, NV>(K, a, lda, B, ldb, c, ldc); break;
    case 3: tile<3, NV>(K, a, lda, B, ldb, c, ldc); break;
    case 2: tile<2, NV>(K, a, lda, B, ldb, c, ldc); break;
    case 1: tile<1, NV>(K, a, lda, B, ldb, c, ldc); break;
    default: break;
  }
}

// C[M, P] += A[M, K] . B[K, P]; P, ldb and ldc multiples of 8. Up to 5 rows: one row block with
// wide tiles (8 to 12 independent accumulators hide the FMA latency at batch 1). More rows: column
// panels of 16 outer, row tiles inner, so each panel of weights is read from memory once and reused
// from L1 by every row block (rows outer streamed the whole matrix once per 6 rows).
template <typename W>
void gemm_acc(int64_t M, int64_t K, int64_t P, const float* A, int64_t lda, const W* B, int64_t ldb, float* C,
              int64_t ldc) {
  switch (M) {
    case 0: return;
    case 1: return tile_columns<1, 8>(K, P, A, lda, B, ldb, C, ldc);
    case 2: return tile_columns<2, 4>(K, P, A, lda, B, ldb, C, ldc);
    case 3: return tile_columns<3, 4>(K, P, A, lda, B, ldb, C, ldc);
    case 4: return tile_columns<4, 3>(K, P, A, lda, B, ldb, C, ldc);
    case 5: return tile_columns<5, 2>(K, P, A, lda, B, ldb, C, ldc);
    default: break;
  }
  int64_t p = 0;
  for (; p + 16 <= P; p += 16) panel_rows<2>(M, K, A, lda, column(B, p), ldb, C + p, ldc);
  if (p < P) panel_rows<1>(M, K, A, lda, column(B, p), ldb, C + p, ldc);
}

// rows x width copies of a bias row (width a multiple of 8).
static inline void broadcast_rows(int64_t rows, int64_t width, const float* bias, float* out) {
  for (int64_t r = 0; r < rows; ++r) std::memcpy(out + r * width, bias, width * sizeof(float));
}

static inline void relu(int64_t n, float* x) {
  for (int64_t i = 0; i < n; i += 8) {
    const Vec<float> v = vload(x + i);
    vstore(x + i, v > 0.0f ? v : Vec<float>{});
  }
}

// fastgen.reference.wavenet.sample_tokens for one row of logits (cdf accumulated in double and
// rounded to float, as torch.cumsum does on the CPU).
static inline int64_t draw_token(int64_t C, const float* logits, float u, float temperature, float* cdf) {
  int64_t best = 0;
  for (int64_t c = 1; c < C; ++c)
    if (logits[c] > logits[best]) best = c;
  if (temperature == 0.0f) return best;
  const float peak = logits[best], inv_t = 1.0f / temperature;
  int64_t c = 0;
  for (; c + 8 <= C; c += 8) vstore(cdf + c, vexp_nonpositive((vload(logits + c) - peak) * inv_t));
  for (; c < C; ++c) cdf[c] = std::exp((logits[c] - peak) * inv_t);
  double running = 0.0;
  for (c = 0; c < C; ++c) {
    running += cdf[c];
    cdf[c] = float(running);
  }
  return wavenet::search_cdf(cdf, C, u);
}

template <typename W>
void generate(const WaveNetDims& d, const WaveNetWeights<W>& w, const WaveNetState& s, int64_t b0, int64_t b1,
              float* scratch) {
  const int64_t C = d.C, R = d.R, S = d.S, H = d.H, L = d.L, k = d.k;
  const int64_t Rp = pad8(R), Sp = pad8(S), Hp = pad8(H), Cp = pad8(C), kR = k * R, lda_taps = pad8(kR);
  const int64_t rows_max = b1 - b0;
  float* x = scratch;                             // [rows][Rp]   layer input h
  float* taps = x + rows_max * Rp;                // [rows][pad8(kR)]
  float* z = taps + rows_max * lda_taps;          // [rows][2Rp]
  float* a = z + rows_max * 2 * Rp;               // [rows][Rp]
  float* skip = a + rows_max * Rp;                // [rows][Sp]
  float* hidden = skip + rows_max * Sp;           // [rows][Hp]
  float* logits = hidden + rows_max * Hp;         // [rows][Cp]
  float* cdf = logits + rows_max * Cp;            // [Cp]

  int64_t ring_offset[kMaxWaveNetLayers];
  for (int64_t l = 0, off = 0; l < L; ++l) {
    ring_offset[l] = off;
    off += (k - 1) * d.dilations[l];
  }
  for (int64_t b = b0; b < b1; ++b)
    for (int64_t i = s.lengths[b]; i < d.n; ++i) s.out[b * d.n + i] = -1;

  std::vector<int64_t> active(rows_max);
  for (int64_t i = 0; i < d.n; ++i) {
    int64_t M = 0;  // a finished row drops out and costs nothing
    for (int64_t b = b0; b < b1; ++b)
      if (i < s.lengths[b]) active[M++] = b;
    if (M == 0) break;

    for (int64_t r = 0; r < M; ++r) std::memcpy(x + r * Rp, w.embed + s.last_tokens[active[r]] * Rp, Rp * sizeof(float));
    broadcast_rows(M, Sp, w.skip_b, skip);
    for (int64_t l = 0; l < L; ++l) {
      const int64_t dil = d.dilations[l], q = (k - 1) * dil;
      for (int64_t r = 0; r < M; ++r) {
        const int64_t b = active[r], t = s.positions[b];
        float* ring = s.queues + (b * d.Q + ring_offset[l]) * Rp;
        float* row_taps = taps + r * lda_taps;
        for (int64_t j = 0; j + 1 < k; ++j)
          std::memcpy(row_taps + j * R, ring + wavenet::ring_slot(t, (k - 1 - j) * dil, q) * Rp, R * sizeof(float));
        std::memcpy(row_taps + (k - 1) * R, x + r * Rp, R * sizeof(float));
        std::memcpy(ring + wavenet::ring_slot(t, 0, q) * Rp, x + r * Rp, Rp * sizeof(float));
        float* zr = z + r * 2 * Rp;
        const float* gb = w.gate_b + l * 2 * Rp;
        if (s.cond != nullptr) {
          const float* cr = s.cond + b * s.cond_row_stride + i * s.cond_step_stride + l * 2 * Rp;
          for (int64_t c = 0; c < 2 * Rp; c += 8) vstore(zr + c, vload(gb + c) + vload(cr + c));
        } else {
          std::memcpy(zr, gb, 2 * Rp * sizeof(float));
        }
      }
      gemm_acc<W>(M, kR, 2 * Rp, taps, lda_taps, w.gate_w + l * kR * 2 * Rp, 2 * Rp, z, 2 * Rp);
      for (int64_t r = 0; r < M; ++r)
        for (int64_t c = 0; c < Rp; c += 8)
          vstore(a + r * Rp + c, vtanh(vload(z + r * 2 * Rp + c)) * vsigmoid(vload(z + r * 2 * Rp + Rp + c)));
      gemm_acc<W>(M, R, Sp, a, Rp, w.skip_w + l * R * Sp, Sp, skip, Sp);
      if (l + 1 < L) {
        for (int64_t r = 0; r < M; ++r)
          for (int64_t c = 0; c < Rp; c += 8)
            vstore(x + r * Rp + c, vload(x + r * Rp + c) + vload(w.res_b + l * Rp + c));
        gemm_acc<W>(M, R, Rp, a, Rp, w.res_w + l * R * Rp, Rp, x, Rp);
      }
    }
    relu(M * Sp, skip);
    broadcast_rows(M, Hp, w.head1_b, hidden);
    gemm_acc<W>(M, S, Hp, skip, Sp, w.head1_w, Hp, hidden, Hp);
    relu(M * Hp, hidden);
    broadcast_rows(M, Cp, w.head2_b, logits);
    gemm_acc<W>(M, H, Cp, hidden, Hp, w.head2_w, Cp, logits, Cp);
    for (int64_t r = 0; r < M; ++r) {
      const int64_t b = active[r];
      const int64_t token = draw_token(C, logits + r * Cp, s.uniforms[b * d.n + i], s.temperature, cdf);
      s.out[b * d.n + i] = token;
      s.last_tokens[b] = token;
      s.positions[b] += 1;
    }
  }
}

}  // namespace

template <typename W>
WaveNetKernels<W> wavenet_kernels() {
  return {&generate<W>};
}
template WaveNetKernels<float> wavenet_kernels<float>();
template WaveNetKernels<uint16_t> wavenet_kernels<uint16_t>();

}  // namespace FASTGEN_CPU_CAPABILITY
}  // namespace cpu
}  // namespace fastgen
