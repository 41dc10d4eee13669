// 3-D convolution geometry and the CPU reference: activations NCDHW or NDHWC (layout code),
// weights O x I/g x kd x kh x kw, f32 or f64. The CUDA path is cuDNN (engine/cuda/conv.cpp),
// which takes the same geometry.
#pragma once
#include <array>
#include <cstdint>

#include "kernels/common.h"

namespace mc::kernels {

struct ConvGeom {
  int64_t N = 1, C = 1, D = 1, H = 1, W = 1;  // input
  int64_t O = 1;                              // output channels
  std::array<int64_t, 3> k{1, 1, 1}, stride{1, 1, 1}, pad{0, 0, 0}, dil{1, 1, 1};
  int64_t groups = 1;
  int64_t out(int a) const {  // output extent along spatial axis a (0 = D, 1 = H, 2 = W)
    int64_t in = a == 0 ? D : a == 1 ? H : W;
    return (in + 2 * pad[a] - dil[a] * (k[a] - 1) - 1) / stride[a] + 1;
  }
  int64_t oD() const { return out(0); }
  int64_t oH() const { return out(1); }
  int64_t oW() const { return out(2); }
  // FLOPs of the forward pass (2 per multiply-add); backward is about twice this.
  double forward_flops() const {
    return 2.0 * N * O * oD() * oH() * oW() * (C / groups) * k[0] * k[1] * k[2];
  }
};

namespace cpu {
// y[N,O,oD,oH,oW] = conv(x, w) + b (b may be null), y in x's layout. vol2col + GEMM per sample
// and group; NDHWC data is transposed to NCDHW around the same computation (exact).
void conv3d_forward(const ConvGeom& g, const void* x, const void* w, const void* b, void* y, int dt,
                    int layout, Stream s);
// dx = conv_transpose(dy, w)   (overwrites dx; dx and dy in `layout`)
void conv3d_backward_data(const ConvGeom& g, const void* dy, const void* w, void* dx, int dt,
                          int layout, Stream s);
// dw = corr(x, dy), db = sum(dy) (overwrite; db may be null; x and dy in `layout`)
void conv3d_backward_weight(const ConvGeom& g, const void* x, const void* dy, void* dw, void* db,
                            int dt, int layout, Stream s);
}  // namespace cpu
}  // namespace mc::kernels
