// CUDA prims: max pooling and global average pooling with our own kernels (kernels/pool.cu).
//
// Max pool keeps an argmax, as prims' API asks (the CPU path does the same): the backward then
// needs neither x nor y, and gathering over covering windows makes it deterministic — cuDNN's
// pooling backward would need x and y kept alive and recomputes the maxima. The argmax is i32
// (plane index), half the memory of the CPU's i64; it is opaque to everything but this file.
// Global average pool is a fixed-order reduction (PyTorch's 3-D adaptive pool backward is not
// deterministic; ours is, forward and backward).
#include "engine/cuda_prims.h"
#include "engine/cuda_util.h"
#include "engine/precision.h"
#include "kernels/pool.h"

namespace mc::cuda_prims {
namespace {

using cuda::OnDevice;

void f32_or_bf16(const Tensor& t, const char* op) {
  MC_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::BF16, op,
           ": the CUDA path takes f32 or bf16, got ", t.str());
}
bool is_cl(const Tensor& t) { return t.dim() == 5 && t.layout() == Layout::NDHWC; }

}  // namespace

Tensor maxpool3d_forward(const Tensor& x, const PoolGeom& g, Tensor& argmax) {
  OnDevice d(x, "max_pool3d");
  f32_or_bf16(x, "max_pool3d");
  MC_CHECK(x.dim() == 5, "max_pool3d: input must be [N, C, D, H, W], got ", x.str());
  const Shape ys{g.N, g.C, g.out(0), g.out(1), g.out(2)};
  Tensor y = d.empty(ys, x.dtype(), x.layout());
  argmax = d.empty(ys, DType::I32, x.layout());
  kernels::cuda::maxpool3d_forward(g, x.raw(), y.raw(), static_cast<int32_t*>(argmax.raw()),
                                   cuda::kdt(x.dtype()), is_cl(x), d.stream);
  MC_CUDA_LAUNCHED("max_pool3d");
  return y;
}

Tensor maxpool3d_backward(const Tensor& dy_in, const Tensor& argmax, const PoolGeom& g) {
  OnDevice d(dy_in, "max_pool3d backward");
  f32_or_bf16(dy_in, "max_pool3d backward");
  cuda::same_device(d, argmax, "max_pool3d backward", "argmax");
  MC_CHECK(argmax.dtype() == DType::I32 && argmax.numel() == dy_in.numel(),
           "max_pool3d backward: argmax must be the i32 tensor the CUDA forward made, got ",
           argmax.str());
  const Tensor dy = to_layout(dy_in, argmax.layout());  // argmax carries the forward's layout
  Tensor dx = d.empty({g.N, g.C, g.D, g.H, g.W}, dy.dtype(), dy.layout());
  kernels::cuda::maxpool3d_backward(g, dy.raw(), static_cast<const int32_t*>(argmax.raw()),
                                    dx.raw(), cuda::kdt(dy.dtype()), is_cl(dy), d.stream);
  MC_CUDA_LAUNCHED("max_pool3d backward");
  return dx;
}

Tensor avgpool_global_forward(const Tensor& x) {
  OnDevice d(x, "global_avg_pool");
  f32_or_bf16(x, "global_avg_pool");
  MC_CHECK(x.dim() >= 3, "global_avg_pool: need [N, C, spatial...], got ", x.str());
  const int64_t N = x.size(0), C = x.size(1), S = N * C != 0 ? x.numel() / (N * C) : 0;
  Tensor y = d.empty({N, C}, x.dtype());
  kernels::cuda::avgpool_global_forward(x.raw(), y.raw(), cuda::kdt(x.dtype()), N, C, S, is_cl(x),
                                        d.stream);
  MC_CUDA_LAUNCHED("global_avg_pool");
  return y;
}

Tensor avgpool_global_backward(const Tensor& dy, const Shape& xs) {
  OnDevice d(dy, "global_avg_pool backward");
  f32_or_bf16(dy, "global_avg_pool backward");
  MC_CHECK(xs.size() >= 3 && dy.numel() == xs[0] * xs[1], "global_avg_pool backward: gradient ",
           dy.str(), " does not fit input shape ", shape_str(xs));
  // The input's layout is not part of prims' signature: channels_last() is what made it.
  const Layout lay = channels_last() && xs.size() == 5 ? Layout::NDHWC : Layout::NCDHW;
  const int64_t N = xs[0], C = xs[1], S = N * C != 0 ? numel_of(xs) / (N * C) : 0;
  Tensor dx = d.empty(xs, dy.dtype(), lay);
  kernels::cuda::avgpool_global_backward(dy.raw(), dx.raw(), cuda::kdt(dy.dtype()), N, C, S,
                                         lay == Layout::NDHWC, d.stream);
  MC_CUDA_LAUNCHED("global_avg_pool backward");
  return dx;
}

}  // namespace mc::cuda_prims
