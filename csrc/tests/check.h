// The CHECK macro of the torch-free C++ tests: counts checks, reports a failure with its location
// and a printf-style message, and lets the test carry on; main() returns g_failures != 0.
#pragma once

#include <cstdio>

namespace {

int g_failures = 0;
int g_checks = 0;

}  // namespace

#define CHECK(cond, ...)                                                            \
  do {                                                                              \
    ++g_checks;                                                                     \
    if (!(cond)) {                                                                  \
      ++g_failures;                                                                 \
      std::fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                            \
      std::fputc('\n', stderr);                                                     \
    }                                                                               \
  } while (0)
