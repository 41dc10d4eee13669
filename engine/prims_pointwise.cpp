// Pointwise ops, reductions, memory layouts, softmax and the fused cross-entropy
// (engine/prims.h): our kernels on both backends, through MC_DISPATCH.
#include "engine/prims.h"

#include "engine/prims_util.h"
#include "kernels/loss.h"
#include "kernels/softmax.h"

namespace mc::prims {
using namespace detail;

// ---------------- pointwise ----------------

Tensor pointwise(Pointwise op, const Tensor& a, const Tensor& b_in, double alpha) {
  const char* name = kernels::pointwise_name(op);
  MC_CHECK(a.defined(), name, ": undefined input");
  const bool two = kernels::pointwise_arity(op) == 2;
  Tensor b;
  if (two) {
    MC_CHECK(b_in.defined(), name, ": needs a second input");
    same_shape(a, b_in, name);
    b = to_layout(b_in, layout_of(a));  // pointwise ops pair up memory positions
  }
  Tensor y = empty_like_device(a, a.shape(), a.dtype(), a.layout());
  MC_DISPATCH(a.device(), pointwise, op, a.raw(), two ? b.raw() : nullptr, y.raw(), kdt(a.dtype()),
              alpha, a.numel());
  return y;
}

Tensor relu_forward(const Tensor& x) { return pointwise(Pointwise::Relu, x); }
Tensor relu_backward(const Tensor& y, const Tensor& dy) {
  return pointwise(Pointwise::ReluBackward, y, dy);
}
Tensor add(const Tensor& a, const Tensor& b) { return pointwise(Pointwise::Add, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return pointwise(Pointwise::Mul, a, b); }
Tensor scale(const Tensor& x, double alpha) { return pointwise(Pointwise::Scale, x, {}, alpha); }

void add_(Tensor& y, const Tensor& x_in) {
  MC_CHECK(y.numel() == x_in.numel(), "add_: ", y.str(), " += ", x_in.str());
  MC_CHECK(y.dtype() == x_in.dtype() && y.device() == x_in.device(), "add_: ", y.str(), " += ",
           x_in.str());
  const Tensor x = y.shape() == x_in.shape() ? to_layout(x_in, layout_of(y)) : x_in;
  MC_DISPATCH(y.device(), pointwise, Pointwise::Axpy, x.raw(), y.raw(), y.raw(), kdt(y.dtype()),
              1.0, y.numel());
}

// ---------------- reductions and scalars ----------------

Tensor sum_all(const Tensor& x) {
  Tensor y = empty_like_device(x, {}, x.dtype());
  const size_t ws = MC_DISPATCH_SIZE(x.device(), sum_workspace, x.numel());
  const Tensor work = workspace(ws, x.device());
  MC_DISPATCH(x.device(), sum, x.raw(), kdt(x.dtype()), x.numel(), 1.0, y.raw(), kdt(y.dtype()),
              opt_mut(work), ws);
  return y;
}

Tensor sum_squares(const Tensor& x) {
  // A 16-bit input's norm is returned in f32: its square sum would lose all but 3 digits in bf16.
  const DType yt = x.dtype() == DType::F64 ? DType::F64 : DType::F32;
  Tensor y = empty_like_device(x, {}, yt);
  const size_t ws = MC_DISPATCH_SIZE(x.device(), sum_workspace, x.numel());
  const Tensor work = workspace(ws, x.device());
  MC_DISPATCH(x.device(), sum_squares, x.raw(), kdt(x.dtype()), x.numel(), y.raw(),
              kdt(y.dtype()), opt_mut(work), ws);
  return y;
}

Tensor broadcast_scalar(const Tensor& s, const Shape& shape, double alpha) {
  MC_CHECK(s.numel() == 1, "broadcast_scalar: needs a one-element tensor, got ", s.str());
  Tensor y = empty_like_device(s, shape, s.dtype());
  MC_DISPATCH(s.device(), broadcast_scalar, s.raw(), kdt(s.dtype()), alpha, y.raw(),
              kdt(y.dtype()), y.numel());
  return y;
}

Tensor to_layout(const Tensor& x, Layout layout, DType dt) {
  MC_CHECK(x.defined(), "to_layout: undefined tensor");
  const bool moves = x.dim() == 5 && x.layout() != layout;
  if (!moves && x.dtype() == dt) return x;
  Tensor y = empty_like_device(x, x.shape(), dt, moves ? layout : x.layout());
  if (!moves) {
    MC_DISPATCH(x.device(), cast, x.raw(), kdt(x.dtype()), y.raw(), kdt(dt), x.numel());
    return y;
  }
  const int64_t N = x.size(0), C = x.size(1), S = N * C ? x.numel() / (N * C) : 0;
  if (layout == Layout::NDHWC)  // [N, C, S] -> [N, S, C]
    MC_DISPATCH(x.device(), transpose, x.raw(), kdt(x.dtype()), y.raw(), kdt(dt), N, C, S);
  else  // [N, S, C] -> [N, C, S]
    MC_DISPATCH(x.device(), transpose, x.raw(), kdt(x.dtype()), y.raw(), kdt(dt), N, S, C);
  return y;
}

// ---------------- softmax ----------------

Tensor softmax_forward(const Tensor& x, bool log) {
  MC_CHECK(x.dim() >= 1, "softmax: needs at least one dimension");
  const int64_t C = x.size(-1), R = C ? x.numel() / C : 0;
  Tensor y = empty_like_device(x, x.shape(), x.dtype());
  MC_DISPATCH(x.device(), softmax_forward, x.raw(), y.raw(), kdt(x.dtype()), R, C, log);
  return y;
}

Tensor softmax_backward(const Tensor& y, const Tensor& dy, bool log) {
  same_shape(y, dy, "softmax backward");
  const int64_t C = y.size(-1), R = C ? y.numel() / C : 0;
  Tensor dx = empty_like_device(y, y.shape(), y.dtype());
  MC_DISPATCH(y.device(), softmax_backward, y.raw(), dy.raw(), dx.raw(), kdt(y.dtype()), R, C,
              log);
  return dx;
}

// ---------------- cross-entropy ----------------

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const CrossEntropyArgs& a,
                     Tensor* dlogits, const Tensor& dloss) {
  MC_CHECK(logits.dim() == 2, "cross_entropy: logits must be [N, C], got ", logits.str());
  const int64_t N = logits.size(0), C = logits.size(1);
  const Device d = logits.device();
  const DType dt = logits.dtype();
  MC_CHECK(labels.dtype() == DType::I64 && labels.dim() == 1 && labels.size(0) == N,
           "cross_entropy: labels must be i64[", N, "], got ", labels.str());
  MC_CHECK(N > 0 && C > 0, "cross_entropy: empty logits ", logits.str());
  same_device(logits, labels, "cross_entropy", "labels");
  for (const auto& [t, what] : {std::pair{&a.weight, "weight"}, {&a.offset, "offset"}}) {
    MC_CHECK(!t->defined() || (t->dim() == 1 && t->size(0) == C && t->dtype() == dt),
             "cross_entropy: per-class ", what, " must be ", dtype_name(dt), "[", C, "], got ",
             t->str());
    same_device(logits, *t, "cross_entropy", what);
  }
  if (dlogits) {
    MC_CHECK(dloss.defined() && dloss.numel() == 1 && dloss.dtype() == dt && dloss.device() == d,
             "cross_entropy: the gradient needs d(loss) as one ", dtype_name(dt), " element on ",
             d.str(), ", got ", dloss.str());
  }
  MC_CHECK(d.is_cpu() || dt == DType::F32, "cross_entropy: logits must be f32 on the GPU (the "
           "loss is computed in f32 in every precision), got ", logits.str());
  if (d.is_cpu())  // host labels: name the first bad one before computing anything
    for (int64_t y : labels.to_vector<int64_t>())
      MC_CHECK(y >= 0 && y < C, "cross_entropy: label ", y, " outside [0, ", C, ")");

  Tensor loss = Tensor::empty({}, dt, d);
  if (dlogits) *dlogits = Tensor::empty(logits.shape(), dt, d);
  const size_t ws = MC_DISPATCH_SIZE(d, cross_entropy_workspace, N, C);
  const Tensor work = workspace(ws, d);
  void* dl = dlogits ? dlogits->raw() : nullptr;
  const void* dls = dlogits ? dloss.raw() : nullptr;
  on_device(
      d, "cross_entropy",
      [&](kernels::Stream s) {
        int bad = 0;
        kernels::cpu::cross_entropy_fused(logits.raw(), labels.data<int64_t>(), opt(a.offset),
                                          opt(a.weight), kdt(dt), N, C, a.mean, loss.raw(), dl,
                                          dls, &bad, opt_mut(work), ws, s);
        MC_CHECK(!bad, "cross_entropy: a label outside [0, ", C, ")");
      },
      [&](kernels::Stream s) {
        kernels::cuda::cross_entropy_fused(
            logits.raw(), labels.data<int64_t>(), opt(a.offset), opt(a.weight), kdt(dt), N, C,
            a.mean, loss.raw(), dl, dls, cuda::device_flag(d.index, cuda::DeviceFlag::BadLabel),
            opt_mut(work), ws, s);
        cuda::sync_check_flags(d.index);
      });
  return loss;
}

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const CrossEntropyArgs& a,
                     Tensor* dlogits, double dloss) {
  MC_CHECK(logits.defined(), "cross_entropy: undefined logits");
  // A one-element tensor where the logits live (a fill kernel on the GPU: no host sync).
  const Tensor dl = dlogits ? Tensor::full({}, dloss, logits.dtype(), logits.device()) : Tensor();
  return cross_entropy(logits, labels, a, dlogits, dl);
}

}  // namespace mc::prims
