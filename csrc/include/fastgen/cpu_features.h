// Run-time CPU feature detection for choosing between kernel builds.
#pragma once

#include <cstdlib>
#include <string>

namespace fastgen {

inline bool cpu_has_avx2_fma() {
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
  // FASTGEN_CPU_CAPABILITY=generic forces the portable build (tests run both on AVX2 machines).
  static const bool has = [] {
    const char* forced = std::getenv("FASTGEN_CPU_CAPABILITY");
    if (forced != nullptr && std::string(forced) == "generic") return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return has;
#else
  return false;
#endif
}

}  // namespace fastgen
