// Pooling over [N, C, D, H, W] activations in either memory layout (kernels/common.h's LY codes).
// Max pool keeps the argmax for backward: the input-plane index (d*H + h)*W + w of each window's
// maximum, as i32 (the plane must have fewer than 2^31 voxels); ties take the first maximum and
// NaN propagates, as PyTorch. Backward sums each input's gradient in output order on both
// backends (the CUDA twin gathers over the covering windows: no atomics), so f32 results agree
// bit for bit. Global average pool: [N, C, S] (or [N, S, C]) -> [N, C].
// CPU: f32 and f64. CUDA: f32 and bf16 (computed in float, rounded once).
#pragma once
#include <array>
#include <cstdint>

#include "kernels/common.h"

namespace mc::kernels {

struct PoolGeom {
  int64_t N = 1, C = 1, D = 1, H = 1, W = 1;
  std::array<int64_t, 3> k{1, 1, 1}, stride{1, 1, 1}, pad{0, 0, 0};
  bool ceil = false;  // PyTorch's ceil_mode (average pool only): a last partial window is kept
  int64_t out(int a) const {
    const int64_t in = a == 0 ? D : a == 1 ? H : W, num = in + 2 * pad[a] - k[a];
    if (!ceil) return num / stride[a] + 1;
    int64_t o = (num + stride[a] - 1) / stride[a] + 1;
    if ((o - 1) * stride[a] >= in + pad[a]) --o;  // PyTorch: the last window starts inside
    return o;
  }
};

namespace cpu {
void avgpool3d_forward(const PoolGeom& g, const void* x, void* y, int dt, int layout, Stream s);
void avgpool3d_backward(const PoolGeom& g, const void* dy, void* dx, int dt, int layout,
                        Stream s);  // overwrites dx
void maxpool3d_forward(const PoolGeom& g, const void* x, void* y, int32_t* argmax, int dt,
                       int layout, Stream s);
void maxpool3d_backward(const PoolGeom& g, const void* dy, const int32_t* argmax, void* dx,
                        int dt, int layout, Stream s);  // overwrites dx
void avgpool_global_forward(const void* x, void* y, int dt, int64_t N, int64_t C, int64_t S,
                            int layout, Stream s);
void avgpool_global_backward(const void* dy, void* dx, int dt, int64_t N, int64_t C, int64_t S,
                             int layout, Stream s);
}  // namespace cpu
namespace cuda {
void avgpool3d_forward(const PoolGeom& g, const void* x, void* y, int dt, int layout, Stream s);
void avgpool3d_backward(const PoolGeom& g, const void* dy, void* dx, int dt, int layout,
                        Stream s);  // overwrites dx
void maxpool3d_forward(const PoolGeom& g, const void* x, void* y, int32_t* argmax, int dt,
                       int layout, Stream s);
void maxpool3d_backward(const PoolGeom& g, const void* dy, const int32_t* argmax, void* dx,
                        int dt, int layout, Stream s);
void avgpool_global_forward(const void* x, void* y, int dt, int64_t N, int64_t C, int64_t S,
                            int layout, Stream s);
void avgpool_global_backward(const void* dy, void* dx, int dt, int64_t N, int64_t C, int64_t S,
                             int layout, Stream s);
}  // namespace cuda
}  // namespace mc::kernels
