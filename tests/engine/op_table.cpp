// The rows of the backend-ops table (contract in op_table.h). Seeds, shapes and tolerances are
// those of the gradient-check and CPU-vs-CUDA tests the table replaced.
#include "tests/engine/op_table.h"

#include <cmath>

#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/prims.h"
#include "engine/random.h"

namespace mc::optable {

Tol tol(TolClass c, Precision p) {
  const Tol loose = p == Precision::FP32   ? Tol{}
                    : p == Precision::TF32 ? Tol{1e-2, 3e-3, 5e-3}
                                           : Tol{2e-2, 1e-2, 2e-2};
  const bool fp32 = p == Precision::FP32;
  switch (c) {
    case TolClass::Exact: return {0, 0, 0};
    case TolClass::Sum: return p == Precision::BF16 ? Tol{1e-2, 1e-3, 1e-2} : Tol{1e-6, 1e-7, 1e-7};
    case TolClass::Softmax:
    case TolClass::Loss: return fp32 ? Tol{1e-6, 1e-7, 1e-6} : loose;
    case TolClass::SoftmaxGrad:
    case TolClass::Linear: return fp32 ? Tol{1e-5, 1e-6, 1e-6} : loose;
    case TolClass::Conv:
    case TolClass::BnOut: return fp32 ? Tol{1e-4, 1e-5, 1e-5} : loose;
    case TolClass::BnStats: return {1e-4, 1e-6, 1e-5};
    case TolClass::BnEval: return fp32 ? Tol{1e-5, 1e-6, 1e-5} : loose;
    case TolClass::Gap: return fp32 ? Tol{1e-6, 1e-7, 1e-6} : loose;
    case TolClass::GapGrad: return fp32 ? Tol{1e-6, 0, 1e-6} : loose;
    case TolClass::Step:
      return fp32 ? Tol{1e-4, 1e-5, 1e-4}
                  : p == Precision::TF32 ? Tol{3e-2, 1e-2, 1e-2} : Tol{1e-1, 5e-2, 5e-2};
  }
  return {};
}

namespace {

using In = std::vector<Input>;
using Ts = std::vector<Tensor>;
const std::vector<Precision> kFp32{Precision::FP32};
const std::vector<Precision> kFp32Bf16{Precision::FP32, Precision::BF16};
const std::vector<Precision> kAll{Precision::FP32, Precision::TF32, Precision::BF16};

Tensor rn(const Shape& s, uint64_t seed, DType dt, double stddev = 1.0) {
  Generator g(seed);
  return randn(s, g, dt, 0.0, stddev);
}
Tensor un(const Shape& s, uint64_t seed, double lo, double hi, DType dt) {
  Generator g(seed);
  return rand_uniform(s, g, lo, hi, dt);
}
Input act(Tensor t, TolClass g = TolClass::Exact) { return {std::move(t), Role::Activation, true, g}; }
Input weight(Tensor t, TolClass g = TolClass::Exact) { return {std::move(t), Role::Weight, true, g}; }
Input param(Tensor t, bool grad = false, TolClass g = TolClass::Exact) {
  return {std::move(t), Role::Param, grad, g};
}
Input index(Tensor t) { return {std::move(t), Role::Index, false, TolClass::Exact}; }

Conv3dOpts conv_opts(int64_t s, int64_t p, int64_t dil, int64_t groups) {
  Conv3dOpts o;
  o.stride = {s, s, s};
  o.padding = {p, p, p};
  o.dilation = {dil, dil, dil};
  o.groups = groups;
  return o;
}

// ---------------- the float64 gradient-check rows (small shapes, also checked for parity) ----

void gradcheck_rows(std::vector<Row>& r) {
  auto conv = [&](std::string name, std::vector<Shape> shapes, std::vector<uint64_t> seeds,
                  Conv3dOpts o, uint64_t gseed) {
    Row row;
    row.name = std::move(name);
    row.family = "Conv";
    const bool bias = shapes.size() == 3;
    row.make = [=](DType dt) {
      In in{act(rn(shapes[0], seeds[0], dt), TolClass::Conv),
            weight(rn(shapes[1], seeds[1], dt), TolClass::Conv)};
      if (bias) in.push_back(param(rn(shapes[2], seeds[2], dt), true, TolClass::Conv));
      return in;
    };
    row.run = [=](const Ts& in) { return Ts{conv3d(in[0], in[1], bias ? in[2] : Tensor(), o)}; };
    row.gradcheck = true;
    row.grad_seed = gseed;
    row.dy_seed = gseed;
    row.layouts = true;
    row.precisions = kFp32;
    row.fwd = TolClass::Conv;
    r.push_back(row);
  };
  conv("conv3d/plain", {{2, 3, 4, 5, 3}, {4, 3, 2, 3, 2}, {4}}, {1, 2, 3}, {}, 10);
  {
    Conv3dOpts o;
    o.stride = {2, 1, 2};
    o.padding = {1, 2, 0};
    o.dilation = {1, 2, 1};
    conv("conv3d/stride_pad_dilation", {{2, 2, 5, 6, 5}, {3, 2, 3, 2, 3}}, {4, 5}, o, 11);
  }
  conv("conv3d/groups", {{1, 4, 3, 4, 3}, {6, 2, 3, 3, 3}, {6}}, {6, 7, 8}, conv_opts(1, 1, 1, 2),
       12);
  conv("conv3d/pointwise", {{2, 5, 2, 3, 2}, {3, 5, 1, 1, 1}}, {9, 10}, {}, 13);

  Row bn;
  bn.name = "batch_norm/train_small";
  bn.family = "BatchNorm";
  bn.make = [](DType dt) {
    return In{act(rn({3, 3, 2, 3, 2}, 20, dt), TolClass::BnOut),
              param(rn({3}, 21, dt), true, TolClass::BnStats),
              param(rn({3}, 22, dt), true, TolClass::BnStats)};
  };
  bn.run = [](const Ts& in) {
    Tensor m = Tensor::zeros({3}, in[0].dtype(), in[0].device());
    Tensor v = Tensor::full({3}, 1.0, in[0].dtype(), in[0].device());
    return Ts{batch_norm(in[0], in[1], in[2], m, v, true)};
  };
  bn.gradcheck = true;
  bn.grad_tol = 1e-5;
  bn.grad_seed = bn.dy_seed = 23;
  bn.layouts = true;
  bn.precisions = kFp32;
  bn.fwd = TolClass::BnOut;
  r.push_back(bn);

  Row bne;
  bne.name = "batch_norm/eval_small";
  bne.family = "BatchNorm";
  bne.make = [](DType dt) {
    return In{act(rn({2, 4, 3, 2, 2}, 32, dt), TolClass::BnEval),
              param(rn({4}, 33, dt), true, TolClass::BnStats),
              param(rn({4}, 34, dt), true, TolClass::BnStats), param(rn({4}, 30, dt)),
              param(un({4}, 31, 0.5, 2.0, dt))};
  };
  bne.run = [](const Ts& in) {
    Tensor m = in[3], v = in[4];
    return Ts{batch_norm(in[0], in[1], in[2], m, v, false)};
  };
  bne.gradcheck = true;
  bne.grad_seed = bne.dy_seed = 35;
  bne.layouts = true;
  bne.precisions = kFp32;
  bne.fwd = TolClass::BnEval;
  r.push_back(bne);

  Row relu_r;
  relu_r.name = "relu/small";
  relu_r.family = "Elementwise";
  relu_r.make = [](DType dt) {
    // Inputs away from relu's kink, so finite differences are smooth.
    Tensor x = rn({2, 3, 4}, 40, DType::F64);
    for (int64_t i = 0; i < x.numel(); ++i)
      if (std::abs(x.data<double>()[i]) < 0.05) x.data<double>()[i] = 0.3;
    return In{act(x.to(dt))};
  };
  relu_r.run = [](const Ts& in) { return Ts{relu(in[0])}; };
  relu_r.gradcheck = true;
  relu_r.grad_seed = relu_r.dy_seed = 41;
  relu_r.precisions = kFp32;
  r.push_back(relu_r);

  // The regression losses' pointwise pieces; Huber's inputs avoid its two kinks at +-delta.
  for (const bool is_huber : {true, false}) {
    Row row;
    row.name = is_huber ? "huber/small" : "square/small";
    row.family = "Elementwise";
    row.make = [](DType dt) {
      Tensor x = rn({3, 7}, 44, DType::F64);
      for (int64_t i = 0; i < x.numel(); ++i) {
        double& v = x.data<double>()[i];
        v *= 1.5;
        if (std::abs(std::abs(v) - 0.8) < 0.05) v = 0.5;
      }
      return In{act(x.to(dt))};
    };
    if (is_huber) row.run = [](const Ts& in) { return Ts{huber(in[0], 0.8)}; };
    else row.run = [](const Ts& in) { return Ts{square(in[0])}; };
    row.gradcheck = true;
    row.grad_seed = row.dy_seed = is_huber ? 45 : 46;
    row.precisions = kFp32;
    r.push_back(row);
  }

  auto binary = [&](std::string name, uint64_t a, uint64_t b, uint64_t g,
                    Tensor (*f)(const Tensor&, const Tensor&)) {
    Row row;
    row.name = std::move(name);
    row.family = "Elementwise";
    row.make = [=](DType dt) { return In{act(rn({3, 5}, a, dt)), act(rn({3, 5}, b, dt))}; };
    row.run = [=](const Ts& in) { return Ts{f(in[0], in[1])}; };
    row.gradcheck = true;
    row.grad_seed = row.dy_seed = g;
    row.precisions = kFp32;
    r.push_back(row);
  };
  binary("add/small", 42, 43, 44, [](const Tensor& a, const Tensor& b) { return add(a, b); });
  binary("mul/small", 45, 46, 47, [](const Tensor& a, const Tensor& b) { return mul(a, b); });

  Row sc;
  sc.name = "scale/small";
  sc.family = "Elementwise";
  sc.make = [](DType dt) { return In{act(rn({7}, 48, dt))}; };
  sc.run = [](const Ts& in) { return Ts{scale(in[0], -1.7)}; };
  sc.gradcheck = true;
  sc.grad_seed = sc.dy_seed = 49;
  sc.precisions = kFp32;
  r.push_back(sc);

  Row mn;
  mn.name = "mean/small";
  mn.family = "Elementwise";
  mn.make = [](DType dt) { return In{act(rn({2, 3}, 50, dt), TolClass::Sum)}; };
  mn.run = [](const Ts& in) { return Ts{mean(in[0])}; };
  mn.gradcheck = true;
  mn.grad_seed = mn.dy_seed = 51;
  mn.precisions = kFp32;
  mn.fwd = TolClass::Sum;
  r.push_back(mn);

  // Distinct values (a permutation) so the argmax is unique and stable under +-h.
  auto perm_input = [](DType dt) {
    const int64_t n = 2 * 2 * 5 * 6 * 5;
    std::vector<int64_t> perm(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) perm[size_t(i)] = i;
    Generator g(60);
    shuffle(perm, g);
    std::vector<double> v(perm.begin(), perm.end());
    for (auto& e : v) e *= 0.01;
    return Tensor::from(v, {2, 2, 5, 6, 5}).to(dt);
  };
  auto pool = [&](std::string name, std::array<int64_t, 3> k, std::array<int64_t, 3> s,
                  std::array<int64_t, 3> p, uint64_t g) {
    Row row;
    row.name = std::move(name);
    row.family = "Pool";
    row.make = [=](DType dt) { return In{act(perm_input(dt))}; };
    row.run = [=](const Ts& in) { return Ts{max_pool3d(in[0], k, s, p)}; };
    row.gradcheck = true;
    row.grad_seed = row.dy_seed = g;
    row.layouts = true;
    row.precisions = kFp32;
    r.push_back(row);
  };
  pool("max_pool3d/k3s2p1_small", {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, 61);
  pool("max_pool3d/k232_small", {2, 3, 2}, {2, 1, 2}, {0, 1, 1}, 62);

  Row gap;
  gap.name = "global_avg_pool3d/small";
  gap.family = "Pool";
  gap.make = [](DType dt) { return In{act(rn({2, 3, 2, 3, 4}, 70, dt), TolClass::GapGrad)}; };
  gap.run = [](const Ts& in) { return Ts{global_avg_pool3d(in[0])}; };
  gap.gradcheck = true;
  gap.grad_seed = gap.dy_seed = 71;
  gap.layouts = true;
  gap.precisions = kFp32;
  gap.fwd = TolClass::Gap;
  r.push_back(gap);

  Row lin;
  lin.name = "linear/small";
  lin.family = "Linear";
  lin.make = [](DType dt) {
    return In{act(rn({4, 6}, 72, dt), TolClass::Linear),
              param(rn({3, 6}, 73, dt), true, TolClass::Linear),
              param(rn({3}, 74, dt), true, TolClass::Linear)};
  };
  lin.run = [](const Ts& in) { return Ts{linear(in[0], in[1], in[2])}; };
  lin.gradcheck = true;
  lin.grad_seed = lin.dy_seed = 75;
  lin.precisions = kFp32;
  lin.fwd = TolClass::Linear;
  r.push_back(lin);

  Row fl;
  fl.name = "flatten/small";
  fl.family = "Elementwise";
  fl.make = [](DType dt) { return In{act(rn({2, 3, 2}, 76, dt))}; };
  fl.run = [](const Ts& in) { return Ts{flatten(in[0])}; };
  fl.gradcheck = true;
  fl.grad_seed = fl.dy_seed = 77;
  fl.precisions = kFp32;
  r.push_back(fl);

  auto smax = [&](std::string name, uint64_t seed, uint64_t g, bool log) {
    Row row;
    row.name = std::move(name);
    row.family = "Softmax";
    row.make = [=](DType dt) { return In{act(rn({4, 5}, seed, dt), TolClass::SoftmaxGrad)}; };
    row.run = [=](const Ts& in) { return Ts{log ? log_softmax(in[0]) : softmax(in[0])}; };
    row.gradcheck = true;
    row.grad_seed = row.dy_seed = g;
    row.precisions = kFp32;
    row.fwd = TolClass::Softmax;
    r.push_back(row);
  };
  smax("softmax/small", 80, 81, false);
  smax("log_softmax/small", 82, 83, true);

  auto ce = [&](std::string name, uint64_t seed, uint64_t g, bool terms, bool mean_) {
    Row row;
    row.name = std::move(name);
    row.family = "CrossEntropy";
    row.make = [=](DType dt) {
      In in{act(rn({5, 3}, seed, dt), TolClass::SoftmaxGrad),
            index(Tensor::from<int64_t>({0, 2, 1, 2, 2}, {5}))};
      if (terms) {
        in.push_back(param(un({3}, 90, 0.5, 2.0, dt)));
        in.push_back(param(rn({3}, 91, dt)));
      }
      return in;
    };
    row.run = [=](const Ts& in) {
      return Ts{terms ? cross_entropy(in[0], in[1], in[2], in[3], mean_)
                      : cross_entropy(in[0], in[1])};
    };
    row.gradcheck = true;
    row.grad_seed = row.dy_seed = g;
    row.precisions = kFp32;
    row.fwd = TolClass::Loss;
    r.push_back(row);
  };
  ce("cross_entropy/small", 92, 93, false, true);
  ce("cross_entropy/weighted_adjusted_small", 94, 95, true, true);
  ce("cross_entropy/weighted_adjusted_sum_small", 96, 97, true, false);

  // conv -> bn -> relu -> conv + shortcut: checks accumulation through a shared input.
  Row res;
  res.name = "residual_block/small";
  res.family = "Step";
  res.make = [](DType dt) {
    return In{act(rn({2, 3, 3, 3, 3}, 100, dt), TolClass::Step),
              weight(rn({3, 3, 3, 3, 3}, 101, dt), TolClass::Step),
              weight(rn({3, 3, 3, 3, 3}, 102, dt), TolClass::Step)};
  };
  res.run = [](const Ts& in) {
    Tensor m = Tensor::zeros({3}, in[0].dtype(), in[0].device());
    Tensor v = Tensor::full({3}, 1.0, in[0].dtype(), in[0].device());
    const Conv3dOpts p1 = conv_opts(1, 1, 1, 1);
    Tensor y = conv3d(in[0], in[1], Tensor(), p1);
    y = relu(batch_norm(y, Tensor(), Tensor(), m, v, true));
    y = conv3d(y, in[2], Tensor(), p1);
    return Ts{add(y, in[0])};
  };
  res.gradcheck = true;
  res.grad_tol = 1e-5;
  res.grad_seed = res.dy_seed = 103;
  res.layouts = true;
  res.precisions = kFp32;
  res.fwd = TolClass::Step;
  r.push_back(res);
}

}  // namespace

void parity_rows(std::vector<Row>& r);  // op_table_parity.cpp
void zoo_rows(std::vector<Row>& r);     // op_table_zoo.cpp

const std::vector<Row>& rows() {
  static const std::vector<Row> all = [] {
    std::vector<Row> r;
    gradcheck_rows(r);
    parity_rows(r);
    zoo_rows(r);
    for (const Row& row : r)
      MC_CHECK(!row.family.empty(), "op row ", row.name, " names no family");
    return r;
  }();
  return all;
}

const Row& row(const std::string& name) {
  std::string names;
  for (const Row& r : rows()) {
    if (r.name == name) return r;
    names += (names.empty() ? "" : ", ") + r.name;
  }
  MC_FAIL("no op row named '", name, "' (rows: ", names, ")");
}

}  // namespace mc::optable
