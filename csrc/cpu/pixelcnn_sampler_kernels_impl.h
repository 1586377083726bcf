// Body of the fast cached PixelCNN / Gated PixelCNN sampler (pixelcnn_sampler_kernels.h), compiled
// once per ISA.
//
// Per pixel q = (r, c) and per colour pass g: every layer's output group g at q alone, as small GEMMs
// whose rows are the batch (a conv's taps in one kernel row are one contiguous stretch of its input
// ring, so no gather), then the draw of sub-pixel g from its uniform (or, teacher-forced, the given
// level and its logits), written into the image ring before the next pass. Gated: when row r starts,
// each layer's vertical stack runs along row r - 1 (rows of the GEMM: the columns), giving the links
// of row r and the next layer's vertical input. At batch 1 a pixel streams every weight once.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "fastgen/small_gemm.h"
#include "pixelcnn_sampler_kernels.h"

namespace fastgen {
namespace cpu {
namespace FASTGEN_CPU_CAPABILITY {
namespace {

constexpr int64_t L8 = kLanes<float>;

// C[M, P] += A[M, K] . B[K, P] (A rows am apart, B and C rows ldb / ldc apart; P a multiple of 8).
// One or two rows take 4-vector tiles: enough independent accumulators to hide the FMA latency.
static void mac(int64_t M, int64_t K, int64_t P, const float* A, int64_t am, const float* B, int64_t ldb, float* C,
                int64_t ldc) {
  if (M >= 3) {
    gemm<float>(M, K, P, A, am, 1, B, ldb, C, ldc, 1.0f, true);
    return;
  }
  int64_t p = 0;
  for (; p + 4 * L8 <= P; p += 4 * L8) {
    if (M == 2) gemm_tile<float, 2, 4>(K, A, am, 1, B + p, ldb, C + p, ldc, 1.0f, true);
    else gemm_tile<float, 1, 4>(K, A, am, 1, B + p, ldb, C + p, ldc, 1.0f, true);
  }
  for (; p < P; p += L8) {
    if (M == 2) gemm_tile<float, 2, 1>(K, A, am, 1, B + p, ldb, C + p, ldc, 1.0f, true);
    else gemm_tile<float, 1, 1>(K, A, am, 1, B + p, ldb, C + p, ldc, 1.0f, true);
  }
}

// out[m][0, n) = a[m][0, n) (+ b[m][0, n) where b is given) + bias[0, n), for M rows.
static void set_rows(int64_t M, int64_t n, float* out, int64_t ldo, const float* a, int64_t lda, const float* b,
                     int64_t ldb, const float* bias) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t j = 0; j < n; j += L8) {
      Vec<float> v = vload(bias + j);
      if (a != nullptr) v += vload(a + m * lda + j);
      if (b != nullptr) v += vload(b + m * ldb + j);
      vstore(out + m * ldo + j, v);
    }
}

static void relu_rows(int64_t M, int64_t n, const float* in, int64_t ldi, float* out, int64_t ldo) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t j = 0; j < n; j += L8) {
      const Vec<float> v = vload(in + m * ldi + j);
      vstore(out + m * ldo + j, v > 0.0f ? v : Vec<float>{});
    }
}

// Output group g of a conv at (r, c) for M batch rows: out = bias + the taps of its kept rows.
static void conv_at(const SamplerConv& cv, const SamplerRing& in, int64_t r, int64_t c, int64_t g, int64_t G,
                    int64_t M, float* out, int64_t ldo) {
  const int64_t n = cv.cout / G, off = g * n;
  set_rows(M, n, out + off, ldo, nullptr, 0, nullptr, 0, cv.b + off);
  const float* w = cv.w;
  for (int64_t i = 0; i < cv.rows; ++i) {
    const int64_t cols = i + 1 < cv.rows ? cv.kw : cv.centre;
    mac(M, cols * cv.cin, n, in.at(0, r - cv.rows + 1 + i, c - cv.kw / 2), in.batch_stride, w + off, cv.cout,
        out + off, ldo);
    w += cols * cv.cin * cv.cout;
  }
}

// Output group g of a 1x1 layer (mask B: it reads input groups <= g) accumulated into out.
static void dense_into(const SamplerDense& d, const float* in, int64_t ldi, int64_t g, int64_t G, int64_t M,
                       float* out, int64_t ldo) {
  const int64_t n = d.cout / G;
  mac(M, (g + 1) * (d.cin / G), n, in, ldi, d.w + g * n, d.cout, out + g * n, ldo);
}

// tanh(f) * sigmoid(s) of n gate pairs: f = pre[0, n), s = pre[n, 2n).
static void gate(int64_t n, const float* pre, float* out) {
  for (int64_t j = 0; j < n; j += L8) vstore(out + j, vtanh(vload(pre + j)) * vsigmoid(vload(pre + n + j)));
}

// The inverse-CDF draw of fastgen.models.pixelcnn.sampling.draw_levels: Bernoulli (K = 1): 1 when
// u < sigmoid(logit); softmax: the number of levels whose cumulative probability (a float cumsum of
// float probabilities, accumulated in double like torch's) is <= u, at most K - 1.
static int64_t draw(const float* logits, int64_t K, float u, float* e) {
  if (K == 1) return u < 1.0f / (1.0f + std::exp(-logits[0])) ? 1 : 0;
  float top = logits[0];
  for (int64_t k = 1; k < K; ++k) top = std::max(top, logits[k]);
  Vec<float> sums{};
  for (int64_t k = 0; k < K; k += L8) {
    const Vec<float> v = vexp_nonpositive(vload(logits + k) - top);
    vstore(e + k, v);
    sums += v;
  }
  const float total = hsum<float>(sums);
  double cum = 0;
  int64_t level = 0;
  for (int64_t k = 0; k < K - 1; ++k) {
    cum += e[k] / total;
    if (float(cum) > u) break;
    ++level;
  }
  return level;
}

// Sub-pixel g of pixel (r, c) from the logits lg [M][K per group, group-strided]: draw it (or read it,
// teacher-forced, and store its logits), then feed it to the image ring.
static void finish_subpixel(const SamplerPlan& p, const SamplerState& s, const SamplerRing& image, int64_t M,
                            int64_t i, int64_t r, int64_t c, int64_t g, const float* lg, int64_t ldl, float* e) {
  const int64_t HW = p.H * p.W, q = r * p.W + c, outg = ldl / p.C;
  for (int64_t b = 0; b < M; ++b) {
    const float* logits = lg + b * ldl + g * outg;
    int64_t* level = s.levels + (b * p.C + g) * HW + q;
    if (s.uniforms != nullptr) {
      *level = draw(logits, p.K, s.uniforms[(b * p.C + g) * s.pixels + i], e);
    } else {
      std::memcpy(s.logits + ((b * s.pixels + i) * p.C + g) * p.K, logits, p.K * sizeof(float));
    }
    image.at(b, r, c)[g * (image.channels / p.C)] = p.input_table[*level];
  }
}

// The head on group g of x (its ReLU kept in rx across passes): logits group g into lg.
static void head(const SamplerPlan& p, const float* x, int64_t ldx, float* rx, int64_t g, int64_t M, float* hid,
                 float* rh, float* lg) {
  const int64_t G = p.C, xg = ldx / G, O = p.head1.cout, og = O / G, Out = p.head2.cout, outg = Out / G;
  relu_rows(M, xg, x + g * xg, ldx, rx + g * xg, ldx);
  set_rows(M, og, hid + g * og, O, nullptr, 0, nullptr, 0, p.head1.b + g * og);
  dense_into(p.head1, rx, ldx, g, G, M, hid, O);
  relu_rows(M, og, hid + g * og, O, rh + g * og, O);
  set_rows(M, outg, lg + g * outg, Out, nullptr, 0, nullptr, 0, p.head2.b + g * outg);
  dense_into(p.head2, rh, O, g, G, M, lg, Out);
}

static void zero_at(const SamplerRing& ring, int64_t M, int64_t r, int64_t c) {
  for (int64_t b = 0; b < M; ++b) std::memset(ring.at(b, r, c), 0, ring.channels * sizeof(float));
}

void run_pixelcnn(const SamplerPlan& p, const SamplerState& s, int64_t M, float* scratch) {
  const int64_t G = p.C, L = p.L, Y = p.conv_a[0].cout, yg = Y / G, Hh = p.conv_b[0].cout, hg = Hh / G;
  float* ys = scratch;                    // [L+1][M][Y] the residual stream after each block
  float* rys = ys + (L + 1) * M * Y;      // [L+1][M][Y] its ReLU
  float* rts = rys + (L + 1) * M * Y;     // [L][M][Hh]  ReLU of each kxk output
  float* tmp = rts + L * M * Hh;          // [M][Hh]
  float* hid = tmp + M * Hh;              // [M][O]
  float* rh = hid + M * p.head1.cout;     // [M][O]
  float* lg = rh + M * p.head1.cout;      // [M][Out]
  float* e = lg + M * p.head2.cout;       // [Out]
  const SamplerRing& image = s.rings[0];
  for (int64_t i = 0; i < s.pixels; ++i) {
    const int64_t r = (s.position + i) / p.W, c = (s.position + i) % p.W;
    for (int64_t l = 0; l <= L; ++l) zero_at(s.rings[l], M, r, c);  // a ring slot's last use was row r - rows
    for (int64_t g = 0; g < G; ++g) {
      conv_at(p.conv_a[0], image, r, c, g, G, M, ys, Y);
      relu_rows(M, yg, ys + g * yg, Y, rys + g * yg, Y);
      for (int64_t l = 0; l < L; ++l) {
        const SamplerRing& ring = s.rings[1 + l];
        float *y = ys + l * M * Y, *ry = rys + l * M * Y, *rt = rts + l * M * Hh;
        set_rows(M, hg, tmp + g * hg, Hh, nullptr, 0, nullptr, 0, p.dense_a[l].b + g * hg);
        dense_into(p.dense_a[l], ry, Y, g, G, M, tmp, Hh);
        relu_rows(M, hg, tmp + g * hg, Hh, ring.at(0, r, c) + g * hg, ring.batch_stride);
        conv_at(p.conv_b[l], ring, r, c, g, G, M, tmp, Hh);
        relu_rows(M, hg, tmp + g * hg, Hh, rt + g * hg, Hh);
        set_rows(M, yg, y + M * Y + g * yg, Y, y + g * yg, Y, nullptr, 0, p.dense_b[l].b + g * yg);
        dense_into(p.dense_b[l], rt, Hh, g, G, M, y + M * Y, Y);
        relu_rows(M, yg, y + M * Y + g * yg, Y, ry + M * Y + g * yg, Y);
      }
      head(p, ys + L * M * Y, Y, rys + L * M * Y, g, M, hid, rh, lg);
      finish_subpixel(p, s, image, M, i, r, c, g, lg, p.head2.cout, e);
    }
  }
}

// Gated, at the start of row r: per layer, the vertical pre-activation a of row r - 1 (zero above the
// image), the links link(a) of row r, and the next layer's vertical input gate(a + cond) at row r - 1.
void gated_row_start(const SamplerPlan& p, const SamplerState& s, int64_t M, int64_t r, float* a) {
  const int64_t L = p.L, W = p.W, P2v = p.conv_a[0].cout, Pv = P2v / 2, P2h = p.dense_a[0].cout;
  const int64_t cond_stride = L * (P2v + P2h);
  for (int64_t b = 0; b < M; ++b)
    for (int64_t l = 0; l < L; ++l) {
      float* links = s.links + (b * L + l) * W * P2h;
      const SamplerDense& link = p.dense_a[l];
      if (r == 0) {  // link(0) = its bias
        set_rows(W, P2h, links, P2h, nullptr, 0, nullptr, 0, link.b);
        continue;
      }
      const SamplerConv& v = p.conv_a[l];
      const SamplerRing& in = s.rings[l];  // the image for l = 0
      set_rows(W, P2v, a, P2v, nullptr, 0, nullptr, 0, v.b);
      const float* w = v.w;
      for (int64_t i = 0; i < v.rows; ++i) {  // rows of the GEMM: the W columns, one ring row apart by cin
        const int64_t cols = i + 1 < v.rows ? v.kw : v.centre;
        mac(W, cols * v.cin, P2v, in.at(b, r - v.rows + i, -v.kw / 2), in.channels, w, P2v, a, P2v);
        w += cols * v.cin * P2v;
      }
      set_rows(W, P2h, links, P2h, nullptr, 0, nullptr, 0, link.b);
      mac(W, P2v, P2h, a, P2v, link.w, P2h, links, P2h);
      if (l + 1 < L) {
        const SamplerRing& next = s.rings[l + 1];
        const float* cond = s.cond == nullptr ? nullptr : s.cond + b * cond_stride + l * (P2v + P2h);
        for (int64_t col = 0; col < W; ++col) {
          float* pre = a + col * P2v;
          if (cond != nullptr)
            for (int64_t j = 0; j < P2v; j += L8) vstore(pre + j, vload(pre + j) + vload(cond + j));
          gate(Pv, pre, next.at(b, r - 1, col));
        }
      }
    }
}

void run_gated(const SamplerPlan& p, const SamplerState& s, int64_t M, float* scratch) {
  const int64_t G = p.C, L = p.L, W = p.W, Ph = p.dense_b[0].cout, phg = Ph / G, P2h = p.conv_b[0].cout,
                p2g = P2h / G, P2v = p.conv_a[0].cout;
  const int64_t cond_stride = L * (P2v + P2h);
  float* hs = scratch;                // [L][M][Ph] h after each layer
  float* gated = hs + L * M * Ph;     // [L][M][Ph] each layer's gate output
  float* rfin = gated + L * M * Ph;   // [M][Ph]    ReLU of the last h
  float* pre = rfin + M * Ph;         // [M][P2h]
  float* a = pre + M * P2h;           // [W][P2v]
  float* hid = a + W * P2v;
  float* rh = hid + M * p.head1.cout;
  float* lg = rh + M * p.head1.cout;
  float* e = lg + M * p.head2.cout;
  const SamplerRing& image = s.rings[0];
  for (int64_t i = 0; i < s.pixels; ++i) {
    const int64_t r = (s.position + i) / W, c = (s.position + i) % W;
    if (c == 0) gated_row_start(p, s, M, r, a);
    zero_at(image, M, r, c);
    for (int64_t l = 1; l < L; ++l) zero_at(s.rings[L - 1 + l], M, r, c);
    for (int64_t g = 0; g < G; ++g) {
      for (int64_t l = 0; l < L; ++l) {
        const SamplerConv& hz = p.conv_b[l];
        const SamplerRing& in = l == 0 ? image : s.rings[L - 1 + l];
        const float* cond = s.cond == nullptr ? nullptr : s.cond + l * (P2v + P2h) + P2v + g * p2g;
        set_rows(M, p2g, pre + g * p2g, P2h, s.links + (l * W + c) * P2h + g * p2g, L * W * P2h, cond, cond_stride,
                 hz.b + g * p2g);
        mac(M, hz.centre * hz.cin, p2g, in.at(0, r, c - hz.kw / 2), in.batch_stride, hz.w + g * p2g, P2h,
            pre + g * p2g, P2h);
        float *gl = gated + l * M * Ph, *h = hs + l * M * Ph;
        for (int64_t b = 0; b < M; ++b) gate(phg, pre + b * P2h + g * p2g, gl + b * Ph + g * phg);
        set_rows(M, phg, h + g * phg, Ph, l == 0 ? nullptr : h - M * Ph + g * phg, Ph, nullptr, 0,
                 p.dense_b[l].b + g * phg);
        dense_into(p.dense_b[l], gl, Ph, g, G, M, h, Ph);
        if (l + 1 < L) {
          const SamplerRing& next = s.rings[L + l];
          for (int64_t b = 0; b < M; ++b)
            std::memcpy(next.at(b, r, c) + g * phg, h + b * Ph + g * phg, phg * sizeof(float));
        }
      }
      head(p, hs + (L - 1) * M * Ph, Ph, rfin, g, M, hid, rh, lg);
      finish_subpixel(p, s, image, M, i, r, c, g, lg, p.head2.cout, e);
    }
  }
}

void run(const SamplerPlan& p, const SamplerState& s, int64_t M, float* scratch) {
  if (p.kind == kPixelCnnKind) {
    run_pixelcnn(p, s, M, scratch);
  } else {
    run_gated(p, s, M, scratch);
  }
}

}  // namespace

SamplerKernels sampler_kernels() { return SamplerKernels{&run}; }

}  // namespace FASTGEN_CPU_CAPABILITY
}  // namespace cpu
}  // namespace fastgen
