// Pooling, NCDHW. Max pool keeps the argmax (index within the input plane) for backward; ties
// take the first maximum and NaN propagates, as PyTorch.
#pragma once
#include <array>
#include <cstdint>

namespace mc::kernels {

struct PoolGeom {
  int64_t N = 1, C = 1, D = 1, H = 1, W = 1;
  std::array<int64_t, 3> k{1, 1, 1}, stride{1, 1, 1}, pad{0, 0, 0};
  int64_t out(int a) const {
    int64_t in = a == 0 ? D : a == 1 ? H : W;
    return (in + 2 * pad[a] - k[a]) / stride[a] + 1;
  }
};

namespace cpu {
template <class T> void maxpool3d_forward(const PoolGeom& g, const T* x, T* y, int64_t* argmax);
template <class T>
void maxpool3d_backward(const PoolGeom& g, const T* dy, const int64_t* argmax, T* dx);  // overwrites dx
// Global average pool: [N*C, S] -> [N*C].
template <class T> void avgpool_global_forward(const T* x, T* y, int64_t NC, int64_t S);
template <class T> void avgpool_global_backward(const T* dy, T* dx, int64_t NC, int64_t S);
}  // namespace cpu
}  // namespace mc::kernels

// ---- CUDA (kernels/pool.cu) ----
// f32 or bf16 by dtype code `dt` (kernels/common.h); `channels_last`: the buffers hold NDHWC
// instead of NCDHW (argmax is the input-plane index (d*H + h)*W + w either way, as i32).
// Backward gathers over the windows that cover each input element: no atomics, deterministic.
#include "kernels/common.h"
namespace mc::kernels::cuda {
void maxpool3d_forward(const PoolGeom& g, const void* x, void* y, int32_t* argmax, int dt,
                       bool channels_last, Stream s);
void maxpool3d_backward(const PoolGeom& g, const void* dy, const int32_t* argmax, void* dx,
                        int dt, bool channels_last, Stream s);  // overwrites dx
// [N, C, S] (or [N, S, C] channels-last) -> [N, C]: fixed-order reduction, float accumulation.
void avgpool_global_forward(const void* x, void* y, int dt, int64_t N, int64_t C, int64_t S,
                            bool channels_last, Stream s);
void avgpool_global_backward(const void* dy, void* dx, int dt, int64_t N, int64_t C, int64_t S,
                             bool channels_last, Stream s);
}  // namespace mc::kernels::cuda
