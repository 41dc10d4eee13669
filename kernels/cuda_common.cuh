// Shared by the .cu kernel families: launch geometry, the post-launch check (engine/cuda/check.h,
// which honours MC_SYNC_CHECK) and bf16 <-> float helpers.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "engine/cuda/check.h"
#include "kernels/common.h"

// After every launch: "kernels/pool.cu: max_pool3d" names the family and the kernel.
#define MC_KERNEL_LAUNCHED(family, what) MC_CUDA_LAUNCHED(family ": " what)

namespace mc::kernels::cuda {

constexpr int kThreads = 256;
// Grid-stride loops run with at most this many blocks: 2^16 x 256 threads is far more than any
// GPU keeps resident, so larger grids only add scheduling work.
constexpr int64_t kMaxBlocks = int64_t(1) << 16;

// Blocks for n items at `per_thread` items per thread, between 1 and `cap`.
inline int grid_for(int64_t n, int per_thread = 1, int64_t cap = kMaxBlocks) {
  const int64_t per_block = int64_t(kThreads) * per_thread;
  const int64_t b = (n + per_block - 1) / per_block;
  return int(b < 1 ? 1 : (b > cap ? cap : b));
}

using bf16 = __nv_bfloat16;
__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ double to_f(double v) { return v; }
__device__ __forceinline__ float to_f(bf16 v) { return __bfloat162float(v); }
template <class T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16 from_f<bf16>(float v) { return __float2bfloat16_rn(v); }

}  // namespace mc::kernels::cuda

template <> struct mc::kernels::dt_of<__nv_bfloat16> {
  static constexpr int value = BF16;
};
