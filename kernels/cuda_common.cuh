// Shared by the .cu kernel families: the post-launch error check and bf16 <-> float helpers.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace mc::kernels::cuda {

// Throws with the kernel family, the launch and CUDA's message when a launch failed.
inline void check_launch(const char* family, const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw std::runtime_error(std::string(family) + ": " + what + ": " + cudaGetErrorString(e));
}

using bf16 = __nv_bfloat16;
__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(bf16 v) { return __bfloat162float(v); }
template <class T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16 from_f<bf16>(float v) { return __float2bfloat16_rn(v); }

}  // namespace mc::kernels::cuda
