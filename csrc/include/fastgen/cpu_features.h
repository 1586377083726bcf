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

// AVX-512 F, VL, DQ and BW (every AVX-512 Xeon since Skylake-SP) besides AVX2 + FMA, unless
// FASTGEN_CPU_CAPABILITY names a narrower build ("avx2" or "generic": how tests run those builds on an
// AVX-512 machine). The families with an AVX-512 build (csrc/cpu/*avx512.cpp) run it where this holds.
inline bool cpu_has_avx512() {
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
  static const bool has = [] {
    const char* forced = std::getenv("FASTGEN_CPU_CAPABILITY");
    if (!cpu_has_avx2_fma() || (forced != nullptr && std::string(forced) == "avx2")) return false;
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
  }();
  return has;
#else
  return false;
#endif
}

// The build a kernel family runs on this CPU ("avx512", "avx2" or "generic"): the same predicates as
// isa_table and wide_isa_table (isa_dispatch.h), so what torch.ops.fastgen.cpu_kernel_builds reports
// is what runs.
inline const char* cpu_build_name(bool has_avx512_build) {
  return has_avx512_build && cpu_has_avx512() ? "avx512" : cpu_has_avx2_fma() ? "avx2" : "generic";
}

}  // namespace fastgen
