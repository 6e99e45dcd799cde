// Compile a CUDA kernel file whose threads cooperate (shared memory, __syncthreads, warp
// shuffles) as a C++ shared library, and run each thread block on the CPU with one OS thread
// per CUDA thread (the test starts them: shim_begin_block, then shim_set_thread and the
// kernel in each). Blocks run one after another, so:
// - a __shared__ array is a function static, one copy that the block's threads share (the
//   test rewrites `extern __shared__ T name[];` to a pointer into shim_dynamic_shared);
// - __syncthreads is a barrier over the block's threads;
// - __shfl_xor_sync(mask, v, o) and __shfl_sync(mask, v, lane) pass v through a slot per
//   thread between two barriers of the warp, __syncwarp is one such barrier (blockDim.x a
//   multiple of 32, every lane of the warp taking part).
#pragma once
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(threads)

struct ShimIndex { unsigned int x; };
static thread_local ShimIndex threadIdx = {0};
static ShimIndex blockIdx = {0}, blockDim = {1};

alignas(16) static unsigned char shim_dynamic_shared[1 << 20];
static std::unique_ptr<std::barrier<>> shim_block_barrier;
static std::vector<std::unique_ptr<std::barrier<>>> shim_warp_barriers;
static double shim_slots[1024];

extern "C" void shim_begin_block(unsigned int block, unsigned int threads) {
    blockIdx.x = block;
    blockDim.x = threads;
    shim_block_barrier = std::make_unique<std::barrier<>>(threads);
    shim_warp_barriers.clear();
    for (unsigned int w = 0; w < threads / 32; ++w) shim_warp_barriers.push_back(std::make_unique<std::barrier<>>(32));
}

extern "C" void shim_set_thread(unsigned int thread) { threadIdx.x = thread; }

inline void __syncthreads() { shim_block_barrier->arrive_and_wait(); }

inline void __syncwarp(unsigned int = 0xffffffff) { shim_warp_barriers[threadIdx.x / 32]->arrive_and_wait(); }

// The value that lane `source` of this warp passes.
template <typename T>
T shim_exchange(T value, unsigned int source) {
    static_assert(sizeof(T) <= sizeof(double), "one slot a thread");
    const unsigned int warp = threadIdx.x / 32;
    std::memcpy(&shim_slots[threadIdx.x], &value, sizeof(T));
    __syncwarp();
    T other;
    std::memcpy(&other, &shim_slots[warp * 32 + source], sizeof(T));
    __syncwarp();
    return other;
}

template <typename T>
T __shfl_xor_sync(unsigned int, T value, int lane_mask) { return shim_exchange(value, (threadIdx.x % 32) ^ lane_mask); }

template <typename T>
T __shfl_sync(unsigned int, T value, int source) { return shim_exchange(value, source % 32); }

// CUDA types and math functions that C++ lacks (sinpi and cospi exact at integers, as CUDA's)
using std::max;
using std::min;
struct float2 { float x, y; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline double sinpi(double x) { return x == std::rint(x) ? 0.0 : std::sin(M_PI * x); }
inline double cospi(double x) { return x - 0.5 == std::rint(x - 0.5) ? 0.0 : std::cos(M_PI * x); }
inline float sinpif(float x) { return (float)sinpi((double)x); }
inline float cospif(float x) { return (float)cospi((double)x); }
inline void sincospif(float x, float* s, float* c) { *s = sinpif(x); *c = cospif(x); }
