// The CPU-vs-CUDA rows of the backend-ops table (contract in op_table.h): inputs are random, never
// zeros; the CPU result (f32, NCDHW) is the reference.
#include <cmath>

#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/prims.h"
#include "engine/random.h"
#include "tests/engine/op_table.h"

namespace mc::optable {
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
Input act_nograd(Tensor t) { return {std::move(t), Role::Activation, false, TolClass::Exact}; }
Input weight(Tensor t, TolClass g) { return {std::move(t), Role::Weight, true, g}; }
Input param(Tensor t, bool grad = false, TolClass g = TolClass::Exact) {
  return {std::move(t), Role::Param, grad, g};
}

Row base(std::string name, std::string family, std::vector<Precision> precisions,
         uint64_t dy_seed) {
  Row r;
  r.name = std::move(name);
  r.family = std::move(family);
  r.precisions = std::move(precisions);
  r.dy_seed = dy_seed;
  return r;
}

// ---------------- elementwise, layouts ----------------

void elementwise(std::vector<Row>& r) {
  // 3003 elements: the vector body and the scalar tail.
  const auto two = [](DType dt) { return In{act(rn({3, 1001}, 1, dt)), act(rn({3, 1001}, 2, dt))}; };
  const auto one = [](DType dt) { return In{act(rn({3, 1001}, 1, dt))}; };
  auto add_row = [&](std::string name, std::function<In(DType)> make,
                     std::function<Ts(const Ts&)> run, bool backward = true) {
    Row row = base(std::move(name), "Elementwise", kFp32Bf16, 3);
    row.make = std::move(make);
    row.run = std::move(run);
    row.backward = backward;
    r.push_back(row);
  };
  add_row("relu", one, [](const Ts& in) { return Ts{relu(in[0])}; });
  // relu's backward on an arbitrary "output" (negative entries included), as the prim sees it.
  add_row("relu_backward", two, [](const Ts& in) { return Ts{prims::relu_backward(in[0], in[1])}; },
          false);
  add_row("add", two, [](const Ts& in) { return Ts{add(in[0], in[1])}; });
  add_row("mul", two, [](const Ts& in) { return Ts{mul(in[0], in[1])}; });
  add_row("scale", one, [](const Ts& in) { return Ts{scale(in[0], 0.37)}; });
  add_row("add_", two,
          [](const Ts& in) {
            Tensor y = in[0].clone();
            add_(y, in[1]);
            return Ts{y};
          },
          false);
  // A flat slice at offset 1: misaligned for the vectorised kernels.
  Row mis = base("relu/misaligned", "Elementwise", kFp32, 3);
  mis.make = [](DType dt) { return In{act_nograd(rn({2000}, 3, dt))}; };
  mis.run = [](const Ts& in) { return Ts{relu(in[0].flat_slice(1, {1999}))}; };
  mis.backward = false;
  r.push_back(mis);

  Row sum_r = base("sum", "Elementwise", kFp32Bf16, 4);
  sum_r.make = one;
  sum_r.run = [](const Ts& in) { return Ts{sum(in[0])}; };
  sum_r.fwd = TolClass::Sum;
  r.push_back(sum_r);

  // alpha * s[0] from a device scalar (the backward of sum and mean, with no host read).
  Row bc = base("broadcast_scalar", "Elementwise", kFp32, 0);
  bc.make = [](DType dt) { return In{act_nograd(Tensor::full({}, 1.5, dt))}; };
  bc.run = [](const Ts& in) { return Ts{prims::broadcast_scalar(in[0], {4, 5}, 0.25)}; };
  bc.backward = false;
  r.push_back(bc);

  Row tl = base("to_layout/ndhwc", "Layout", kFp32, 5);
  tl.make = [](DType dt) { return In{act(rn({2, 5, 3, 4, 6}, 7, dt))}; };
  tl.run = [](const Ts& in) { return Ts{to_layout(in[0], Layout::NDHWC)}; };
  r.push_back(tl);
  Row tlb = base("to_layout/ndhwc_bf16", "Layout", kFp32, 5);
  tlb.make = tl.make;
  tlb.run = [](const Ts& in) { return Ts{prims::to_layout(in[0], Layout::NDHWC, DType::BF16)}; };
  tlb.backward = false;
  r.push_back(tlb);
}

// ---------------- softmax, loss, linear ----------------

void heads(std::vector<Row>& r) {
  for (bool log : {false, true}) {
    Row row = base(log ? "log_softmax" : "softmax", "Softmax", kFp32, 9);
    row.make = [](DType dt) { return In{act(rn({6, 10}, 8, dt, 3.0), TolClass::SoftmaxGrad)}; };
    row.run = [log](const Ts& in) { return Ts{log ? log_softmax(in[0]) : softmax(in[0])}; };
    row.fwd = TolClass::Softmax;
    r.push_back(row);
  }
  for (bool mean_ : {true, false})
    for (bool adjust : {false, true}) {
      Row row = base(std::string("cross_entropy/") + (mean_ ? "mean" : "sum") +
                         (adjust ? "_adjusted" : ""),
                     "CrossEntropy", kFp32, 11);
      row.make = [adjust](DType dt) {
        std::vector<int64_t> lab;
        for (int i = 0; i < 37; ++i) lab.push_back((i * 7) % 3);
        In in{act(rn({37, 3}, 10, dt, 2.0), TolClass::SoftmaxGrad),
              {Tensor::from(lab, {37}), Role::Index, false, TolClass::Exact}};
        if (adjust) {
          in.push_back(param(Tensor::from<float>({-0.3f, 0.1f, 0.5f}, {3}).to(dt)));
          in.push_back(param(Tensor::from<float>({2.f, 1.f, 0.5f}, {3}).to(dt)));
        }
        return in;
      };
      row.run = [mean_, adjust](const Ts& in) {
        return Ts{adjust ? cross_entropy(in[0], in[1], in[3], in[2], mean_)
                         : cross_entropy(in[0], in[1], Tensor(), Tensor(), mean_)};
      };
      row.fwd = TolClass::Loss;
      r.push_back(row);
    }
  // The head computes in f32 in every precision: a bf16 input (what global pooling gives in bf16
  // mode) is widened, its gradient narrowed back.
  Row lin = base("linear", "Linear", kAll, 14);
  lin.make = [](DType dt) {
    return In{act(rn({5, 70}, 11, dt), TolClass::Linear),
              param(rn({3, 70}, 12, dt, 0.1), true, TolClass::Linear),
              param(rn({3}, 13, dt), true, TolClass::Linear)};
  };
  lin.run = [](const Ts& in) { return Ts{linear(in[0], in[1], in[2])}; };
  lin.fwd = TolClass::Linear;
  r.push_back(lin);
}

// ---------------- pooling ----------------

void pooling(std::vector<Row>& r) {
  // Small integers make ties: the first maximum must win on both sides. The argmax (i32, plane
  // index) is compared too.
  auto run = [](const Ts& in) {
    kernels::PoolGeom g;
    g.N = in[0].size(0), g.C = in[0].size(1), g.D = in[0].size(2), g.H = in[0].size(3),
    g.W = in[0].size(4);
    g.k = {3, 3, 3}, g.stride = {2, 2, 2}, g.pad = {1, 1, 1};
    Tensor am;
    prims::maxpool3d_forward(in[0].detach(), g, am);
    return Ts{max_pool3d(in[0], {3, 3, 3}, {2, 2, 2}, {1, 1, 1}), am};
  };
  Row mp = base("max_pool3d/k3s2p1", "Pool", kFp32Bf16, 16);
  mp.make = [](DType dt) {
    Tensor x = un({2, 3, 9, 10, 11}, 15, -4, 4, DType::F32);
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = std::round(x.data<float>()[i]);
    return In{act(x.to(dt))};
  };
  mp.run = run;
  mp.layouts = true;
  r.push_back(mp);
  // bf16: the maxima are inputs (exact); gradients are summed in float and rounded once.
  Row mpb = base("max_pool3d/k3s2p1_randn", "Pool", kFp32Bf16, 16);
  mpb.make = [](DType dt) { return In{act(rn({2, 3, 9, 10, 11}, 17, dt))}; };
  mpb.run = run;
  mpb.layouts = true;
  r.push_back(mpb);

  Row gap = base("global_avg_pool3d", "Pool", kFp32, 20);
  gap.make = [](DType dt) { return In{act(rn({2, 5, 4, 5, 6}, 19, dt), TolClass::GapGrad)}; };
  gap.run = [](const Ts& in) { return Ts{global_avg_pool3d(in[0])}; };
  gap.layouts = true;
  gap.fwd = TolClass::Gap;
  gap.deterministic = true;
  r.push_back(gap);
}

// ---------------- batch norm ----------------

void batch_norm_rows(std::vector<Row>& r) {
  for (const Shape& shape : {Shape{4, 6, 5, 6, 7}, Shape{16, 6}}) {
    Row row = base("batch_norm/train_" + std::to_string(shape.size()) + "d", "BatchNorm", kFp32Bf16,
                   22);
    const int64_t C = shape[1];
    row.make = [shape, C](DType dt) {
      return In{act(rn(shape, 21, dt, 2.0), TolClass::BnOut),
                param(un({C}, 23, 0.5, 1.5, dt), true, TolClass::BnStats),
                param(rn({C}, 24, dt), true, TolClass::BnStats), param(rn({C}, 25, dt)),
                param(un({C}, 26, 0.5, 2, dt))};
    };
    // Outputs: y, then the updated running mean and (unbiased) variance, then the saved mean
    // and inverse std of the training prim.
    row.run = [](const Ts& in) {
      Tensor m = in[3].clone(), v = in[4].clone();
      Tensor y = batch_norm(in[0], in[1], in[2], m, v, true, 0.1, 1e-5);
      Tensor m2 = in[3].clone(), v2 = in[4].clone();
      prims::BNSaved s;
      prims::batchnorm_forward_train(in[0].detach(), in[1].detach(), in[2].detach(), m2, v2, 0.1,
                                     1e-5, s);
      return Ts{y, m, v, s.mean, s.invstd};
    };
    row.layouts = shape.size() == 5;
    row.fwd = TolClass::BnOut;
    row.extra = TolClass::BnStats;
    r.push_back(row);
  }
  Row ev = base("batch_norm/eval", "BatchNorm", kFp32, 28);
  ev.make = [](DType dt) {
    return In{act(rn({3, 4, 5, 4, 3}, 27, dt), TolClass::BnEval),
              param(un({4}, 29, 0.5, 1.5, dt), true, TolClass::BnStats),
              param(rn({4}, 30, dt), true, TolClass::BnStats), param(rn({4}, 31, dt)),
              param(un({4}, 32, 0.5, 2, dt))};
  };
  ev.run = [](const Ts& in) {
    Tensor m = in[3], v = in[4];
    return Ts{batch_norm(in[0], in[1], in[2], m, v, false, 0.1, 1e-5)};
  };
  ev.layouts = true;
  ev.fwd = TolClass::BnEval;
  r.push_back(ev);
  // affine=False, no running statistics.
  Row na = base("batch_norm/train_noaffine", "BatchNorm", kFp32, 28);
  na.make = [](DType dt) { return In{act(rn({3, 4, 5, 4, 3}, 27, dt), TolClass::BnEval)}; };
  na.run = [](const Ts& in) {
    Tensor none;
    return Ts{batch_norm(in[0], Tensor(), Tensor(), none, none, true, 0.1, 1e-5)};
  };
  na.layouts = true;
  na.fwd = TolClass::BnEval;
  r.push_back(na);
}

// ---------------- convolution ----------------

struct ConvCase {
  const char* name;
  Shape x;
  int64_t O, k, s, p, dil, groups;
  bool bias;
};

Row conv_row(const ConvCase& c, uint64_t seed) {
  Row row = base(std::string("conv3d/") + c.name, "Conv", kAll, 0);
  const uint64_t sx = ++seed, sw = ++seed, sb = c.bias ? ++seed : 0;
  row.dy_seed = ++seed;
  row.make = [c, sx, sw, sb](DType dt) {
    In in{act(rn(c.x, sx, dt), TolClass::Conv),
          weight(rn({c.O, c.x[1] / c.groups, c.k, c.k, c.k}, sw, dt, 0.2), TolClass::Conv)};
    if (c.bias) in.push_back(param(rn({c.O}, sb, dt), true, TolClass::Conv));
    return in;
  };
  Conv3dOpts o;
  o.stride = {c.s, c.s, c.s};
  o.padding = {c.p, c.p, c.p};
  o.dilation = {c.dil, c.dil, c.dil};
  o.groups = c.groups;
  row.run = [o, bias = c.bias](const Ts& in) {
    return Ts{conv3d(in[0], in[1], bias ? in[2] : Tensor(), o)};
  };
  row.layouts = true;
  row.fwd = TolClass::Conv;
  return row;
}

void conv_rows(std::vector<Row>& r) {
  const ConvCase cases[] = {
      {"odd_extents", {2, 3, 9, 10, 11}, 4, 3, 1, 1, 1, 1, false},
      {"stride2", {2, 4, 8, 8, 8}, 6, 3, 2, 1, 1, 1, false},
      {"resnet_stem", {1, 1, 16, 16, 16}, 8, 7, 2, 3, 1, 1, false},
      {"bottleneck_1x1x1", {2, 8, 6, 6, 6}, 16, 1, 1, 0, 1, 1, false},
      {"downsample", {2, 8, 7, 7, 7}, 8, 1, 2, 0, 1, 1, false},
      {"dilation", {2, 4, 6, 6, 6}, 4, 3, 1, 2, 2, 1, false},
      {"groups_bias", {2, 8, 6, 6, 6}, 8, 3, 1, 1, 1, 2, true},
      // The Table II networks: depthwise (MobileNetV2 / EfficientNet, k3 and k5, stride 2) and
      // ResNeXt's 32 groups of 4 channels.
      {"depthwise_s2", {2, 24, 8, 8, 8}, 24, 3, 2, 1, 1, 24, false},
      {"depthwise_k5", {2, 16, 7, 7, 7}, 16, 5, 1, 2, 1, 16, false},
      {"resnext_g32", {2, 128, 6, 6, 6}, 128, 3, 1, 1, 1, 32, false},
  };
  uint64_t seed = 100;
  for (const ConvCase& c : cases) {
    r.push_back(conv_row(c, seed));
    seed += c.bias ? 4 : 3;
  }
  // Big inputs, where cuDNN 9.10-9.15 returned wrong bf16 3-D convolutions (REFERENCE.md).
  for (const auto& [name, xs, O] : {std::tuple{"large_8x64x64", Shape{8, 64, 64, 64, 64}, 64},
                                    {"large_2x256x32", Shape{2, 256, 32, 32, 32}, 256}}) {
    Row row = base(std::string("conv3d/") + name, "ConvLarge", kAll, 202);
    const int64_t C = xs[1], Oc = O;
    const Shape x_shape = xs;
    row.make = [x_shape, C, Oc](DType dt) {
      auto bf = [](Tensor t) { return t.to(DType::BF16).to(DType::F32); };
      return In{act(bf(rn(x_shape, 200, DType::F32)).to(dt), TolClass::Conv),
                weight(bf(rn({Oc, C, 3, 3, 3}, 201, DType::F32, 0.05)).to(dt), TolClass::Conv)};
    };
    const Conv3dOpts o{{1, 1, 1}, {1, 1, 1}};
    row.run = [o](const Ts& in) { return Ts{conv3d(in[0], in[1], Tensor(), o)}; };
    row.layouts = true;
    row.sampled = true;
    row.fwd = TolClass::Conv;
    r.push_back(row);
  }
}

// ---------------- optimizers ----------------

void optim_rows(std::vector<Row>& r) {
  const int64_t n = 100003;  // odd: the float4 body and a tail
  const auto inputs = [n](DType) {
    return In{param(rn({n}, 40, DType::F32)), param(rn({n}, 41, DType::F32)),
              param(rn({n}, 42, DType::F32, 0.1)), param(un({n}, 43, 0, 0.01, DType::F32))};
  };
  // Three steps from non-zero moments; outputs: parameters, then the moments.
  Row adam = base("adamw", "Optim", kFp32, 0);
  adam.make = inputs;
  adam.run = [](const Ts& in) {
    Tensor p = in[0].clone();
    p.set_grad(in[1]);
    AdamW opt({&p});
    opt.load_state({{"exp_avg", in[2]}, {"exp_avg_sq", in[3]}, {"step", Tensor::from<int64_t>({0}, {})}});
    for (int i = 0; i < 3; ++i) opt.step();
    const StateDict s = opt.state();
    return Ts{p, s[0].second, s[1].second};
  };
  adam.backward = false;
  r.push_back(adam);
  for (bool nesterov : {false, true}) {
    Row sgd = base(nesterov ? "sgd/nesterov" : "sgd", "Optim", kFp32, 0);
    sgd.make = inputs;
    sgd.run = [nesterov](const Ts& in) {
      Tensor q = in[0].clone();
      q.set_grad(in[1]);
      SGDOptions o{1e-2, 0.9, nesterov ? 0.0 : 0.1, 1e-3, nesterov};
      SGD opt({&q}, o);
      for (int i = 0; i < 3; ++i) opt.step();
      return Ts{q, opt.state()[1].second};
    };
    sgd.backward = false;
    r.push_back(sgd);
  }
  // SAM around AdamW: the ascent (save w, w += rho g / ||g||, the norm read on the device), then
  // the restore and the base step with a second gradient. Outputs: the perturbed point, the
  // parameters after the step, the moments. The norm is a long reduction: Sum tolerance.
  Row sam = base("sam/adamw", "Optim", kFp32, 0);
  sam.make = [n](DType) {
    return In{param(rn({n}, 40, DType::F32)), param(rn({n}, 41, DType::F32)),
              param(rn({n}, 44, DType::F32))};
  };
  sam.run = [](const Ts& in) {
    Tensor p = in[0].clone();
    p.set_grad(in[1].clone());
    SAM opt({&p}, std::make_unique<AdamW>(std::vector<Tensor*>{&p}), SAMOptions{.rho = 0.05});
    opt.next_pass();
    Tensor ascent = p.clone();
    p.grad().copy_(in[2]);
    opt.step();
    const StateDict s = opt.state();
    return Ts{ascent, p, s[0].second, s[1].second};
  };
  sam.backward = false;
  sam.fwd = sam.extra = TolClass::Sum;
  r.push_back(sam);
  // Schedule-free AdamW: three steps (warm-up 2, weight decay), then y -> x -> y. Outputs: x, y
  // after the round trip, z, the second moment.
  Row sf = base("schedulefree_adamw", "Optim", kFp32, 0);
  sf.make = inputs;
  sf.run = [](const Ts& in) {
    Tensor p = in[0].clone();
    p.set_grad(in[1]);
    ScheduleFreeAdamW opt({&p}, ScheduleFreeOptions{.lr = 1e-2, .weight_decay = 0.01, .warmup_steps = 2});
    for (int i = 0; i < 3; ++i) opt.step();
    opt.use_eval_weights();
    Tensor x = p.clone();
    opt.use_train_weights();
    const StateDict s = opt.state();
    return Ts{x, p, s[0].second, s[1].second};
  };
  sf.backward = false;
  r.push_back(sf);
}

// ---------------- a whole step through autograd ----------------

// conv-bn-relu-pool -> residual block -> pool -> linear -> loss, backward, two AdamW steps:
// outputs the last loss, every gradient, the updated parameters and the running statistics. In
// tf32 and bf16 the same step exercises the dtype and layout plumbing across autograd (bf16
// activations, NDHWC through pooling and the residual add, bf16 gradients into f32 weights).
void step_row(std::vector<Row>& r) {
  Row row = base("train_step/small_resnet", "Step", kAll, 0);
  row.make = [](DType dt) {
    return In{act(rn({3, 2, 10, 11, 12}, 58, dt)),
              {Tensor::from<int64_t>({2, 0, 1}, {3}), Role::Index, false, TolClass::Exact},
              param(rn({8, 2, 3, 3, 3}, 50, dt, 0.3)), param(un({8}, 51, 0.5, 1.5, dt)),
              param(rn({8}, 52, dt, 0.1)), param(rn({8, 8, 3, 3, 3}, 53, dt, 0.1)),
              param(un({8}, 54, 0.5, 1.5, dt)), param(rn({8}, 55, dt, 0.1)),
              param(rn({3, 8}, 56, dt, 0.3)), param(rn({3}, 57, dt, 0.1)),
              param(Tensor::zeros({8}, dt)), param(Tensor::full({8}, 1.0, dt)),
              param(Tensor::zeros({8}, dt)), param(Tensor::full({8}, 1.0, dt))};
  };
  row.run = [](const Ts& in) {
    std::vector<Tensor> p, buf;
    for (int i = 2; i < 10; ++i) p.push_back(in[size_t(i)].detach().clone());
    for (int i = 10; i < 14; ++i) buf.push_back(in[size_t(i)].clone());
    std::vector<Tensor*> ptrs;
    for (auto& t : p) ptrs.push_back(&t.set_requires_grad(true));
    AdamW opt(ptrs);
    const Conv3dOpts s2{{2, 2, 2}, {1, 1, 1}}, s1{{1, 1, 1}, {1, 1, 1}};
    Tensor loss;
    for (int it = 0; it < 2; ++it) {
      for (auto* t : ptrs) t->zero_grad();
      Tensor h = relu(batch_norm(conv3d(in[0], p[0], Tensor(), s2), p[1], p[2], buf[0], buf[1], true));
      h = max_pool3d(h, {3, 3, 3}, {2, 2, 2}, {1, 1, 1});
      Tensor res = batch_norm(conv3d(h, p[3], Tensor(), s1), p[4], p[5], buf[2], buf[3], true);
      h = relu(add(h, res));
      loss = cross_entropy(linear(global_avg_pool3d(h), p[6], p[7]), in[1]);
      loss.backward();
      opt.step();
    }
    Ts out{loss.detach()};
    for (auto& t : p) out.push_back(t.grad());
    for (auto& t : p) out.push_back(t.detach());
    for (auto& t : buf) out.push_back(t);
    return out;
  };
  row.backward = false;
  row.layouts = true;
  row.fwd = row.extra = TolClass::Step;
  r.push_back(row);
}

}  // namespace

void parity_rows(std::vector<Row>& r) {
  elementwise(r);
  heads(r);
  pooling(r);
  batch_norm_rows(r);
  conv_rows(r);
  optim_rows(r);
  step_row(r);
}

}  // namespace mc::optable
