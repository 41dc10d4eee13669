// Row-wise softmax / log-softmax over the last dimension of an R x C matrix.
#pragma once
#include <cstdint>

namespace mc::kernels::cpu {
template <class T> void softmax_forward(const T* x, T* y, int64_t R, int64_t C, bool log);
// dx from the forward output y: softmax: y*(dy - sum(dy*y)); log: dy - exp(y)*sum(dy)
template <class T> void softmax_backward(const T* y, const T* dy, T* dx, int64_t R, int64_t C, bool log);
}  // namespace mc::kernels::cpu

// ---- CUDA (kernels/softmax.cu): same contract, f32, one warp per row, double accumulation ----
#include "kernels/common.h"
namespace mc::kernels::cuda {
void softmax_forward(const float* x, float* y, int64_t R, int64_t C, bool log, Stream s);
void softmax_backward(const float* y, const float* dy, float* dx, int64_t R, int64_t C, bool log,
                      Stream s);
}  // namespace mc::kernels::cuda
