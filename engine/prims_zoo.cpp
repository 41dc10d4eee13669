// Average pooling and per-channel scaling (engine/prims.h): the primitives the Table II networks
// add (avg_down shortcuts, squeeze-and-excitation, drop-path).
#include "engine/prims.h"
#include "engine/prims_util.h"
#include "kernels/channel_scale.h"

namespace mc::prims {
using namespace detail;

Tensor avgpool3d_forward(const Tensor& x, const PoolGeom& g) {
  MC_CHECK(x.dim() == 5, "avg_pool3d: input must be [N, C, D, H, W], got ", x.str());
  Tensor y = empty_like_device(x, {g.N, g.C, g.out(0), g.out(1), g.out(2)}, x.dtype(), x.layout());
  MC_DISPATCH(x.device(), avgpool3d_forward, g, x.raw(), y.raw(), kdt(x.dtype()), klay(x));
  return y;
}

Tensor avgpool3d_backward(const Tensor& dy, const PoolGeom& g) {
  MC_CHECK(dy.dim() == 5 && dy.size(0) == g.N && dy.size(1) == g.C && dy.size(2) == g.out(0) &&
               dy.size(3) == g.out(1) && dy.size(4) == g.out(2),
           "avg_pool3d backward: gradient ", dy.str(), " does not fit the forward's output");
  Tensor dx = empty_like_device(dy, {g.N, g.C, g.D, g.H, g.W}, dy.dtype(), dy.layout());
  MC_DISPATCH(dy.device(), avgpool3d_backward, g, dy.raw(), dx.raw(), kdt(dy.dtype()), klay(dy));
  return dx;
}

namespace {
void check_gate(const Tensor& x, const Tensor& gate, const char* op) {
  MC_CHECK(x.dim() >= 2, op, ": input must be [N, C, ...], got ", x.str());
  MC_CHECK(gate.dim() == 2 && gate.size(0) == x.size(0) && gate.size(1) == x.size(1), op,
           ": gate ", gate.str(), " must be [N, C] = [", x.size(0), ", ", x.size(1), "] for input ",
           x.str());
  same_device(x, gate, op, "gate");
  MC_CHECK(gate.dtype() == x.dtype(), op, ": gate ", gate.str(), " must have the input's dtype (",
           dtype_name(x.dtype()), ")");
}
}  // namespace

Tensor channel_scale(const Tensor& x, const Tensor& gate) {
  check_gate(x, gate, "channel_scale");
  const int64_t N = x.size(0), C = x.size(1), S = N * C ? x.numel() / (N * C) : 0;
  Tensor y = empty_like_device(x, x.shape(), x.dtype(), layout_of(x));
  MC_DISPATCH(x.device(), channel_scale_forward, x.raw(), gate.raw(), y.raw(), kdt(x.dtype()), N,
              C, S, klay(x));
  return y;
}

Tensor channel_scale_backward_gate(const Tensor& x, const Tensor& dy_in) {
  MC_CHECK(dy_in.shape() == x.shape() && dy_in.dtype() == x.dtype(),
           "channel_scale backward: gradient ", dy_in.str(), " does not fit input ", x.str());
  same_device(x, dy_in, "channel_scale backward", "gradient");
  const Tensor dy = to_layout(dy_in, layout_of(x));
  const int64_t N = x.size(0), C = x.size(1), S = N * C ? x.numel() / (N * C) : 0;
  Tensor dg = empty_like_device(x, {N, C}, x.dtype());
  MC_DISPATCH(x.device(), channel_scale_backward_gate, x.raw(), dy.raw(), dg.raw(),
              kdt(x.dtype()), N, C, S, klay(x));
  return dg;
}

}  // namespace mc::prims
