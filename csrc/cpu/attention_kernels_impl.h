// Body of the CPU attention kernels, included once per instruction set with FASTGEN_CPU_CAPABILITY
// naming the namespace. Torch-free on purpose: no torch header may be compiled with AVX2 enabled.
//
// Per example, the filterbanks are computed once and shared by all channels (DRAW reads the image and
// the error image as two channels of one call). Backward recomputes them instead of saving them: they
// cost O(N (H + W)) against the O(N H W) products.
#include "attention_kernels.h"
#include "fastgen/attention_math.h"
#include "fastgen/small_gemm.h"

namespace fastgen {
namespace cpu {
namespace FASTGEN_CPU_CAPABILITY {
namespace {

namespace am = fastgen::attention;

// Hands out consecutive pieces of the caller's scratch buffer, each a whole number of vectors long.
template <typename T>
struct Arena {
  T* next;
  T* take(int64_t n) {
    T* p = next;
    next += padded<T>(n);
    return p;
  }
};

// Filter weights from logits <= 0 (0 where the weight would be subnormal, see attention_math.h).
// Float uses the vector exp; double, the path tests lean on, uses libm lane by lane.
static inline Vec<float> filter_weights(Vec<float> logit) {
  return logit > am::underflow_arg(0.0f) ? vexp_nonpositive(logit) : Vec<float>{};
}
static inline Vec<double> filter_weights(Vec<double> logit) {
  Vec<double> w;
  for (int64_t l = 0; l < kLanes<double>; ++l) w[l] = am::filter_weight(logit[l]);
  return w;
}

// The N normalised filter rows of a window with centre g and stride delta into rows of stride ld, each
// row[0..padded(size)) with zeros in the padding; the vector form of attention::filter_row.
// Two passes over a group of rows (weights and sums, then the scaling) instead of one row at a
// time: the rows' exp chains are independent, so the core overlaps them, where a single row
// waits on its exps, its sum and the division in turn (2x faster on DRAW's 12 x 28 filterbanks).
template <typename T>
void filter_rows(int64_t N, T g, T delta, T inv_two_var, int64_t size, T* out, int64_t ld) {
  constexpr int64_t L = kLanes<T>, kGroup = 8;
  const int64_t full = padded<T>(size);
  for (int64_t i0 = 0; i0 < N; i0 += kGroup) {
    const int64_t n = N - i0 < kGroup ? N - i0 : kGroup;
    T inv[kGroup];
    for (int64_t i = 0; i < n; ++i) {
      const T mu = g + am::filter_offset<T>(int(i0 + i), int(N)) * delta;
      const T m = am::filter_peak(mu, int(size));
      T* row = out + (i0 + i) * ld;
      Vec<T> pos = iota_from<T>(1);
      Vec<T> sum{};
      for (int64_t a = 0; a < full; a += L, pos += T(L)) {
        Vec<T> logit = -(pos - m) * ((pos - mu) + (m - mu)) * inv_two_var;
        logit = pos <= T(size) ? logit : Vec<T>{} - T(1000);  // padding: weight exactly 0
        const Vec<T> w = filter_weights(logit);
        vstore(row + a, w);
        sum += w;
      }
      inv[i] = hsum<T>(sum);
    }
    for (int64_t i = 0; i < n; ++i) inv[i] = T(1) / inv[i];
    for (int64_t i = 0; i < n; ++i) {
      T* row = out + (i0 + i) * ld;
      for (int64_t a = 0; a < full; a += L) vstore(row + a, vload(row + a) * inv[i]);
    }
  }
}

// Four consecutive elements widened to double.
typedef double Double4 __attribute__((vector_size(32), aligned(8)));
typedef float Float4 __attribute__((vector_size(16), aligned(4)));
static inline Double4 load4_double(const float* p) {
  return __builtin_convertvector(*reinterpret_cast<const Float4*>(p), Double4);
}
static inline Double4 load4_double(const double* p) { return *reinterpret_cast<const Double4*>(p); }
static inline double hsum4(Double4 v) { return (v[0] + v[1]) + (v[2] + v[3]); }

// The vector form of attention::filter_row_backward (same algebra, distances measured from the peak
// pixel), summing in double: with needle-thin filters float sums lose ~1e-4 of the result.
// Padding weights are 0, so padding gradients (finite) contribute nothing.
template <typename T>
void filter_row_backward(const T* row, const T* grad_row, T mu, T inv_two_var, int64_t size, T* grad_mu,
                         T* grad_log_var) {
  const int64_t full = padded<T>(size);  // a multiple of 4
  Double4 dots{};
  for (int64_t a = 0; a < full; a += 4) dots += load4_double(row + a) * load4_double(grad_row + a);
  const double dot_fg = hsum4(dots);
  const double m = am::filter_peak(mu, int(size));
  Double4 e = Double4{1.0, 2.0, 3.0, 4.0} - m;
  Double4 s1{}, s2{};
  for (int64_t a = 0; a < full; a += 4, e += 4.0) {
    const Double4 dlogit = load4_double(row + a) * (load4_double(grad_row + a) - dot_fg);
    s1 += dlogit * e;
    s2 += dlogit * e * e;
  }
  const double t1 = hsum4(s1), t2 = hsum4(s2);
  *grad_mu = T(2.0 * double(inv_two_var) * t1);
  *grad_log_var = T(double(inv_two_var) * (t2 + 2.0 * (m - double(mu)) * t1));
}

// Padded extents: scratch matrices have rows of Wp / Hp / Np elements, so the products never need a
// tail loop, and matrices that are transposed also have their row count padded.
struct Strides {
  int64_t Wp, Np, Hp;
  template <typename T>
  static Strides of(const AttentionDims& d) {
    return {padded<T>(d.W), padded<T>(d.N), padded<T>(d.H)};
  }
};

// One example's filterbanks Fx [Np,Wp], Fy [N,Hp] and Fx^T [Wp,Np] (for the products that would
// otherwise need a dot-product inner loop); padding rows and columns are zero.
template <typename T>
struct Filterbanks {
  const AttentionDims& d;
  Strides s;
  am::Window<T> win;
  T *Fx, *Fy, *FxT;

  Filterbanks(const AttentionDims& dims, Arena<T>& arena)
      : d(dims),
        s(Strides::of<T>(dims)),
        Fx(arena.take(s.Np * s.Wp)),
        Fy(arena.take(d.N * s.Hp)),
        FxT(arena.take(s.Wp * s.Np)) {}

  T mu_x(int64_t i) const { return win.gx + am::filter_offset<T>(int(i), int(d.N)) * win.delta; }
  T mu_y(int64_t i) const { return win.gy + am::filter_offset<T>(int(i), int(d.N)) * win.delta; }

  void compute(const T* raw) {
    win = am::window_from_params<T>(raw, int(d.N), int(d.H), int(d.W));
    filter_rows<T>(d.N, win.gx, win.delta, win.inv_two_var, d.W, Fx, s.Wp);
    filter_rows<T>(d.N, win.gy, win.delta, win.inv_two_var, d.H, Fy, s.Hp);
    transpose<T>(d.N, d.W, Fx, s.Wp, FxT, s.Np);
  }

  // Reduces dL/dFx [N,Wp], dL/dFy [N,Hp] and dL/dlog(gamma) to the 5 raw parameters.
  void backward(const T* dFx, const T* dFy, T dlog_gamma, T* grad_raw) const {
    am::WindowGrad<T> g;
    g.log_gamma = dlog_gamma;
    for (int64_t i = 0; i < d.N; ++i) {
      const T offset = am::filter_offset<T>(int(i), int(d.N));
      T dmu, dlog_var;
      filter_row_backward<T>(Fx + i * s.Wp, dFx + i * s.Wp, mu_x(i), win.inv_two_var, int(d.W), &dmu, &dlog_var);
      g.gx += dmu;
      g.delta += dmu * offset;
      g.log_var += dlog_var;
      filter_row_backward<T>(Fy + i * s.Hp, dFy + i * s.Hp, mu_y(i), win.inv_two_var, int(d.H), &dmu, &dlog_var);
      g.gy += dmu;
      g.delta += dmu * offset;
      g.log_var += dlog_var;
    }
    am::window_grad_to_params<T>(g, win, int(d.H), int(d.W), grad_raw);
  }
};

// Copies plane (b, c) of a strided image-sized input into a [H, ld] scratch matrix.
template <typename T>
void load_plane(const T* t, const ImageStrides& st, int64_t b, int64_t c, int64_t H, int64_t W, T* dst, int64_t ld) {
  const T* plane = t + b * st.b + c * st.c;
  if (st.w == 1) {
    copy_rows<T>(H, W, plane, st.h, dst, ld);
    return;
  }
  if (st.w == 0) {  // broadcast along rows, e.g. the gradient of image.sum()
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) dst[y * ld + x] = plane[y * st.h];
    return;
  }
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) dst[y * ld + x] = plane[y * st.h + x * st.w];
}

// Shorthands: C = alpha * A B (+ C), with A [M,K] (row stride lda) or A^T (A stored [K,M], stride lda).
template <typename T>
void mm(int64_t M, int64_t K, int64_t P, const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc, T alpha,
        bool accumulate) {
  gemm<T>(M, K, P, A, lda, 1, B, ldb, C, ldc, alpha, accumulate);
}
template <typename T>
void mm_at(int64_t M, int64_t K, int64_t P, const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc,
           T alpha, bool accumulate) {
  gemm<T>(M, K, P, A, 1, lda, B, ldb, C, ldc, alpha, accumulate);
}

template <typename T>
void read_forward(const AttentionDims& d, const T* x, const ImageStrides& xs, const T* params, T* out, int64_t b0,
                  int64_t b1, T* scratch) {
  const int64_t C = d.C, H = d.H, W = d.W, N = d.N;
  Arena<T> arena{scratch};
  Filterbanks<T> fb(d, arena);
  const Strides s = fb.s;
  T* xp = arena.take(H * s.Wp);   // x_c with padded rows
  T* U = arena.take(N * s.Wp);    // Fy x_c
  T* O = arena.take(N * s.Np);    // gamma U Fx^T
  for (int64_t b = b0; b < b1; ++b) {
    fb.compute(params + b * am::kNumParams);
    for (int64_t c = 0; c < C; ++c) {
      load_plane<T>(x, xs, b, c, H, W, xp, s.Wp);
      mm<T>(N, H, s.Wp, fb.Fy, s.Hp, xp, s.Wp, U, s.Wp, T(1), false);
      mm<T>(N, W, s.Np, U, s.Wp, fb.FxT, s.Np, O, s.Np, fb.win.gamma, false);
      copy_rows<T>(N, N, O, s.Np, out + (b * C + c) * N * N, N);
    }
  }
}

template <typename T>
void read_backward(const AttentionDims& d, const T* grad_out, const T* x, const ImageStrides& xs, const T* params,
                   T* grad_x, T* grad_params, int64_t b0, int64_t b1, T* scratch) {
  const int64_t C = d.C, H = d.H, W = d.W, N = d.N;
  Arena<T> arena{scratch};
  Filterbanks<T> fb(d, arena);
  const Strides s = fb.s;
  T* xp = arena.take(H * s.Wp);
  T* GF = arena.take(s.Np * s.Wp);  // padded rows: it is transposed
  T* GFT = arena.take(s.Wp * s.Np);
  T* U = arena.take(N * s.Wp);
  T* DX = arena.take(H * s.Wp);
  T* dFx = arena.take(N * s.Wp);
  T* dFyT = arena.take(s.Hp * s.Np);
  T* dFy = arena.take(s.Np * s.Hp);
  for (int64_t b = b0; b < b1; ++b) {
    fb.compute(params + b * am::kNumParams);
    const T gamma = fb.win.gamma;
    T dlog_gamma = T(0);
    for (int64_t c = 0; c < C; ++c) {
      const T* G = grad_out + (b * C + c) * N * N;
      const bool acc = c > 0;
      load_plane<T>(x, xs, b, c, H, W, xp, s.Wp);
      // out = gamma Fy x Fx^T; with GF = G Fx and U = Fy x:
      mm<T>(N, N, s.Wp, G, N, fb.Fx, s.Wp, GF, s.Wp, T(1), false);
      mm_at<T>(H, N, s.Wp, fb.Fy, s.Hp, GF, s.Wp, DX, s.Wp, gamma, false);  // dx = gamma Fy^T GF
      copy_rows<T>(H, W, DX, s.Wp, grad_x + (b * C + c) * H * W, W);
      transpose<T>(N, W, GF, s.Wp, GFT, s.Np);
      mm<T>(H, W, s.Np, xp, s.Wp, GFT, s.Np, dFyT, s.Np, gamma, acc);  // dFy^T += gamma x GF^T
      mm<T>(N, H, s.Wp, fb.Fy, s.Hp, xp, s.Wp, U, s.Wp, T(1), false);
      mm_at<T>(N, N, s.Wp, G, N, U, s.Wp, dFx, s.Wp, gamma, acc);      // dFx += gamma G^T U
      dlog_gamma += gamma * dot<T>(N * s.Wp, U, GF);                      // <out, G>
    }
    transpose<T>(H, N, dFyT, s.Np, dFy, s.Hp);
    fb.backward(dFx, dFy, dlog_gamma, grad_params + b * am::kNumParams);
  }
}

template <typename T>
void write_forward(const AttentionDims& d, const T* w, const T* params, T* out, bool accumulate, int64_t b0,
                   int64_t b1, T* scratch) {
  const int64_t C = d.C, H = d.H, W = d.W, N = d.N;
  Arena<T> arena{scratch};
  Filterbanks<T> fb(d, arena);
  const Strides s = fb.s;
  T* V = arena.take(N * s.Wp);   // w_c Fx
  T* I = arena.take(H * s.Wp);   // Fy^T V / gamma
  for (int64_t b = b0; b < b1; ++b) {
    fb.compute(params + b * am::kNumParams);
    for (int64_t c = 0; c < C; ++c) {
      mm<T>(N, N, s.Wp, w + (b * C + c) * N * N, N, fb.Fx, s.Wp, V, s.Wp, T(1), false);
      mm_at<T>(H, N, s.Wp, fb.Fy, s.Hp, V, s.Wp, I, s.Wp, T(1) / fb.win.gamma, false);
      T* o = out + (b * C + c) * H * W;
      if (accumulate) {
        for (int64_t y = 0; y < H; ++y)
          for (int64_t xx = 0; xx < W; ++xx) o[y * W + xx] += I[y * s.Wp + xx];
      } else {
        copy_rows<T>(H, W, I, s.Wp, o, W);
      }
    }
  }
}

template <typename T>
void write_backward(const AttentionDims& d, const T* grad_out, const ImageStrides& gs, const T* w, const T* params,
                    T* grad_w, T* grad_params, int64_t b0, int64_t b1, T* scratch) {
  const int64_t C = d.C, H = d.H, W = d.W, N = d.N;
  Arena<T> arena{scratch};
  Filterbanks<T> fb(d, arena);
  const Strides s = fb.s;
  T* Gp = arena.take(H * s.Wp);
  T* P = arena.take(N * s.Wp);
  T* V = arena.take(s.Np * s.Wp);  // padded rows: it is transposed
  T* VT = arena.take(s.Wp * s.Np);
  T* DW = arena.take(N * s.Np);
  T* dFx = arena.take(N * s.Wp);
  T* dFyT = arena.take(s.Hp * s.Np);
  T* dFy = arena.take(s.Np * s.Hp);
  for (int64_t b = b0; b < b1; ++b) {
    fb.compute(params + b * am::kNumParams);
    const T inv_gamma = T(1) / fb.win.gamma;
    T dlog_gamma = T(0);
    for (int64_t c = 0; c < C; ++c) {
      const T* wc = w + (b * C + c) * N * N;
      const bool acc = c > 0;
      load_plane<T>(grad_out, gs, b, c, H, W, Gp, s.Wp);
      // image = (1/gamma) Fy^T w Fx; with P = Fy G and V = w Fx:
      mm<T>(N, H, s.Wp, fb.Fy, s.Hp, Gp, s.Wp, P, s.Wp, T(1), false);
      mm<T>(N, W, s.Np, P, s.Wp, fb.FxT, s.Np, DW, s.Np, inv_gamma, false);  // dw = P Fx^T / gamma
      copy_rows<T>(N, N, DW, s.Np, grad_w + (b * C + c) * N * N, N);
      mm_at<T>(N, N, s.Wp, wc, N, P, s.Wp, dFx, s.Wp, inv_gamma, acc);      // dFx += w^T P / gamma
      mm<T>(N, N, s.Wp, wc, N, fb.Fx, s.Wp, V, s.Wp, T(1), false);
      transpose<T>(N, W, V, s.Wp, VT, s.Np);
      mm<T>(H, W, s.Np, Gp, s.Wp, VT, s.Np, dFyT, s.Np, inv_gamma, acc);    // dFy^T += G V^T / gamma
      dlog_gamma -= inv_gamma * dot<T>(N * s.Wp, V, P);                      // -<image, G>
    }
    transpose<T>(H, N, dFyT, s.Np, dFy, s.Hp);
    fb.backward(dFx, dFy, dlog_gamma, grad_params + b * am::kNumParams);
  }
}

}  // namespace

template <typename T>
AttentionKernels<T> attention_kernels() {
  return {&read_forward<T>, &read_backward<T>, &write_forward<T>, &write_backward<T>};
}
template AttentionKernels<float> attention_kernels<float>();
template AttentionKernels<double> attention_kernels<double>();

}  // namespace FASTGEN_CPU_CAPABILITY
}  // namespace cpu
}  // namespace fastgen
