// Rows of the backend-ops table (contract in op_table.h) for the ops the Table II networks add:
// ReLU6, SiLU, sigmoid, average pooling (avg_down), the squeeze-and-excitation channel gate,
// drop-path and depthwise / grouped convolution. Each has a float64 gradient check and a
// CPU-vs-CUDA parity run; the 5-D ones also run in both layouts.
#include <cmath>

#include "engine/ops.h"
#include "engine/random.h"
#include "tests/engine/op_table.h"

namespace mc::optable {
namespace {

using In = std::vector<Input>;
using Ts = std::vector<Tensor>;
const std::vector<Precision> kFp32{Precision::FP32};
const std::vector<Precision> kFp32Bf16{Precision::FP32, Precision::BF16};

Tensor rn(const Shape& s, uint64_t seed, DType dt, double stddev = 1.0) {
  Generator g(seed);
  return randn(s, g, dt, 0.0, stddev);
}
Input act(Tensor t, TolClass g = TolClass::Exact) { return {std::move(t), Role::Activation, true, g}; }
Input weight(Tensor t, TolClass g) { return {std::move(t), Role::Weight, true, g}; }

Row row(std::string name, std::string family, uint64_t seed) {
  Row r;
  r.name = std::move(name);
  r.family = std::move(family);
  r.gradcheck = true;
  r.grad_seed = r.dy_seed = seed;
  r.precisions = kFp32;
  return r;
}

// Values kept `gap` away from the kinks so finite differences are smooth there.
Tensor away_from(Tensor x, std::vector<double> kinks, double gap) {
  Tensor d = x.to(DType::F64);
  for (int64_t i = 0; i < d.numel(); ++i)
    for (double k : kinks)
      if (std::abs(d.data<double>()[i] - k) < gap) d.data<double>()[i] = k + 2 * gap;
  return d;
}

void activations(std::vector<Row>& r) {
  // ReLU6 over [-9, 9]: both kinks (0 and 6) and both flat parts are hit.
  Row r6 = row("relu6/small", "Elementwise", 301);
  r6.make = [](DType dt) { return In{act(away_from(rn({3, 40}, 300, DType::F64, 4.5), {0, 6}, 0.05).to(dt))}; };
  r6.run = [](const Ts& in) { return Ts{relu6(in[0])}; };
  r.push_back(r6);

  // exp rounds differently on the host and the device: the softmax rule, not Exact.
  Row si = row("silu/small", "Elementwise", 303);
  si.make = [](DType dt) { return In{act(rn({3, 40}, 302, dt, 3.0), TolClass::Softmax)}; };
  si.run = [](const Ts& in) { return Ts{silu(in[0])}; };
  si.fwd = TolClass::Softmax;
  r.push_back(si);

  Row sg = row("sigmoid/small", "Elementwise", 305);
  sg.make = [](DType dt) { return In{act(rn({3, 40}, 304, dt, 3.0), TolClass::Softmax)}; };
  sg.run = [](const Ts& in) { return Ts{sigmoid(in[0])}; };
  sg.fwd = TolClass::Softmax;
  r.push_back(sg);

  // Vector body and tail, f32 and bf16.
  for (const char* name : {"relu6", "silu", "sigmoid"}) {
    Row big;
    big.name = std::string(name) + "/large";
    big.family = "Elementwise";
    big.precisions = kFp32Bf16;
    big.dy_seed = 307;
    const std::string n = name;
    big.make = [n](DType dt) {
      return In{act(rn({3, 1001}, 306, dt, 4.0), n == "relu6" ? TolClass::Exact : TolClass::Softmax)};
    };
    big.run = [n](const Ts& in) {
      return Ts{n == "relu6" ? relu6(in[0]) : n == "silu" ? silu(in[0]) : sigmoid(in[0])};
    };
    big.fwd = n == "relu6" ? TolClass::Exact : TolClass::Softmax;
    r.push_back(big);
  }
}

void pooling_and_gates(std::vector<Row>& r) {
  // timm's avg_down: k 2, stride 2, ceil_mode, count_include_pad=False. Odd extents make the
  // last window partial (it divides by its voxels inside); k3 s2 windows overlap.
  auto avg = [&](std::string name, Shape xs, std::array<int64_t, 3> k, std::array<int64_t, 3> s,
                 bool ceil, uint64_t seed) {
    Row a = row(std::move(name), "Pool", seed + 1);
    a.make = [xs, seed](DType dt) { return In{act(rn(xs, seed, dt), TolClass::Gap)}; };
    a.run = [k, s, ceil](const Ts& in) { return Ts{avg_pool3d(in[0], k, s, ceil)}; };
    a.layouts = true;
    a.precisions = kFp32Bf16;
    a.fwd = TolClass::Gap;
    r.push_back(a);
  };
  avg("avg_pool3d/k2s2_ceil_odd", {2, 3, 5, 4, 3}, {2, 2, 2}, {2, 2, 2}, true, 310);
  avg("avg_pool3d/k3s2_overlap", {2, 2, 6, 5, 7}, {3, 3, 3}, {2, 2, 2}, false, 312);
  avg("avg_pool3d/k2s2_large", {2, 64, 16, 16, 16}, {2, 2, 2}, {2, 2, 2}, true, 314);
  r.back().gradcheck = false;  // parity only

  // Squeeze-and-excitation: x [N, C, D, H, W] * gate [N, C]; both get gradients.
  auto gate = [&](std::string name, Shape xs, uint64_t seed, bool grad) {
    Row g = row(std::move(name), "Elementwise", seed + 2);
    g.make = [xs, seed](DType dt) {
      return In{act(rn(xs, seed, dt)), act(rn({xs[0], xs[1]}, seed + 1, dt), TolClass::Sum)};
    };
    g.run = [](const Ts& in) { return Ts{channel_mul(in[0], in[1])}; };
    g.gradcheck = grad;
    g.layouts = true;
    g.precisions = kFp32Bf16;
    r.push_back(g);
  };
  gate("channel_mul/small", {2, 3, 3, 4, 2}, 320, true);
  gate("channel_mul/large", {2, 96, 16, 16, 16}, 323, false);

  // Drop-path with a seeded mask (p 0.5 over 6 samples drops some and keeps some).
  Row dp = row("drop_path/small", "Elementwise", 331);
  dp.make = [](DType dt) { return In{act(rn({6, 2, 3, 2, 2}, 330, dt))}; };
  dp.run = [](const Ts& in) {
    Generator g(7);
    return Ts{drop_path(in[0], 0.5, true, g)};
  };
  dp.layouts = true;
  dp.precisions = kFp32Bf16;
  r.push_back(dp);
}

void grouped_conv(std::vector<Row>& r) {
  auto conv = [&](std::string name, Shape xs, Shape ws, Conv3dOpts o, uint64_t seed) {
    Row c = row(std::move(name), "Conv", seed + 2);
    c.make = [xs, ws, seed](DType dt) {
      return In{act(rn(xs, seed, dt), TolClass::Conv), weight(rn(ws, seed + 1, dt), TolClass::Conv)};
    };
    c.run = [o](const Ts& in) { return Ts{conv3d(in[0], in[1], Tensor(), o)}; };
    c.layouts = true;
    c.fwd = TolClass::Conv;
    r.push_back(c);
  };
  Conv3dOpts dw;
  dw.stride = {2, 2, 2};
  dw.padding = {1, 1, 1};
  dw.groups = 4;
  conv("conv3d/depthwise_small", {2, 4, 5, 4, 5}, {4, 1, 3, 3, 3}, dw, 340);
  Conv3dOpts g2;
  g2.padding = {2, 2, 2};
  g2.groups = 3;
  conv("conv3d/depthwise_k5_small", {1, 3, 4, 4, 3}, {3, 1, 5, 5, 5}, g2, 343);
  Conv3dOpts gr;
  gr.padding = {1, 1, 1};
  gr.groups = 4;
  conv("conv3d/grouped_4x2_small", {2, 8, 3, 3, 3}, {8, 2, 3, 3, 3}, gr, 346);
}

}  // namespace

void zoo_rows(std::vector<Row>& r) {
  activations(r);
  pooling_and_gates(r);
  grouped_conv(r);
}

}  // namespace mc::optable
