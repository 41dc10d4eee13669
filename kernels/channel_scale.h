// Per-(sample, channel) scaling of a [N, C, S] activation (NCDHW) or [N, S, C] (NDHWC):
//   y[n, c, s] = x[n, c, s] * g[n, c]
// the squeeze-and-excitation gate of EfficientNet, and, with C = 1 and S = C * D * H * W, the
// per-sample mask of drop-path (one sample is one contiguous block in either layout).
// Backward: dx is the forward applied to dy; dg[n, c] = sum_s dy[n, c, s] * x[n, c, s].
// CPU: f32 and f64, the sum in double. CUDA: f32 and bf16 (g in the same dtype as x), the sum
// in float in a fixed order (deterministic).
#pragma once
#include <cstdint>

#include "kernels/common.h"

namespace mc::kernels {
namespace cpu {
void channel_scale_forward(const void* x, const void* g, void* y, int dt, int64_t N, int64_t C,
                           int64_t S, int layout, Stream s);
void channel_scale_backward_gate(const void* x, const void* dy, void* dg, int dt, int64_t N,
                                 int64_t C, int64_t S, int layout, Stream s);
}  // namespace cpu
namespace cuda {
void channel_scale_forward(const void* x, const void* g, void* y, int dt, int64_t N, int64_t C,
                           int64_t S, int layout, Stream s);
void channel_scale_backward_gate(const void* x, const void* dy, void* dg, int dt, int64_t N,
                                 int64_t C, int64_t S, int layout, Stream s);
}  // namespace cuda
}  // namespace mc::kernels
