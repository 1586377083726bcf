// Body of the CPU score-and-sample / score-and-rank kernels of IRGAN, included once per instruction
// set (kernels_avx2.cpp, kernels_generic.cpp, items_kernels_avx512.cpp). Torch-free: no torch header
// may be compiled with AVX2 enabled.
//
// Users are the vector lanes. A group of G = 2 vectors of users is packed transposed, [d, G]; a tile
// of kTile rows of item_emb, read in place, times that group is a register-tiled product (item values
// broadcast, user vectors loaded, kRows x 2 accumulators) into a [rows, G] score buffer. Vectors are
// FASTGEN_ITEMS_VECTOR_BYTES wide (fastgen/wide_vec.h): 32 in the AVX2 and generic builds, 64 in
// the AVX-512 build (items_kernels_avx512.cpp), whose 32 registers also hold a taller tile. So every
// per-user reduction (max, sum of exp, the top-k threshold) is a vertical vector operation over item
// rows, and each lane sums its own user's items in index order: the float64 sums of pass 1 are, bit
// for bit, the running sums of pass 2's walk. A task (panel) is kPanelGroups groups; the tile stays in
// L2 while they pass.
//
// sample, pass 1, per (user, tile t): m_t = max score, S_t = sum_i exp((s_i - m_t) / T) (float64);
//   per user M = max m_t, W_t = S_t exp((m_t - M) / T), total = sum_t W_t.
// pass 2: the user's targets u_j * total, sorted, walk the prefix sums of W_t to their tile; each tile
//   some user of the group lands in is recomputed once for the group and walked item by item.
//   Memory per task: panel x tiles x 12 bytes (O(items)), never users x items.
// topk: a bounded heap per user; a user scans a tile only when the tile's max beats its k-th score.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "fastgen/wide_vec.h"
#include "items_kernels.h"

namespace fastgen {
namespace cpu {
namespace FASTGEN_CPU_CAPABILITY {
namespace {

#ifndef FASTGEN_ITEMS_VECTOR_BYTES
#define FASTGEN_ITEMS_VECTOR_BYTES 32
#endif
constexpr int kUserBytes = FASTGEN_ITEMS_VECTOR_BYTES;
template <typename T>
using UserVec = Wide<T, kUserBytes>;  // one lane per user
template <typename T>
constexpr int64_t kUserLanes = kWideLanes<T, kUserBytes>;

constexpr int kVectors = 2;                                      // user vectors per group
constexpr int kRows = kUserBytes == 64 ? 12 : 6;                // item rows per register tile
constexpr int64_t kTile = 240;       // items per tile (a multiple of kRows): 60 KB of item_emb at d = 64, in L2
constexpr int64_t kPanelGroups = 4;  // groups per task: item_emb streams from memory once per panel

template <typename T>
constexpr int64_t kGroup = kVectors * kUserLanes<T>;

template <typename T>
using Maxima = UserVec<T>[kVectors];

// Users [u0, u0 + G) transposed into packed [d, G]; columns past U are zero.
template <typename T>
void pack_group(const ItemScores<T>& s, int64_t u0, T* packed) {
  constexpr int64_t G = kGroup<T>;
  for (int64_t k = 0; k < s.d; ++k)
    for (int64_t g = 0; g < G; ++g) packed[k * G + g] = u0 + g < s.U ? s.user[(u0 + g) * s.d + k] : T(0);
}

// out [R, G] = scores of items [i0, i0 + R): one FMA chain over d per score, then + bias, whichever R.
template <typename T, int R>
static inline void score_rows(const ItemScores<T>& s, const T* packed, int64_t i0, T* out) {
  constexpr int64_t G = kGroup<T>, L = kUserLanes<T>;
  UserVec<T> acc[R][kVectors];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < kVectors; ++v) acc[r][v] = UserVec<T>{};
  const T* a = s.item + i0 * s.d;
  for (int64_t k = 0; k < s.d; ++k) {
    UserVec<T> b[kVectors];
    for (int v = 0; v < kVectors; ++v) b[v] = wload<kUserBytes>(packed + k * G + v * L);
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < kVectors; ++v) acc[r][v] += a[r * s.d + k] * b[v];
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < kVectors; ++v) wstore<kUserBytes>(out + r * G + v * L, acc[r][v] + s.bias[i0 + r]);
}

// buf [n, G] = scores of items [i0, i0 + n) for the packed group, and mx = their max per user.
// Both passes call this and get the same bits.
template <typename T>
void score_tile(const ItemScores<T>& s, const T* packed, int64_t i0, int64_t n, T* buf, Maxima<T>& mx) {
  constexpr int64_t G = kGroup<T>, L = kUserLanes<T>;
  int64_t r = 0;
  for (; r + kRows <= n; r += kRows) score_rows<T, kRows>(s, packed, i0 + r, buf + r * G);
  for (; r < n; ++r) score_rows<T, 1>(s, packed, i0 + r, buf + r * G);  // only in the last tile
  for (int v = 0; v < kVectors; ++v) mx[v] = UserVec<T>{} - std::numeric_limits<T>::infinity();
  for (r = 0; r < n; ++r)
    for (int v = 0; v < kVectors; ++v) {
      const UserVec<T> x = wload<kUserBytes>(buf + r * G + v * L);
      mx[v] = x > mx[v] ? x : mx[v];
    }
}

// exp of lanes <= 0: the shared vector exp (floored, wide_vec.h) for float; libm per lane for
// float64, which is for tests.
static inline UserVec<float> user_exp(UserVec<float> x) { return wexp_nonpositive<kUserBytes>(x); }
static inline UserVec<double> user_exp(UserVec<double> x) {
  for (int64_t l = 0; l < kUserLanes<double>; ++l) x[l] = std::exp(x[l]);
  return x;
}

// buf <- exp((buf - mx) * inv_t) in place: every weight relative to its user's tile max, <= 1.
template <typename T>
void tile_exp(T* buf, int64_t n, const Maxima<T>& mx, T inv_t) {
  constexpr int64_t G = kGroup<T>, L = kUserLanes<T>;
  for (int64_t r = 0; r < n; ++r)
    for (int v = 0; v < kVectors; ++v) {
      T* p = buf + r * G + v * L;
      wstore<kUserBytes>(p, user_exp((wload<kUserBytes>(p) - mx[v]) * inv_t));
    }
}

template <typename T>
T lane(const Maxima<T>& mx, int64_t g) {
  return mx[g / kUserLanes<T>][g % kUserLanes<T>];
}

struct Hit {
  int64_t tile, lane, j;
  double target;  // in units of the tile's weights exp((s - m_t) / T)
};

// Pass 2 for one group: hits sorted by tile (each lane's in ascending target order) -> out.
template <typename T>
void walk_hits(const SamplePlan<T>& p, const T* packed, int64_t u0, std::vector<Hit>& hits, T* buf) {
  constexpr int64_t G = kGroup<T>;
  const ItemScores<T>& s = p.s;
  const int64_t tiles = (s.I + kTile - 1) / kTile;
  std::stable_sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) { return a.tile < b.tile; });
  for (size_t h = 0; h < hits.size();) {
    const int64_t t = hits[h].tile, i0 = t * kTile, n = std::min(kTile, s.I - i0);
    Maxima<T> mx;
    score_tile(s, packed, i0, n, buf, mx);
    tile_exp(buf, n, mx, p.inv_temperature);
    while (h < hits.size() && hits[h].tile == t) {
      const int64_t l = hits[h].lane;
      int64_t r = 0;
      double c = 0;
      for (; h < hits.size() && hits[h].tile == t && hits[h].lane == l; ++h) {
        for (; r < n; ++r) {
          const double next = c + double(buf[r * G + l]);
          if (next > hits[h].target) break;
          c = next;
        }
        int64_t item = i0 + r;
        if (r == n) {  // the target is the tile's whole sum up to rounding: a near-tie with the next tile
          item = s.I - 1;  // (or u_j * total >= total: the clamp)
          if (t + 1 < tiles)
            for (int64_t q = n - 1; q >= 0; --q)
              if (buf[q * G + l] > T(0)) {
                item = i0 + q;
                break;
              }
        }
        p.out[(u0 + l) * p.k + hits[h].j] = item;
      }
    }
  }
}

template <typename T>
void sample(const SamplePlan<T>& p, int64_t u0, int64_t u1) {
  constexpr int64_t G = kGroup<T>;
  const ItemScores<T>& s = p.s;
  const int64_t groups = (u1 - u0 + G - 1) / G, tiles = (s.I + kTile - 1) / kTile;
  std::vector<T> packed(groups * s.d * G), buf(kTile * G), tile_max(groups * G * tiles);
  std::vector<double> tile_sum(groups * G * tiles), sums(G);
  for (int64_t g = 0; g < groups; ++g) pack_group(s, u0 + g * G, packed.data() + g * s.d * G);

  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t i0 = t * kTile, n = std::min(kTile, s.I - i0);
    for (int64_t g = 0; g < groups; ++g) {
      Maxima<T> mx;
      score_tile(s, packed.data() + g * s.d * G, i0, n, buf.data(), mx);
      tile_exp(buf.data(), n, mx, p.inv_temperature);
      std::fill(sums.begin(), sums.end(), 0.0);
      for (int64_t r = 0; r < n; ++r)
        for (int64_t l = 0; l < G; ++l) sums[l] += double(buf[r * G + l]);
      for (int64_t l = 0; l < G; ++l) {
        tile_max[(g * G + l) * tiles + t] = lane<T>(mx, l);
        tile_sum[(g * G + l) * tiles + t] = sums[l];
      }
    }
  }

  const double inv_t = p.inv_temperature;
  std::vector<std::pair<T, int64_t>> order(p.k);
  std::vector<Hit> hits;
  for (int64_t g = 0; g < groups; ++g) {
    hits.clear();
    for (int64_t l = 0; l < G && u0 + g * G + l < u1; ++l) {
      const int64_t u = u0 + g * G + l;
      const T* m = tile_max.data() + (g * G + l) * tiles;
      double* W = tile_sum.data() + (g * G + l) * tiles;
      const double M = *std::max_element(m, m + tiles);
      double total = 0;
      for (int64_t t = 0; t < tiles; ++t) total += W[t] *= std::exp((double(m[t]) - M) * inv_t);
      for (int64_t j = 0; j < p.k; ++j) order[j] = {p.uniforms[u * p.k + j], j};
      std::sort(order.begin(), order.end());
      int64_t t = 0;
      double prefix = 0;
      for (const auto& [uniform, j] : order) {
        const double target = double(uniform) * total;
        for (; t + 1 < tiles && prefix + W[t] <= target; ++t) prefix += W[t];
        hits.push_back({t, l, j, (target - prefix) / std::exp((double(m[t]) - M) * inv_t)});
      }
    }
    walk_hits(p, packed.data() + g * s.d * G, u0 + g * G, hits, buf.data());
  }
}

template <typename T>
struct Entry {
  T score;
  int64_t item;
};

// a ranks before b: higher score, then the lower item index
template <typename T>
bool better(const Entry<T>& a, const Entry<T>& b) {
  return a.score > b.score || (a.score == b.score && a.item < b.item);
}

template <typename T>
void topk(const TopkPlan<T>& p, int64_t u0, int64_t u1) {
  constexpr int64_t G = kGroup<T>;
  const ItemScores<T>& s = p.s;
  const int64_t groups = (u1 - u0 + G - 1) / G, tiles = (s.I + kTile - 1) / kTile, users = u1 - u0;
  std::vector<T> packed(groups * s.d * G), buf(kTile * G);
  for (int64_t g = 0; g < groups; ++g) pack_group(s, u0 + g * G, packed.data() + g * s.d * G);
  std::vector<std::vector<Entry<T>>> heaps(users);  // front: the worst kept entry
  // kept entries beat -inf strictly (a -inf score is no candidate); once full, the k-th score. Items
  // come in index order, so an equal score never displaces a kept (lower-index) one.
  std::vector<T> threshold(users, -std::numeric_limits<T>::infinity());
  std::vector<int64_t> cursor(users);  // next excluded item of each user not yet passed
  for (int64_t u = 0; u < users; ++u) cursor[u] = p.indptr != nullptr ? p.indptr[u0 + u] : 0;
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t i0 = t * kTile, n = std::min(kTile, s.I - i0);
    for (int64_t g = 0; g < groups; ++g) {
      Maxima<T> mx;
      score_tile(s, packed.data() + g * s.d * G, i0, n, buf.data(), mx);
      for (int64_t l = 0; l < G && g * G + l < users; ++l) {
        const int64_t u = g * G + l;
        if (!(lane<T>(mx, l) > threshold[u])) continue;
        const int64_t end = p.indptr != nullptr ? p.indptr[u0 + u + 1] : 0;
        auto& heap = heaps[u];
        for (int64_t r = 0; r < n; ++r) {
          const Entry<T> e{buf[r * G + l], i0 + r};
          if (!(e.score > threshold[u])) continue;
          while (cursor[u] < end && p.excluded[cursor[u]] < e.item) ++cursor[u];
          if (cursor[u] < end && p.excluded[cursor[u]] == e.item) continue;
          if (int64_t(heap.size()) == p.k) {
            std::pop_heap(heap.begin(), heap.end(), better<T>);
            heap.back() = e;
          } else {
            heap.push_back(e);
          }
          std::push_heap(heap.begin(), heap.end(), better<T>);
          if (int64_t(heap.size()) == p.k) threshold[u] = heap.front().score;
        }
      }
    }
  }
  for (int64_t u = 0; u < users; ++u) {
    auto& heap = heaps[u];
    std::sort_heap(heap.begin(), heap.end(), better<T>);  // best first
    for (int64_t j = 0; j < p.k; ++j) {
      const bool kept = j < int64_t(heap.size());
      p.scores_out[(u0 + u) * p.k + j] = kept ? heap[j].score : -std::numeric_limits<T>::infinity();
      p.items_out[(u0 + u) * p.k + j] = kept ? heap[j].item : -1;
    }
  }
}

}  // namespace

template <typename T>
ItemsKernels<T> items_kernels() {
  return {kPanelGroups * kGroup<T>, &sample<T>, &topk<T>};
}
template ItemsKernels<float> items_kernels<float>();
template ItemsKernels<double> items_kernels<double>();

}  // namespace FASTGEN_CPU_CAPABILITY
}  // namespace cpu
}  // namespace fastgen
