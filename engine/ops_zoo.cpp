// The differentiable ops the Table II networks add (engine/ops.h): average pooling, the
// per-channel gate of squeeze-and-excitation, and drop-path.
#include "engine/ops.h"
#include "engine/prims.h"

namespace mc {
namespace {

struct AvgPoolNode : Node {
  kernels::PoolGeom g;
  const char* name() const override { return "avg_pool3d"; }
  std::vector<Tensor> backward(const Tensor& dy) override {
    return {prims::avgpool3d_backward(dy, g)};
  }
};

struct ChannelMulNode : Node {
  Tensor x, gate;
  const char* name() const override { return "channel_mul"; }
  std::vector<Tensor> backward(const Tensor& dy) override {
    Tensor dx, dg;
    if (needs(0)) dx = prims::channel_scale(dy, gate);
    if (needs(1)) dg = prims::channel_scale_backward_gate(x, dy);
    return {dx, dg};
  }
};

struct DropPathNode : Node {
  Tensor mask;  // [N, 1]: 0 or 1 / keep
  const char* name() const override { return "drop_path"; }
  std::vector<Tensor> backward(const Tensor& dy) override {
    const int64_t N = dy.size(0);
    return {prims::channel_scale(dy.view({N, 1, -1}), mask).view(dy.shape()).set_layout(dy.layout())};
  }
};

}  // namespace

Tensor avg_pool3d(const Tensor& x, std::array<int64_t, 3> k, std::array<int64_t, 3> s,
                  bool ceil_mode) {
  MC_CHECK(x.dim() == 5, "avg_pool3d: input must be [N, C, D, H, W], got ", x.str());
  kernels::PoolGeom g;
  g.N = x.size(0); g.C = x.size(1); g.D = x.size(2); g.H = x.size(3); g.W = x.size(4);
  g.k = k; g.stride = s; g.ceil = ceil_mode;
  for (int a = 0; a < 3; ++a) {
    MC_CHECK(k[a] >= 1 && s[a] >= 1, "avg_pool3d: kernel and stride must be >= 1");
    MC_CHECK(g.out(a) >= 1, "avg_pool3d: kernel larger than input ", x.str());
  }
  Tensor y = prims::avgpool3d_forward(x, g);
  if (any_requires_grad({&x})) {
    auto n = std::make_shared<AvgPoolNode>();
    n->g = g;
    record(y, n, {&x});
  }
  return y;
}

Tensor channel_mul(const Tensor& x, const Tensor& gate) {
  Tensor y = prims::channel_scale(x, gate);
  if (any_requires_grad({&x, &gate})) {
    auto n = std::make_shared<ChannelMulNode>();
    n->x = x.detach();
    n->gate = gate.detach();
    record(y, n, {&x, &gate});
  }
  return y;
}

Tensor drop_path(const Tensor& x, double p, bool training, Generator& g) {
  MC_CHECK(p >= 0 && p < 1, "drop_path: probability ", p, " must be in [0, 1)");
  if (!training || p == 0) return x;
  MC_CHECK(x.dim() >= 1 && x.size(0) >= 1, "drop_path: input must be [N, ...], got ", x.str());
  const int64_t N = x.size(0);
  const double keep = 1 - p;
  // Drawn on the host from the seeded generator (a few bytes per step), as timm's
  // bernoulli_(keep).div_(keep).
  std::vector<double> m(static_cast<size_t>(N));
  for (auto& v : m) v = g.uniform() < keep ? 1.0 / keep : 0.0;
  const Tensor mask = Tensor::from(m, {N, 1}).to(x.dtype()).to(x.device());
  Tensor y = prims::channel_scale(x.view({N, 1, -1}), mask).view(x.shape()).set_layout(x.layout());
  if (any_requires_grad({&x})) {
    auto n = std::make_shared<DropPathNode>();
    n->mask = mask;
    record(y, n, {&x});
  }
  return y;
}

}  // namespace mc
