// Portability macros shared by host (C++) and device (CUDA) code.
#pragma once

#if defined(__CUDACC__)
#define FASTGEN_HOST_DEVICE __host__ __device__
#else
#define FASTGEN_HOST_DEVICE
#endif

// Header-defined math helpers get internal linkage: the CPU kernels are compiled once per instruction
// set (generic and AVX2, chosen at run time), and with ordinary inline linkage the linker could
// resolve both translation units to the AVX2 copy of a helper and crash a CPU without AVX2.
#define FASTGEN_INLINE FASTGEN_HOST_DEVICE static inline
