// Torch-free tests of csrc/include/fastgen/wavenet_math.h, the per-element rules shared by the CPU and
// CUDA WaveNet generation kernels. Built and run by ctest; exits nonzero on any failure.
#include <cmath>
#include <cstdio>
#include <deque>
#include <vector>

#include "check.h"
#include "fastgen/wavenet_math.h"

namespace wn = fastgen::wavenet;

namespace {

// A ring of q slots driven by ring_slot must read exactly what a shifting queue of the last q inputs
// holds (zeros before t = 0), for every tap distance, kernel size and dilation.
void test_ring_matches_a_shift_queue() {
  for (int64_t k = 2; k <= 4; ++k)
    for (int64_t d : {1, 2, 3, 8}) {
      const int64_t q = (k - 1) * d;
      std::vector<int64_t> ring(q, 0);   // value stored = time + 1 (0 = never written)
      std::deque<int64_t> queue(q, 0);   // oldest first
      for (int64_t t = 0; t < 5 * q + 3; ++t) {
        for (int64_t j = 0; j + 1 < k; ++j) {
          const int64_t back = (k - 1 - j) * d;
          const int64_t got = ring[wn::ring_slot(t, back, q)];
          const int64_t want = queue[q - back];
          CHECK(got == want, "k=%lld d=%lld t=%lld back=%lld: ring %lld, queue %lld", (long long)k, (long long)d,
                (long long)t, (long long)back, (long long)got, (long long)want);
        }
        ring[wn::ring_slot(t, 0, q)] = t + 1;  // overwrites the slot just read for back = q
        queue.pop_front();
        queue.push_back(t + 1);
      }
    }
}

void test_ring_slot_is_in_range() {
  for (int64_t q : {1, 2, 7, 512})
    for (int64_t t = 0; t < 3 * q; ++t)
      for (int64_t back = 0; back <= q; ++back) {
        const int64_t s = wn::ring_slot(t, back, q);
        CHECK(s >= 0 && s < q, "ring_slot(%lld, %lld, %lld) = %lld", (long long)t, (long long)back, (long long)q,
              (long long)s);
      }
}

void test_gated_unit() {
  for (float f : {-30.0f, -2.0f, 0.0f, 0.5f, 3.0f, 40.0f})
    for (float g : {-90.0f, -1.0f, 0.0f, 2.0f, 90.0f}) {
      const double want = std::tanh(double(f)) / (1.0 + std::exp(-double(g)));
      const float got = wn::gated_unit(f, g);
      CHECK(std::isfinite(got) && std::fabs(got - want) <= 1e-6 + 1e-6 * std::fabs(want),
            "gated_unit(%g, %g) = %g, want %g", f, g, got, want);
    }
}

void test_search_cdf() {
  const float cdf[4] = {0.25f, 0.5f, 0.75f, 1.0f};
  CHECK(wn::search_cdf(cdf, 4, 0.0f) == 0, "u = 0 takes the first class");
  CHECK(wn::search_cdf(cdf, 4, 0.25f) == 1, "a boundary takes the next class (cdf > u)");
  CHECK(wn::search_cdf(cdf, 4, 0.99f) == 3, "u near 1 takes the last class");
  const float flat[3] = {0.0f, 2.0f, 2.0f};  // a zero-probability class is never drawn
  CHECK(wn::search_cdf(flat, 3, 0.0f) == 1, "zero-weight first class skipped");
  CHECK(wn::search_cdf(flat, 3, 0.9999f) == 1, "zero-weight last class skipped");
  const float rounded[2] = {1.0f, 1.0f};  // cdf rounding can leave no c with cdf[c] > u*total
  CHECK(wn::search_cdf(rounded, 2, 1.0f) == 1, "falls back to the last class");
}

void test_pad8() {
  CHECK(wn::pad8(1) == 8 && wn::pad8(8) == 8 && wn::pad8(9) == 16 && wn::pad8(0) == 0, "pad8");
}

}  // namespace

int main() {
  test_ring_matches_a_shift_queue();
  test_ring_slot_is_in_range();
  test_gated_unit();
  test_search_cdf();
  test_pad8();
  std::printf("wavenet_math: %d checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
