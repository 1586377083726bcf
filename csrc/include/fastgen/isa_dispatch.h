// The run-time choice between the two builds of every CPU kernel table: AVX2+FMA where the CPU has
// them, else the portable build (csrc/cpu/kernels_avx2.cpp, kernels_generic.cpp). Wheels are built
// without -march=native, so this choice is what lets one binary use 8-wide FMAs where they exist.
#pragma once

#include <type_traits>

#include "fastgen/cpu_features.h"

namespace fastgen {

// The table Avx2() or Generic() returns, chosen and built once per (Avx2, Generic) pair (a
// function-local static: thread-safe, and keyed on the functions, so two families never share one).
// Usage: isa_table<&avx2::lstm_kernels<T>, &generic::lstm_kernels<T>>().
template <auto Avx2, auto Generic>
const auto& isa_table() {
  static_assert(std::is_same_v<decltype(Avx2()), decltype(Generic())>,
                "isa_table: the AVX2 and generic builds must return the same table type");
  static const auto table = cpu_has_avx2_fma() ? Avx2() : Generic();
  return table;
}

// The same for a family that also has an AVX-512 build (F, VL, DQ, BW: cpu_has_avx512), picked first.
// Usage: wide_isa_table<&avx512::items_kernels<T>, &avx2::items_kernels<T>, &generic::items_kernels<T>>().
template <auto Avx512, auto Avx2, auto Generic>
const auto& wide_isa_table() {
  static_assert(std::is_same_v<decltype(Avx512()), decltype(Avx2())> &&
                    std::is_same_v<decltype(Avx2()), decltype(Generic())>,
                "wide_isa_table: the AVX-512, AVX2 and generic builds must return the same table type");
  static const auto table = cpu_has_avx512() ? Avx512() : cpu_has_avx2_fma() ? Avx2() : Generic();
  return table;
}

}  // namespace fastgen
