// Body of the CPU LSTM-cell pointwise kernels, included once per instruction set (kernels_*.cpp)
// after attention_kernels_impl.h. torch.nn.LSTMCell's update from the pre-activation gates
// [i | f | g | o] (each D wide):
//   c' = sigmoid(f) c + sigmoid(i) tanh(g),   h' = sigmoid(o) tanh(c')
// The forward also stores the activations [i | f | g | o | tanh c'] (5D per row) for the backward,
// which is then a few multiplies per element: recomputing them cost the backward five exps and
// five divisions per element, 1.3x the whole forward. The element math is written once for a float
// vector and for a scalar; float rows run vectors with a scalar tail, double rows scalars.
#include <cmath>
#include <type_traits>

#include "lstm_kernels.h"

namespace fastgen {
namespace cpu {
namespace FASTGEN_CPU_CAPABILITY {
namespace {

static inline Vec<float> act_sigmoid(Vec<float> x) { return vsigmoid(x); }
static inline Vec<float> act_tanh(Vec<float> x) { return vtanh(x); }
template <typename T>
T act_sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}
template <typename T>
T act_tanh(T x) {
  return std::tanh(x);
}

// One element (or one vector of elements) of the forward: writes h' and c' and the activations
// act[0..5) = i, f, g, o, tanh c'.
template <typename V>
static inline void lstm_forward_element(V ai, V af, V ag, V ao, V c, V* h, V* cn, V* act) {
  act[0] = act_sigmoid(ai), act[1] = act_sigmoid(af), act[2] = act_tanh(ag), act[3] = act_sigmoid(ao);
  *cn = act[1] * c + act[0] * act[2];
  act[4] = act_tanh(*cn);
  *h = act[3] * act[4];
}

// One element of the backward from the saved activations, dL/dh' and dL/dc': the gate gradients
// and dL/dc.
template <typename V>
static inline void lstm_backward_element(const V* act, V c, V gh, V gc, V* dgates, V* dc) {
  const V i = act[0], f = act[1], g = act[2], o = act[3], tc = act[4];
  const V dcn = gc + gh * o * (1.0f - tc * tc);
  dgates[0] = dcn * g * i * (1.0f - i);
  dgates[1] = dcn * c * f * (1.0f - f);
  dgates[2] = dcn * i * (1.0f - g * g);
  dgates[3] = gh * tc * o * (1.0f - o);
  *dc = dcn * f;
}

// Calls body(j, width) over [0, D): float in whole vectors then a scalar tail, double by scalars.
template <typename T, typename Body>
static inline void for_each_block(int64_t D, const Body& body) {
  int64_t j = 0;
  if constexpr (std::is_same_v<T, float>) {
    for (; j + kLanes<float> <= D; j += kLanes<float>) body(j, std::integral_constant<bool, true>{});
  }
  for (; j < D; ++j) body(j, std::integral_constant<bool, false>{});
}

// A specialisation, not std::conditional_t: a vector typedef as a template argument drops its
// aligned attribute (-Wignored-attributes).
template <typename T, bool kVector>
struct ElemOf { using type = T; };
template <typename T>
struct ElemOf<T, true> { using type = Vec<T>; };
template <typename T, bool kVector>
using Elem = typename ElemOf<T, kVector>::type;

template <typename T, bool kVector>
static inline Elem<T, kVector> load_elem(const T* p) {
  if constexpr (kVector) return vload(p); else return *p;
}
template <typename T, bool kVector>
static inline void store_elem(T* p, Elem<T, kVector> v) {
  if constexpr (kVector) vstore(p, v); else *p = v;
}

// One row: gates [4D], c [D] -> h [D], c_out [D], and act [5D] unless it is null; c_out may alias c.
template <typename T>
void lstm_row_forward(int64_t D, const T* gates, const T* c, T* h, T* c_out, T* act = nullptr) {
  for_each_block<T>(D, [&](int64_t j, auto vector) {
    constexpr bool kV = decltype(vector)::value;
    using E = Elem<T, kV>;
    E hj, cn, a[5];
    lstm_forward_element<E>(load_elem<T, kV>(gates + j), load_elem<T, kV>(gates + D + j),
                            load_elem<T, kV>(gates + 2 * D + j), load_elem<T, kV>(gates + 3 * D + j),
                            load_elem<T, kV>(c + j), &hj, &cn, a);
    store_elem<T, kV>(h + j, hj);
    store_elem<T, kV>(c_out + j, cn);
    if (act != nullptr)
      for (int k = 0; k < 5; ++k) store_elem<T, kV>(act + k * D + j, a[k]);
  });
}

template <typename T>
void lstm_forward(const LstmDims& d, const T* gates, const T* c, T* h, T* c_out, T* act, int64_t b0, int64_t b1) {
  const int64_t D = d.D;
  for (int64_t b = b0; b < b1; ++b)
    lstm_row_forward<T>(D, gates + b * 4 * D, c + b * D, h + b * D, c_out + b * D, act + b * 5 * D);
}

// grad_h / grad_c may be null (no gradient reached h' / c'): they count as zeros.
template <typename T>
void lstm_backward(const LstmDims& d, const T* grad_h, const T* grad_c, const T* act, const T* c, T* grad_gates,
                   T* grad_c_prev, int64_t b0, int64_t b1) {
  const int64_t D = d.D;
  for (int64_t b = b0; b < b1; ++b) {
    const T* ar = act + b * 5 * D;
    T* dg = grad_gates + b * 4 * D;
    for_each_block<T>(D, [&](int64_t j, auto vector) {
      constexpr bool kV = decltype(vector)::value;
      using E = Elem<T, kV>;
      const E zero{};
      const E gh = grad_h != nullptr ? load_elem<T, kV>(grad_h + b * D + j) : zero;
      const E gc = grad_c != nullptr ? load_elem<T, kV>(grad_c + b * D + j) : zero;
      E a[5], dgates[4], dc;
      for (int k = 0; k < 5; ++k) a[k] = load_elem<T, kV>(ar + k * D + j);
      lstm_backward_element<E>(a, load_elem<T, kV>(c + b * D + j), gh, gc, dgates, &dc);
      for (int k = 0; k < 4; ++k) store_elem<T, kV>(dg + k * D + j, dgates[k]);
      store_elem<T, kV>(grad_c_prev + b * D + j, dc);
    });
  }
}

}  // namespace

template <typename T>
LstmKernels<T> lstm_kernels() {
  return {&lstm_forward<T>, &lstm_backward<T>};
}
template LstmKernels<float> lstm_kernels<float>();
template LstmKernels<double> lstm_kernels<double>();

}  // namespace FASTGEN_CPU_CAPABILITY
}  // namespace cpu
}  // namespace fastgen
