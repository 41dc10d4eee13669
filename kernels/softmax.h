// Row-wise softmax / log-softmax over the last dimension of an R x C matrix, statistics in
// double. Backward from the forward output y: softmax: y*(dy - sum(dy*y)); log: dy - exp(y)*sum(dy).
// CPU: f32 and f64. CUDA: f32 (one warp per row, fixed shuffle tree: deterministic).
#pragma once
#include <cstdint>

#include "kernels/common.h"

namespace mc::kernels {
namespace cpu {
void softmax_forward(const void* x, void* y, int dt, int64_t R, int64_t C, bool log, Stream s);
void softmax_backward(const void* y, const void* dy, void* dx, int dt, int64_t R, int64_t C,
                      bool log, Stream s);
}  // namespace cpu
namespace cuda {
void softmax_forward(const void* x, void* y, int dt, int64_t R, int64_t C, bool log, Stream s);
void softmax_backward(const void* y, const void* dy, void* dx, int dt, int64_t R, int64_t C,
                      bool log, Stream s);
}  // namespace cuda
}  // namespace mc::kernels
