// Compile a CUDA kernel file (one thread per output element, no shared memory or
// __syncthreads) as a C++ shared library, so the test suite runs the kernel source on
// the CPU: every launch becomes a loop over elements i, with blockIdx.x = i,
// blockDim.x = 1 and threadIdx.x = 0 (set by shim_set_element before each call).
#pragma once
#include <cmath>
#include <cstring>
#define __global__
#define __device__
#define __forceinline__ inline

struct ShimIndex { unsigned int x; };
static ShimIndex blockIdx = {0}, threadIdx = {0}, blockDim = {1};

extern "C" void shim_set_element(unsigned int i) { blockIdx.x = i; }

// CUDA math functions that C++ lacks
inline void sincospif(float x, float* s, float* c) {
    *s = (float)std::sin(M_PI * (double)x);
    *c = (float)std::cos(M_PI * (double)x);
}
inline float __int_as_float(int bits) {
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}
