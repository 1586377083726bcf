// Torch-free tests of csrc/include/fastgen/attention_math.h, the per-element math shared by the CPU and
// CUDA attention kernels. Built and run by ctest (see CMakeLists.txt); exits nonzero on any failure.
//
// Besides the header's functions, the last test checks the per-channel algebra the kernels use for the
// backward ops (S = small Fx, T = Fy image, dlog_gamma = +-scale <S,T>, ...) against finite differences
// of a naive forward, so a wrong formula is caught here even though the CUDA kernels cannot run.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "check.h"
#include "fastgen/attention_math.h"

namespace am = fastgen::attention;

namespace {

// |got - want| <= atol + rtol |want|
bool close(double got, double want, double rtol, double atol) {
  return std::isfinite(got) && std::fabs(got - want) <= atol + rtol * std::fabs(want);
}

#define CHECK_CLOSE(got, want, rtol, atol, what)                                                        \
  CHECK(close((got), (want), (rtol), (atol)), "%s: got %.17g want %.17g (diff %.3g)", what, double(got), \
        double(want), double(got) - double(want))

std::mt19937_64 rng(1234);
double uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); }

// Softmax over a = 1..size of -(a - mu)^2 / (2 var), the textbook way: max over the row, then exp.
std::vector<double> naive_row(double mu, double log_var, int size) {
  std::vector<double> logit(size), row(size);
  double mx = -INFINITY, sum = 0;
  for (int a = 0; a < size; ++a) {
    const double d = (a + 1) - mu;
    logit[a] = -d * d / (2 * std::exp(log_var));
    mx = std::fmax(mx, logit[a]);
  }
  for (int a = 0; a < size; ++a) sum += (row[a] = std::exp(logit[a] - mx));
  for (double& v : row) v /= sum;
  return row;
}

template <typename T>
std::vector<T> header_row(double mu, double log_var, int size) {
  std::vector<T> row(size);
  am::filter_row<T>(T(mu), T(0.5) * std::exp(T(-log_var)), size, row.data());
  return row;
}

// Rows sum to 1 and stay finite (no NaN/Inf, no negative weights) for centres far outside the image
// and for the whole log-variance range, in float and double.
template <typename T>
void test_filter_row_extremes(const char* type, double tol) {
  const double mus[] = {-1e4, -1e3, -50.5, 0.0, 0.5, 1.0, 7.49, 7.5, 14.0, 28.0, 29.0, 1e3, 1e4};
  const int sizes[] = {1, 2, 7, 28, 100};
  for (int size : sizes)
    for (double mu : mus)
      for (double lv = -10; lv <= 10; lv += 0.5) {
        const std::vector<T> row = header_row<T>(mu, lv, size);
        double sum = 0;
        bool finite = true;
        for (T v : row) {
          finite = finite && std::isfinite(double(v)) && v >= T(0);
          sum += double(v);
        }
        CHECK(finite, "%s row not finite/nonnegative: mu=%g log_var=%g size=%d", type, mu, lv, size);
        CHECK(std::fabs(sum - 1) <= tol, "%s row sum %.17g != 1: mu=%g log_var=%g size=%d", type, sum, mu, lv,
              size);
      }
}

// filter_row equals the naive softmax (double to ~1e-14, float to float rounding).
void test_filter_row_matches_naive() {
  for (int trial = 0; trial < 400; ++trial) {
    const int size = 1 + int(uniform(0, 60));
    const double mu = uniform(-20, size + 20), lv = uniform(-6, 6);
    const std::vector<double> want = naive_row(mu, lv, size);
    const std::vector<double> got = header_row<double>(mu, lv, size);
    const std::vector<float> gotf = header_row<float>(mu, lv, size);
    for (int a = 0; a < size; ++a) {
      CHECK_CLOSE(got[a], want[a], 1e-12, 1e-300, "filter_row<double> vs naive softmax");
      // float: relative error of exp() of a logit of size L is ~L * eps; absolute floor for tiny weights
      CHECK_CLOSE(gotf[a], want[a], 1e-4, 1e-6, "filter_row<float> vs naive softmax");
    }
  }
}

// filter_row_backward vs central differences of L = <g, F(mu, log_var)> in double.
void test_filter_row_backward() {
  for (int trial = 0; trial < 200; ++trial) {
    const int size = 1 + int(uniform(0, 40));
    const double mu = uniform(-5, size + 5), lv = uniform(-2, 4);
    std::vector<double> g(size);
    for (double& v : g) v = uniform(-1, 1);
    auto loss = [&](double m, double l) {
      const std::vector<double> r = naive_row(m, l, size);
      double s = 0;
      for (int a = 0; a < size; ++a) s += g[a] * r[a];
      return s;
    };
    const double h = 1e-6;
    const double fd_mu = (loss(mu + h, lv) - loss(mu - h, lv)) / (2 * h);
    const double fd_lv = (loss(mu, lv + h) - loss(mu, lv - h)) / (2 * h);
    const std::vector<double> row = header_row<double>(mu, lv, size);
    double dmu = 0, dlv = 0;
    am::filter_row_backward<double>(row.data(), g.data(), mu, 0.5 * std::exp(-lv), size, &dmu, &dlv);
    CHECK_CLOSE(dmu, fd_mu, 1e-6, 1e-8, "filter_row_backward dmu vs finite differences");
    CHECK_CLOSE(dlv, fd_lv, 1e-6, 1e-8, "filter_row_backward dlog_var vs finite differences");
  }
}

// window_from_params and filter_offset against values worked out by hand from the reference formulas.
void test_window_from_params() {
  // H=28, W=32, N=5; raw = (0.5, -0.25, log 2, log 0.5, log 3):
  //   gX = 33/2 * 1.5 = 24.75, gY = 29/2 * 0.75 = 10.875, 1/(2 sigma^2) = 1/4,
  //   delta = (32 - 1)/(5 - 1) * 0.5 = 3.875, gamma = 3
  const double raw[5] = {0.5, -0.25, std::log(2.0), std::log(0.5), std::log(3.0)};
  am::Window<double> w = am::window_from_params<double>(raw, 5, 28, 32);
  CHECK_CLOSE(w.gx, 24.75, 1e-15, 0, "gx");
  CHECK_CLOSE(w.gy, 10.875, 1e-15, 0, "gy");
  CHECK_CLOSE(w.inv_two_var, 0.25, 1e-15, 0, "inv_two_var");
  CHECK_CLOSE(w.delta, 3.875, 1e-15, 0, "delta N=5");
  CHECK_CLOSE(w.gamma, 3.0, 1e-15, 0, "gamma");
  // N = 1: delta = (max(H,W) - 1) / max(N - 1, 1) * 0.5 = 15.5 (unused, but defined), one filter at g.
  w = am::window_from_params<double>(raw, 1, 28, 32);
  CHECK_CLOSE(w.delta, 15.5, 1e-15, 0, "delta N=1");
  CHECK_CLOSE(am::filter_offset<double>(0, 1), 0.0, 0, 0, "offset N=1");
  // g~ = 0 is the image centre (1-based pixels): (W + 1)/2 = 16.5, (H + 1)/2 = 14.5; H > W uses H.
  const double centre[5] = {0, 0, 0, 0, 0};
  w = am::window_from_params<double>(centre, 3, 41, 32);
  CHECK_CLOSE(w.gx, 16.5, 1e-15, 0, "gx centre");
  CHECK_CLOSE(w.gy, 21.0, 1e-15, 0, "gy centre");
  CHECK_CLOSE(w.delta, 20.0, 1e-15, 0, "delta uses max(H, W)");
  CHECK_CLOSE(w.gamma, 1.0, 1e-15, 0, "gamma = exp(0)");
  // mu_i = g + (i - N/2 - 0.5) delta with 1-based i: offsets -2..2 for N = 5, -1.5..1.5 for N = 4.
  for (int i = 0; i < 5; ++i) CHECK_CLOSE(am::filter_offset<double>(i, 5), i - 2.0, 0, 0, "offset N=5");
  for (int i = 0; i < 4; ++i) CHECK_CLOSE(am::filter_offset<double>(i, 4), i - 1.5, 0, 0, "offset N=4");
}

// Both filterbanks of one example [N,W] and [N,H] from raw parameters, via the header.
struct Banks {
  am::Window<double> win;
  std::vector<double> Fx, Fy;
};

Banks banks(const double* raw, int N, int H, int W) {
  Banks b{am::window_from_params<double>(raw, N, H, W), std::vector<double>(size_t(N) * W),
          std::vector<double>(size_t(N) * H)};
  for (int i = 0; i < N; ++i) {
    const double off = am::filter_offset<double>(i, N);
    am::filter_row<double>(b.win.gx + off * b.win.delta, b.win.inv_two_var, W, &b.Fx[size_t(i) * W]);
    am::filter_row<double>(b.win.gy + off * b.win.delta, b.win.inv_two_var, H, &b.Fy[size_t(i) * H]);
  }
  return b;
}

// Reduce dL/dFx, dL/dFy, dL/dlog(gamma) to the 5 raw parameters exactly as the kernels do.
void raw_grad(const Banks& b, const std::vector<double>& dFx, const std::vector<double>& dFy, double dlog_gamma,
              int N, int H, int W, double* out) {
  am::WindowGrad<double> g;
  g.log_gamma = dlog_gamma;
  for (int i = 0; i < N; ++i) {
    const double off = am::filter_offset<double>(i, N);
    double dmu, dlv;
    am::filter_row_backward<double>(&b.Fx[size_t(i) * W], &dFx[size_t(i) * W], b.win.gx + off * b.win.delta,
                                    b.win.inv_two_var, W, &dmu, &dlv);
    g.gx += dmu, g.delta += dmu * off, g.log_var += dlv;
    am::filter_row_backward<double>(&b.Fy[size_t(i) * H], &dFy[size_t(i) * H], b.win.gy + off * b.win.delta,
                                    b.win.inv_two_var, H, &dmu, &dlv);
    g.gy += dmu, g.delta += dmu * off, g.log_var += dlv;
  }
  am::window_grad_to_params<double>(g, b.win, H, W, out);
}

std::vector<double> random_vec(size_t n) {
  std::vector<double> v(n);
  for (double& x : v) x = uniform(-1, 1);
  return v;
}

// window_grad_to_params (with filter_row_backward) vs finite differences of
// L(raw) = <Gx, Fx> + <Gy, Fy> + k gamma, for N = 1 and N > 1, square and non-square images.
void test_window_grad_to_params() {
  const int shapes[][3] = {{1, 12, 12}, {1, 9, 14}, {3, 12, 12}, {5, 11, 16}, {4, 20, 7}};
  for (const auto& sh : shapes) {
    const int N = sh[0], H = sh[1], W = sh[2];
    const std::vector<double> Gx = random_vec(size_t(N) * W), Gy = random_vec(size_t(N) * H);
    const double k = uniform(-1, 1);
    const double raw[5] = {uniform(-0.5, 0.5), uniform(-0.5, 0.5), uniform(-0.5, 1.5), uniform(-1, 0),
                           uniform(-0.5, 0.5)};
    auto loss = [&](const double* r) {
      const Banks b = banks(r, N, H, W);
      double s = k * b.win.gamma;
      for (size_t a = 0; a < Gx.size(); ++a) s += Gx[a] * b.Fx[a];
      for (size_t a = 0; a < Gy.size(); ++a) s += Gy[a] * b.Fy[a];
      return s;
    };
    double got[5];
    const Banks b = banks(raw, N, H, W);
    raw_grad(b, Gx, Gy, k * b.win.gamma, N, H, W, got);
    for (int p = 0; p < 5; ++p) {
      double rp[5], rm[5];
      const double h = 1e-6;
      for (int q = 0; q < 5; ++q) rp[q] = rm[q] = raw[q];
      rp[p] += h, rm[p] -= h;
      const double fd = (loss(rp) - loss(rm)) / (2 * h);
      char what[96];
      std::snprintf(what, sizeof what, "window_grad_to_params N=%d H=%d W=%d param %d", N, H, W, p);
      CHECK_CLOSE(got[p], fd, 1e-6, 1e-8, what);
    }
  }
}

// Naive read (gamma Fy x Fx^T) and write ((1/gamma) Fy^T w Fx) of one channel, straight from the definition.
void naive_out(bool read, const Banks& b, const std::vector<double>& in, int N, int H, int W,
               std::vector<double>& out) {
  if (read) {
    out.assign(size_t(N) * N, 0);
    for (int i = 0; i < N; ++i)
      for (int j = 0; j < N; ++j)
        for (int h = 0; h < H; ++h)
          for (int w = 0; w < W; ++w)
            out[i * N + j] += b.win.gamma * b.Fy[i * H + h] * in[h * W + w] * b.Fx[j * W + w];
  } else {
    out.assign(size_t(H) * W, 0);
    for (int h = 0; h < H; ++h)
      for (int w = 0; w < W; ++w)
        for (int i = 0; i < N; ++i)
          for (int j = 0; j < N; ++j)
            out[h * W + w] += b.Fy[i * H + h] * in[i * N + j] * b.Fx[j * W + w] / b.win.gamma;
  }
}

// The backward algebra of csrc/cuda/attention.cu, written as loops over one channel:
//   S = small Fx, T = Fy image; read: grad_x = gamma Fy^T S; write: grad_w = (1/gamma) T Fx^T;
//   dFy[i,h] = scale sum_w S[i,w] image[h,w]; dFx[j,w] = scale sum_i small[i,j] T[i,w];
//   dlog_gamma = +-scale <S,T>.
// Checked against finite differences of naive_out for the input and the 5 raw parameters.
void test_backward_algebra() {
  for (int read = 0; read < 2; ++read) {
    const int shapes[][3] = {{1, 6, 5}, {3, 7, 9}, {4, 8, 6}};
    for (const auto& sh : shapes) {
      const int N = sh[0], H = sh[1], W = sh[2];
      const double raw[5] = {uniform(-0.3, 0.3), uniform(-0.3, 0.3), uniform(0, 1), uniform(-1, 0),
                             uniform(-0.5, 0.5)};
      const Banks b = banks(raw, N, H, W);
      const size_t n_in = read ? size_t(H) * W : size_t(N) * N, n_out = read ? size_t(N) * N : size_t(H) * W;
      const std::vector<double> in = random_vec(n_in), G = random_vec(n_out);
      const std::vector<double>& small = read ? G : in;
      const std::vector<double>& image = read ? in : G;
      const double scale = read ? b.win.gamma : 1 / b.win.gamma;

      std::vector<double> S(size_t(N) * W, 0), T(size_t(N) * W, 0), dFx(size_t(N) * W, 0), dFy(size_t(N) * H, 0),
          grad_in(n_in, 0);
      for (int i = 0; i < N; ++i)
        for (int w = 0; w < W; ++w) {
          for (int j = 0; j < N; ++j) S[i * W + w] += small[i * N + j] * b.Fx[j * W + w];
          for (int h = 0; h < H; ++h) T[i * W + w] += b.Fy[i * H + h] * image[h * W + w];
        }
      if (read) {
        for (int h = 0; h < H; ++h)
          for (int w = 0; w < W; ++w)
            for (int i = 0; i < N; ++i) grad_in[h * W + w] += scale * b.Fy[i * H + h] * S[i * W + w];
      } else {
        for (int i = 0; i < N; ++i)
          for (int j = 0; j < N; ++j)
            for (int w = 0; w < W; ++w) grad_in[i * N + j] += scale * T[i * W + w] * b.Fx[j * W + w];
      }
      double dot = 0;
      for (int i = 0; i < N; ++i)
        for (int w = 0; w < W; ++w) {
          for (int h = 0; h < H; ++h) dFy[i * H + h] += scale * S[i * W + w] * image[h * W + w];
          for (int j = 0; j < N; ++j) dFx[j * W + w] += scale * small[i * N + j] * T[i * W + w];
          dot += S[i * W + w] * T[i * W + w];
        }
      double graw[5];
      raw_grad(b, dFx, dFy, (read ? 1 : -1) * scale * dot, N, H, W, graw);

      // L = <G, op(in, raw)>
      auto loss = [&](const std::vector<double>& x, const double* r) {
        std::vector<double> out;
        naive_out(read, banks(r, N, H, W), x, N, H, W, out);
        double s = 0;
        for (size_t a = 0; a < out.size(); ++a) s += G[a] * out[a];
        return s;
      };
      const double h = 1e-6;
      char what[96];
      for (int p = 0; p < 5; ++p) {
        double rp[5], rm[5];
        for (int q = 0; q < 5; ++q) rp[q] = rm[q] = raw[q];
        rp[p] += h, rm[p] -= h;
        std::snprintf(what, sizeof what, "%s backward N=%d H=%d W=%d d/draw[%d]", read ? "read" : "write", N, H, W, p);
        CHECK_CLOSE(graw[p], (loss(in, rp) - loss(in, rm)) / (2 * h), 1e-6, 1e-8, what);
      }
      for (size_t a = 0; a < n_in; a += 3) {  // every third input element keeps the O(n^2) FD cheap
        std::vector<double> xp = in, xm = in;
        xp[a] += h, xm[a] -= h;
        std::snprintf(what, sizeof what, "%s backward N=%d H=%d W=%d d/dinput[%zu]", read ? "read" : "write", N, H, W,
                      a);
        CHECK_CLOSE(grad_in[a], (loss(xp, raw) - loss(xm, raw)) / (2 * h), 1e-6, 1e-8, what);
      }
    }
  }
}

}  // namespace

int main() {
  test_filter_row_extremes<double>("double", 1e-12);
  test_filter_row_extremes<float>("float", 1e-5);
  test_filter_row_matches_naive();
  test_filter_row_backward();
  test_window_from_params();
  test_window_grad_to_params();
  test_backward_algebra();
  std::printf("test_attention_math: %d checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
