#include "engine/ops.h"

#include "engine/prims.h"

namespace mc {
namespace {

template <class N, class... A>
std::shared_ptr<N> node(A&&... a) {
  return std::make_shared<N>(std::forward<A>(a)...);
}

kernels::ConvGeom conv_geom(const Tensor& x, const Tensor& w, const Conv3dOpts& o) {
  MC_CHECK(x.dim() == 5, "conv3d: input must be [N, C, D, H, W], got ", x.str());
  MC_CHECK(w.dim() == 5, "conv3d: weight must be [O, C/groups, kd, kh, kw], got ", w.str());
  kernels::ConvGeom g;
  g.N = x.size(0); g.C = x.size(1); g.D = x.size(2); g.H = x.size(3); g.W = x.size(4);
  g.O = w.size(0);
  g.k = {w.size(2), w.size(3), w.size(4)};
  g.stride = o.stride; g.pad = o.padding; g.dil = o.dilation; g.groups = o.groups;
  MC_CHECK(g.groups >= 1 && g.C % g.groups == 0 && g.O % g.groups == 0, "conv3d: groups ",
           g.groups, " must divide input channels ", g.C, " and output channels ", g.O);
  MC_CHECK(w.size(1) * g.groups == g.C, "conv3d: weight ", w.str(), " expects ",
           w.size(1) * g.groups, " input channels, input ", x.str(), " has ", g.C);
  for (int a = 0; a < 3; ++a) {
    MC_CHECK(g.stride[a] >= 1 && g.dil[a] >= 1 && g.pad[a] >= 0, "conv3d: bad stride/dilation/padding");
    MC_CHECK(g.out(a) >= 1, "conv3d: kernel ", shape_str(w.shape()), " larger than padded input ",
             x.str());
  }
  return g;
}

struct Conv3dNode : Node {
  Tensor x, w;
  kernels::ConvGeom g;
  bool has_bias;
  const char* name() const override { return "conv3d"; }
  std::vector<Tensor> backward(const Tensor& dy) override {
    Tensor dx, dw, db;
    if (needs(0)) dx = prims::conv3d_backward_data(dy, w, g);
    if (needs(1) || (has_bias && needs(2)))
      dw = prims::conv3d_backward_weight(x, dy, g, has_bias ? &db : nullptr);
    return {dx, needs(1) ? dw : Tensor(), needs(2) ? db : Tensor()};
  }
};

struct BatchNormNode : Node {
  Tensor x, w, rm, rv;
  prims::BNSaved saved;
  bool training;
  double eps;
  const char* name() const override { return "batch_norm"; }
  std::vector<Tensor> backward(const Tensor& dy) override {
    Tensor dw, db;
    Tensor dx = training ? prims::batchnorm_backward_train(x, dy, w, saved, dw, db)
                         : prims::batchnorm_backward_eval(x, dy, w, rm, rv, eps, dw, db);
    return {needs(0) ? dx : Tensor(), needs(1) ? dw : Tensor(), needs(2) ? db : Tensor()};
  }
};

struct PointwiseNode : Node {
  kernels::Pointwise f, g;
  Tensor saved;  // x or y, as g wants
  double alpha;
  const char* name() const override { return kernels::pointwise_name(f); }
  std::vector<Tensor> backward(const Tensor& dy) override {
    return {prims::pointwise(g, saved, dy, alpha)};
  }
};

struct ToLayoutNode : Node {
  Layout from;
  const char* name() const override { return "to_layout"; }
  std::vector<Tensor> backward(const Tensor& dy) override { return {prims::to_layout(dy, from)}; }
};

// Gradients go back in each input's own layout (the forward computed in a's).
struct AddNode : Node {
  Layout la, lb;
  const char* name() const override { return "add"; }
  std::vector<Tensor> backward(const Tensor& dy) override {
    return {prims::to_layout(dy, la), prims::to_layout(dy, lb)};
  }
};

struct MulNode : Node {
  Tensor a, b;
  const char* name() const override { return "mul"; }
  std::vector<Tensor> backward(const Tensor& dy) override {
    return {needs(0) ? prims::to_layout(prims::mul(dy, b), a.layout()) : Tensor(),
            needs(1) ? prims::to_layout(prims::mul(dy, a), b.layout()) : Tensor()};
  }
};

struct ScaleNode : Node {
  double alpha;
  const char* name() const override { return "scale"; }
  std::vector<Tensor> backward(const Tensor& dy) override { return {prims::scale(dy, alpha)}; }
};

struct SumNode : Node {
  Shape shape;
  double alpha;  // 1 for sum, 1/n for mean
  const char* name() const override { return "sum"; }
  std::vector<Tensor> backward(const Tensor& dy) override {
    return {prims::broadcast_scalar(dy, shape, alpha)};
  }
};

struct MaxPoolNode : Node {
  Tensor argmax;
  kernels::PoolGeom g;
  const char* name() const override { return "max_pool3d"; }
  std::vector<Tensor> backward(const Tensor& dy) override {
    return {prims::maxpool3d_backward(dy, argmax, g)};
  }
};

struct GapNode : Node {
  Shape xs;
  Layout xl;  // dx goes back in the input's layout
  const char* name() const override { return "global_avg_pool3d"; }
  std::vector<Tensor> backward(const Tensor& dy) override {
    return {prims::avgpool_global_backward(dy, xs, xl)};
  }
};

struct LinearNode : Node {
  Tensor x, w;
  bool has_bias;
  const char* name() const override { return "linear"; }
  std::vector<Tensor> backward(const Tensor& dy) override {
    Tensor dx, dw, db;
    prims::linear_backward(x, w, dy, needs(0) ? &dx : nullptr, needs(1) ? &dw : nullptr,
                           has_bias && needs(2) ? &db : nullptr);
    return {dx, dw, db};
  }
};

struct ReshapeNode : Node {
  Shape xs;
  const char* name() const override { return "reshape"; }
  std::vector<Tensor> backward(const Tensor& dy) override { return {dy.view(xs)}; }
};

struct SoftmaxNode : Node {
  Tensor y;
  bool log;
  const char* name() const override { return log ? "log_softmax" : "softmax"; }
  std::vector<Tensor> backward(const Tensor& dy) override {
    return {prims::softmax_backward(y, dy, log)};
  }
};

struct CrossEntropyNode : Node {
  Tensor logits, labels;
  prims::CrossEntropyArgs args;
  const char* name() const override { return "cross_entropy"; }
  std::vector<Tensor> backward(const Tensor& dy) override {
    // The fused kernel recomputes softmax; dloss stays on the device.
    Tensor d;
    prims::cross_entropy(logits, labels, args, &d, dy);
    return {d};
  }
};

}  // namespace

Tensor conv3d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv3dOpts& o) {
  kernels::ConvGeom g = conv_geom(x, w, o);
  MC_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == g.O), "conv3d: bias ",
           bias.str(), " must be [", g.O, "]");
  Tensor y = prims::conv3d_forward(x, w, bias, g);
  if (any_requires_grad({&x, &w, &bias})) {
    auto n = node<Conv3dNode>();
    n->x = x.detach();
    n->w = w.detach();
    n->g = g;
    n->has_bias = bias.defined();
    record(y, n, {&x, &w, &bias});
  }
  return y;
}

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                  Tensor& running_var, bool training, double momentum, double eps) {
  MC_CHECK(x.dim() >= 2, "batch_norm: input must be [N, C, ...], got ", x.str());
  const int64_t C = x.size(1);
  for (const Tensor* t : std::initializer_list<const Tensor*>{&weight, &bias, &running_mean, &running_var})
    MC_CHECK(!t->defined() || (t->dim() == 1 && t->size(0) == C), "batch_norm: per-channel tensor ",
             t->str(), " does not fit ", C, " channels of ", x.str());
  auto n = node<BatchNormNode>();
  Tensor y;
  if (training) {
    y = prims::batchnorm_forward_train(x, weight, bias, running_mean, running_var, momentum, eps,
                                       n->saved);
  } else {
    MC_CHECK(running_mean.defined() && running_var.defined(),
             "batch_norm: evaluation needs running statistics");
    y = prims::batchnorm_forward_eval(x, weight, bias, running_mean, running_var, eps);
  }
  if (any_requires_grad({&x, &weight, &bias})) {
    n->x = x.detach();
    n->w = weight.detach();
    n->training = training;
    n->eps = eps;
    if (!training) {
      n->rm = running_mean.clone();  // running stats change in later steps
      n->rv = running_var.clone();
    }
    record(y, n, {&x, &weight, &bias});
  }
  return y;
}

Tensor pointwise_op(kernels::Pointwise f, kernels::Pointwise g, bool backward_uses_output,
                    const Tensor& x, double alpha) {
  MC_CHECK(kernels::pointwise_arity(f) == 1 && kernels::pointwise_arity(g) == 2,
           "pointwise_op: ", kernels::pointwise_name(f), " must take one input and ",
           kernels::pointwise_name(g), " two");
  Tensor y = prims::pointwise(f, x, Tensor(), alpha);
  if (any_requires_grad({&x})) {
    auto n = node<PointwiseNode>();
    n->f = f;
    n->g = g;
    n->saved = backward_uses_output ? y.detach() : x.detach();
    n->alpha = alpha;
    record(y, n, {&x});
  }
  return y;
}

Tensor relu(const Tensor& x) {
  return pointwise_op(kernels::Pointwise::Relu, kernels::Pointwise::ReluBackward, true, x);
}

Tensor huber(const Tensor& x, double delta) {
  MC_CHECK(delta > 0, "huber: delta must be > 0, got ", delta);
  return pointwise_op(kernels::Pointwise::Huber, kernels::Pointwise::HuberBackward, false, x, delta);
}

Tensor square(const Tensor& x) {
  return pointwise_op(kernels::Pointwise::Square, kernels::Pointwise::SquareBackward, false, x);
}

Tensor relu6(const Tensor& x) {
  return pointwise_op(kernels::Pointwise::Relu6, kernels::Pointwise::Relu6Backward, false, x);
}
Tensor silu(const Tensor& x) {
  return pointwise_op(kernels::Pointwise::Silu, kernels::Pointwise::SiluBackward, false, x);
}
Tensor sigmoid(const Tensor& x) {
  return pointwise_op(kernels::Pointwise::Sigmoid, kernels::Pointwise::SigmoidBackward, true, x);
}

Tensor to_layout(const Tensor& x, Layout layout) {
  Tensor y = prims::to_layout(x, layout);
  if (!y.shares_storage(x) && any_requires_grad({&x})) {
    auto n = node<ToLayoutNode>();
    n->from = x.layout();
    record(y, n, {&x});
  }
  return y;
}

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor y = prims::add(a, b);
  if (any_requires_grad({&a, &b})) {
    auto n = node<AddNode>();
    n->la = a.layout();
    n->lb = b.layout();
    record(y, n, {&a, &b});
  }
  return y;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor y = prims::mul(a, b);
  if (any_requires_grad({&a, &b})) {
    auto n = node<MulNode>();
    n->a = a.detach();
    n->b = b.detach();
    record(y, n, {&a, &b});
  }
  return y;
}

Tensor scale(const Tensor& x, double alpha) {
  Tensor y = prims::scale(x, alpha);
  if (any_requires_grad({&x})) {
    auto n = node<ScaleNode>();
    n->alpha = alpha;
    record(y, n, {&x});
  }
  return y;
}

namespace {
Tensor reduce(const Tensor& x, double alpha) {
  Tensor y = prims::sum_all(x);
  if (alpha != 1.0) y = prims::scale(y, alpha);
  if (any_requires_grad({&x})) {
    auto n = node<SumNode>();
    n->shape = x.shape();
    n->alpha = alpha;
    record(y, n, {&x});
  }
  return y;
}
}  // namespace

Tensor sum(const Tensor& x) { return reduce(x, 1.0); }
Tensor mean(const Tensor& x) {
  MC_CHECK(x.numel() > 0, "mean of an empty tensor");
  return reduce(x, 1.0 / double(x.numel()));
}

void add_(Tensor& y, const Tensor& x) { prims::add_(y, x); }

Tensor max_pool3d(const Tensor& x, std::array<int64_t, 3> k, std::array<int64_t, 3> s,
                  std::array<int64_t, 3> p) {
  MC_CHECK(x.dim() == 5, "max_pool3d: input must be [N, C, D, H, W], got ", x.str());
  kernels::PoolGeom g;
  g.N = x.size(0); g.C = x.size(1); g.D = x.size(2); g.H = x.size(3); g.W = x.size(4);
  g.k = k; g.stride = s; g.pad = p;
  for (int a = 0; a < 3; ++a) {
    MC_CHECK(k[a] >= 1 && s[a] >= 1 && p[a] >= 0 && 2 * p[a] <= k[a],
             "max_pool3d: padding must be at most half the kernel (PyTorch's rule)");
    MC_CHECK(g.out(a) >= 1, "max_pool3d: kernel larger than input ", x.str());
  }
  auto n = node<MaxPoolNode>();
  Tensor y = prims::maxpool3d_forward(x, g, n->argmax);
  if (any_requires_grad({&x})) {
    n->g = g;
    record(y, n, {&x});
  }
  return y;
}

Tensor global_avg_pool3d(const Tensor& x) {
  Tensor y = prims::avgpool_global_forward(x);
  if (any_requires_grad({&x})) {
    auto n = node<GapNode>();
    n->xs = x.shape();
    n->xl = x.layout();
    record(y, n, {&x});
  }
  return y;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  Tensor y = prims::linear_forward(x, w, bias);
  if (any_requires_grad({&x, &w, &bias})) {
    auto n = node<LinearNode>();
    n->x = x.detach();
    n->w = w.detach();
    n->has_bias = bias.defined();
    record(y, n, {&x, &w, &bias});
  }
  return y;
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  MC_CHECK(x.dim() != 5 || x.layout() == Layout::NCDHW || shape == x.shape(), "reshape of ",
           x.str(), " held channels-last (NDHWC) to ", shape_str(shape),
           ": convert it with to_layout(x, Layout::NCDHW) first");
  Tensor y = x.view(shape);
  if (any_requires_grad({&x})) {
    auto n = node<ReshapeNode>();
    n->xs = x.shape();
    record(y, n, {&x});
  }
  return y;
}

Tensor flatten(const Tensor& x, int64_t start_dim) {
  MC_CHECK(start_dim >= 0 && start_dim < std::max<int64_t>(x.dim(), 1), "flatten: start_dim ",
           start_dim, " out of range for ", x.str());
  Shape s(x.shape().begin(), x.shape().begin() + start_dim);
  s.push_back(-1);
  return reshape(x, s);
}

namespace {
Tensor softmax_impl(const Tensor& x, bool log) {
  Tensor y = prims::softmax_forward(x, log);
  if (any_requires_grad({&x})) {
    auto n = node<SoftmaxNode>();
    n->y = y.detach();
    n->log = log;
    record(y, n, {&x});
  }
  return y;
}
}  // namespace

Tensor softmax(const Tensor& x) { return softmax_impl(x, false); }
Tensor log_softmax(const Tensor& x) { return softmax_impl(x, true); }

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& weight,
                     const Tensor& offset, bool mean) {
  const prims::CrossEntropyArgs args{.weight = weight, .offset = offset, .mean = mean};
  Tensor loss = prims::cross_entropy(logits, labels, args);
  if (any_requires_grad({&logits})) {
    auto n = node<CrossEntropyNode>();
    n->logits = logits.detach();
    n->labels = labels;
    n->args = args;
    record(loss, n, {&logits});
  }
  return loss;
}

}  // namespace mc
