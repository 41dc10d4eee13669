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
