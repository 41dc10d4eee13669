#include "engine/prims.h"

#include "kernels/batchnorm.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"
#include "kernels/loss.h"
#include "kernels/softmax.h"
#ifdef MC_HAVE_CUDA
#include "engine/cuda_prims.h"
#define MC_ROUTE_CUDA(t, call) \
  if ((t).is_cuda()) return cuda_prims::call
#else
#define MC_ROUTE_CUDA(t, call) \
  MC_CHECK(!(t).is_cuda(), "tensor on ", (t).device().str(), " but this build has no CUDA")
#endif

namespace mc::prims {
namespace {

// Runs f with a float or double tag: the CPU reference supports both (f64 for gradient checks).
template <class F>
decltype(auto) on_fp(const Tensor& t, const char* op, F&& f) {
  if (t.dtype() == DType::F32) return f(float{});
  MC_CHECK(t.dtype() == DType::F64, op, ": the CPU path takes f32 or f64, got ", t.str());
  return f(double{});
}

void same(const Tensor& a, const Tensor& b, const char* op, const char* what) {
  if (!b.defined()) return;
  MC_CHECK(a.device() == b.device(), op, ": ", what, " is on ", b.device().str(), ", input on ",
           a.device().str());
  MC_CHECK(a.dtype() == b.dtype() || b.dtype() == DType::I64 || b.dtype() == DType::F32, op, ": ",
           what, " is ", dtype_name(b.dtype()), ", input is ", dtype_name(a.dtype()));
}

template <class T> const T* opt(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }

}  // namespace

// ---------------- convolution ----------------

Tensor conv3d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const ConvGeom& g) {
  same(x, w, "conv3d", "weight");
  same(x, b, "conv3d", "bias");
  MC_ROUTE_CUDA(x, conv3d_forward(x, w, b, g));
  Tensor y = Tensor::empty({g.N, g.O, g.oD(), g.oH(), g.oW()}, x.dtype());
  on_fp(x, "conv3d", [&](auto tag) {
    using T = decltype(tag);
    kernels::cpu::conv3d_forward<T>(g, x.data<T>(), w.data<T>(), opt<T>(b), y.data<T>());
  });
  return y;
}

Tensor conv3d_backward_data(const Tensor& dy, const Tensor& w, const ConvGeom& g) {
  MC_ROUTE_CUDA(dy, conv3d_backward_data(dy, w, g));
  Tensor dx = Tensor::empty({g.N, g.C, g.D, g.H, g.W}, dy.dtype());
  on_fp(dy, "conv3d backward", [&](auto tag) {
    using T = decltype(tag);
    kernels::cpu::conv3d_backward_data<T>(g, dy.data<T>(), w.data<T>(), dx.data<T>());
  });
  return dx;
}

Tensor conv3d_backward_weight(const Tensor& x, const Tensor& dy, const ConvGeom& g, Tensor* db) {
  MC_ROUTE_CUDA(x, conv3d_backward_weight(x, dy, g, db));
  Tensor dw = Tensor::empty({g.O, g.C / g.groups, g.k[0], g.k[1], g.k[2]}, x.dtype());
  if (db) *db = Tensor::empty({g.O}, x.dtype());
  on_fp(x, "conv3d backward", [&](auto tag) {
    using T = decltype(tag);
    kernels::cpu::conv3d_backward_weight<T>(g, x.data<T>(), dy.data<T>(), dw.data<T>(),
                                            db ? db->data<T>() : nullptr);
  });
  return dw;
}

// ---------------- batch norm ----------------

namespace {
void bn_dims(const Tensor& x, int64_t& N, int64_t& C, int64_t& S) {
  MC_CHECK(x.dim() >= 2, "batch_norm: input must have a channel axis, got ", x.str());
  N = x.size(0);
  C = x.size(1);
  S = C ? x.numel() / (N * C) : 0;
}
}  // namespace

Tensor batchnorm_forward_train(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& rm,
                               Tensor& rv, double momentum, double eps, BNSaved& saved) {
  MC_ROUTE_CUDA(x, batchnorm_forward_train(x, w, b, rm, rv, momentum, eps, saved));
  int64_t N, C, S;
  bn_dims(x, N, C, S);
  MC_CHECK(N * S > 1, "batch_norm: training needs more than one value per channel, got ", x.str());
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  saved.mean = Tensor::empty({C}, x.dtype());
  saved.invstd = Tensor::empty({C}, x.dtype());
  on_fp(x, "batch_norm", [&](auto tag) {
    using T = decltype(tag);
    kernels::cpu::batchnorm_forward_train<T>(x.data<T>(), opt<T>(w), opt<T>(b), y.data<T>(),
                                             rm.defined() ? rm.data<T>() : nullptr,
                                             rv.defined() ? rv.data<T>() : nullptr,
                                             saved.mean.data<T>(), saved.invstd.data<T>(), N, C,
                                             S, momentum, eps);
  });
  return y;
}

Tensor batchnorm_forward_eval(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& rm,
                              const Tensor& rv, double eps) {
  MC_ROUTE_CUDA(x, batchnorm_forward_eval(x, w, b, rm, rv, eps));
  int64_t N, C, S;
  bn_dims(x, N, C, S);
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  on_fp(x, "batch_norm", [&](auto tag) {
    using T = decltype(tag);
    kernels::cpu::batchnorm_forward_eval<T>(x.data<T>(), opt<T>(w), opt<T>(b), rm.data<T>(),
                                            rv.data<T>(), y.data<T>(), N, C, S, eps);
  });
  return y;
}

Tensor batchnorm_backward_train(const Tensor& x, const Tensor& dy, const Tensor& w,
                                const BNSaved& saved, Tensor& dw, Tensor& db) {
  MC_ROUTE_CUDA(x, batchnorm_backward_train(x, dy, w, saved, dw, db));
  int64_t N, C, S;
  bn_dims(x, N, C, S);
  Tensor dx = Tensor::empty(x.shape(), x.dtype());
  dw = Tensor::empty({C}, x.dtype());
  db = Tensor::empty({C}, x.dtype());
  on_fp(x, "batch_norm backward", [&](auto tag) {
    using T = decltype(tag);
    kernels::cpu::batchnorm_backward_train<T>(x.data<T>(), dy.data<T>(), opt<T>(w),
                                              saved.mean.data<T>(), saved.invstd.data<T>(),
                                              dx.data<T>(), dw.data<T>(), db.data<T>(), N, C, S);
  });
  return dx;
}

Tensor batchnorm_backward_eval(const Tensor& x, const Tensor& dy, const Tensor& w, const Tensor& rm,
                               const Tensor& rv, double eps, Tensor& dw, Tensor& db) {
  MC_ROUTE_CUDA(x, batchnorm_backward_eval(x, dy, w, rm, rv, eps, dw, db));
  int64_t N, C, S;
  bn_dims(x, N, C, S);
  Tensor dx = Tensor::empty(x.shape(), x.dtype());
  dw = Tensor::empty({C}, x.dtype());
  db = Tensor::empty({C}, x.dtype());
  on_fp(x, "batch_norm backward", [&](auto tag) {
    using T = decltype(tag);
    kernels::cpu::batchnorm_backward_eval<T>(x.data<T>(), dy.data<T>(), opt<T>(w), rm.data<T>(),
                                             rv.data<T>(), dx.data<T>(), dw.data<T>(),
                                             db.data<T>(), N, C, S, eps);
  });
  return dx;
}

// ---------------- pooling ----------------

Tensor maxpool3d_forward(const Tensor& x, const PoolGeom& g, Tensor& argmax) {
  MC_ROUTE_CUDA(x, maxpool3d_forward(x, g, argmax));
  Shape ys{g.N, g.C, g.out(0), g.out(1), g.out(2)};
  Tensor y = Tensor::empty(ys, x.dtype());
  argmax = Tensor::empty(ys, DType::I64);
  on_fp(x, "max_pool3d", [&](auto tag) {
    using T = decltype(tag);
    kernels::cpu::maxpool3d_forward<T>(g, x.data<T>(), y.data<T>(), argmax.data<int64_t>());
  });
  return y;
}

Tensor maxpool3d_backward(const Tensor& dy, const Tensor& argmax, const PoolGeom& g) {
  MC_ROUTE_CUDA(dy, maxpool3d_backward(dy, argmax, g));
  Tensor dx = Tensor::empty({g.N, g.C, g.D, g.H, g.W}, dy.dtype());
  on_fp(dy, "max_pool3d backward", [&](auto tag) {
    using T = decltype(tag);
    kernels::cpu::maxpool3d_backward<T>(g, dy.data<T>(), argmax.data<int64_t>(), dx.data<T>());
  });
  return dx;
}

Tensor avgpool_global_forward(const Tensor& x) {
  MC_ROUTE_CUDA(x, avgpool_global_forward(x));
  MC_CHECK(x.dim() >= 3, "global_avg_pool: need [N, C, spatial...], got ", x.str());
  const int64_t NC = x.size(0) * x.size(1);
  Tensor y = Tensor::empty({x.size(0), x.size(1)}, x.dtype());
  on_fp(x, "global_avg_pool", [&](auto tag) {
    using T = decltype(tag);
    kernels::cpu::avgpool_global_forward<T>(x.data<T>(), y.data<T>(), NC, NC ? x.numel() / NC : 0);
  });
  return y;
}

Tensor avgpool_global_backward(const Tensor& dy, const Shape& xs) {
  MC_ROUTE_CUDA(dy, avgpool_global_backward(dy, xs));
  Tensor dx = Tensor::empty(xs, dy.dtype());
  const int64_t NC = dy.numel();
  on_fp(dy, "global_avg_pool backward", [&](auto tag) {
    using T = decltype(tag);
    kernels::cpu::avgpool_global_backward<T>(dy.data<T>(), dx.data<T>(), NC, NC ? dx.numel() / NC : 0);
  });
  return dx;
}

// ---------------- linear ----------------

Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& b) {
  same(x, w, "linear", "weight");
  MC_CHECK(x.dim() == 2 && w.dim() == 2 && x.size(1) == w.size(1), "linear: input ", x.str(),
           " does not fit weight ", w.str());
  MC_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == w.size(0)), "linear: bias ", b.str(),
           " does not fit weight ", w.str());
  MC_ROUTE_CUDA(x, linear_forward(x, w, b));
  const int64_t N = x.size(0), In = x.size(1), Out = w.size(0);
  Tensor y = Tensor::empty({N, Out}, x.dtype());
  on_fp(x, "linear", [&](auto tag) {
    using T = decltype(tag);
    T* yp = y.data<T>();
    if (b.defined())
      for (int64_t n = 0; n < N; ++n)
        for (int64_t o = 0; o < Out; ++o) yp[n * Out + o] = b.data<T>()[o];
    kernels::cpu::gemm<T>(false, true, N, Out, In, T(1), x.data<T>(), In, w.data<T>(), In,
                          b.defined() ? T(1) : T(0), yp, Out);
  });
  return y;
}

void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor* dw,
                     Tensor* db) {
  if (x.is_cuda()) {
#ifdef MC_HAVE_CUDA
    cuda_prims::linear_backward(x, w, dy, dx, dw, db);
    return;
#endif
  }
  MC_ROUTE_CUDA(x, linear_backward(x, w, dy, dx, dw, db));
  const int64_t N = x.size(0), In = x.size(1), Out = w.size(0);
  on_fp(x, "linear backward", [&](auto tag) {
    using T = decltype(tag);
    if (dx) {
      *dx = Tensor::empty({N, In}, x.dtype());
      kernels::cpu::gemm<T>(false, false, N, In, Out, T(1), dy.data<T>(), Out, w.data<T>(), In,
                            T(0), dx->data<T>(), In);
    }
    if (dw) {
      *dw = Tensor::empty({Out, In}, x.dtype());
      kernels::cpu::gemm<T>(true, false, Out, In, N, T(1), dy.data<T>(), Out, x.data<T>(), In,
                            T(0), dw->data<T>(), In);
    }
    if (db) {
      *db = Tensor::empty({Out}, x.dtype());
      for (int64_t o = 0; o < Out; ++o) {
        double acc = 0;
        for (int64_t n = 0; n < N; ++n) acc += dy.data<T>()[n * Out + o];
        db->data<T>()[o] = T(acc);
      }
    }
  });
}

// ---------------- elementwise ----------------

namespace {
void same_shape(const Tensor& a, const Tensor& b, const char* op) {
  MC_CHECK(a.shape() == b.shape(), op, ": shapes ", shape_str(a.shape()), " and ",
           shape_str(b.shape()), " differ");
  MC_CHECK(a.dtype() == b.dtype() && a.device() == b.device(), op, ": ", a.str(), " and ",
           b.str(), " differ in dtype or device");
}
}  // namespace

Tensor relu_forward(const Tensor& x) {
  MC_ROUTE_CUDA(x, relu_forward(x));
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  on_fp(x, "relu", [&](auto tag) {
    using T = decltype(tag);
    kernels::cpu::relu_forward<T>(x.data<T>(), y.data<T>(), x.numel());
  });
  return y.set_layout(x.layout());
}

Tensor relu_backward(const Tensor& y, const Tensor& dy) {
  same_shape(y, dy, "relu backward");
  MC_ROUTE_CUDA(y, relu_backward(y, dy));
  Tensor dx = Tensor::empty(y.shape(), y.dtype());
  on_fp(y, "relu backward", [&](auto tag) {
    using T = decltype(tag);
    kernels::cpu::relu_backward<T>(y.data<T>(), dy.data<T>(), dx.data<T>(), y.numel());
  });
  return dx;
}

Tensor add(const Tensor& a, const Tensor& b) {
  same_shape(a, b, "add");
  MC_ROUTE_CUDA(a, add(a, b));
  Tensor y = Tensor::empty(a.shape(), a.dtype());
  on_fp(a, "add", [&](auto tag) {
    using T = decltype(tag);
    kernels::cpu::add<T>(a.data<T>(), b.data<T>(), y.data<T>(), a.numel());
  });
  return y.set_layout(a.layout());
}

void add_(Tensor& y, const Tensor& x) {
  MC_CHECK(y.numel() == x.numel(), "add_: ", y.str(), " += ", x.str());
  MC_CHECK(y.dtype() == x.dtype() && y.device() == x.device(), "add_: ", y.str(), " += ", x.str());
  if (y.is_cuda()) {
#ifdef MC_HAVE_CUDA
    cuda_prims::add_(y, x);
    return;
#endif
  }
  MC_ROUTE_CUDA(y, add_(y, x));
  on_fp(y, "add_", [&](auto tag) {
    using T = decltype(tag);
    kernels::cpu::axpy<T>(T(1), x.data<T>(), y.data<T>(), y.numel());
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  same_shape(a, b, "mul");
  MC_ROUTE_CUDA(a, mul(a, b));
  Tensor y = Tensor::empty(a.shape(), a.dtype());
  on_fp(a, "mul", [&](auto tag) {
    using T = decltype(tag);
    const T *pa = a.data<T>(), *pb = b.data<T>();
    T* py = y.data<T>();
    for (int64_t i = 0; i < a.numel(); ++i) py[i] = pa[i] * pb[i];
  });
  return y;
}

Tensor scale(const Tensor& x, double alpha) {
  MC_ROUTE_CUDA(x, scale(x, alpha));
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  on_fp(x, "scale", [&](auto tag) {
    using T = decltype(tag);
    kernels::cpu::scale<T>(x.data<T>(), T(alpha), y.data<T>(), x.numel());
  });
  return y;
}

Tensor sum_all(const Tensor& x) {
  MC_ROUTE_CUDA(x, sum_all(x));
  Tensor y = Tensor::empty({}, x.dtype());
  on_fp(x, "sum", [&](auto tag) {
    using T = decltype(tag);
    double acc = 0;
    const T* p = x.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) acc += p[i];
    y.data<T>()[0] = T(acc);
  });
  return y;
}

// ---------------- softmax and loss ----------------

Tensor softmax_forward(const Tensor& x, bool log) {
  MC_ROUTE_CUDA(x, softmax_forward(x, log));
  MC_CHECK(x.dim() >= 1, "softmax: needs at least one dimension");
  const int64_t C = x.size(-1), R = C ? x.numel() / C : 0;
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  on_fp(x, "softmax", [&](auto tag) {
    using T = decltype(tag);
    kernels::cpu::softmax_forward<T>(x.data<T>(), y.data<T>(), R, C, log);
  });
  return y;
}

Tensor softmax_backward(const Tensor& y, const Tensor& dy, bool log) {
  same_shape(y, dy, "softmax backward");
  MC_ROUTE_CUDA(y, softmax_backward(y, dy, log));
  const int64_t C = y.size(-1), R = C ? y.numel() / C : 0;
  Tensor dx = Tensor::empty(y.shape(), y.dtype());
  on_fp(y, "softmax backward", [&](auto tag) {
    using T = decltype(tag);
    kernels::cpu::softmax_backward<T>(y.data<T>(), dy.data<T>(), dx.data<T>(), R, C, log);
  });
  return dx;
}

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& offset,
                     const Tensor& weight, bool mean, Tensor* dlogits, double dloss) {
  MC_CHECK(logits.dim() == 2, "cross_entropy: logits must be [N, C], got ", logits.str());
  const int64_t N = logits.size(0), C = logits.size(1);
  MC_CHECK(labels.dtype() == DType::I64 && labels.dim() == 1 && labels.size(0) == N,
           "cross_entropy: labels must be i64[", N, "], got ", labels.str());
  MC_CHECK(N > 0, "cross_entropy: empty batch");
  for (const Tensor* t : {&offset, &weight})
    MC_CHECK(!t->defined() || (t->dim() == 1 && t->size(0) == C && t->dtype() == logits.dtype()),
             "cross_entropy: per-class tensors must be ", dtype_name(logits.dtype()), "[", C,
             "], got ", t->str());
  MC_ROUTE_CUDA(logits, cross_entropy(logits, labels, offset, weight, mean, dlogits, dloss));
  for (int64_t y : labels.to_vector<int64_t>())
    MC_CHECK(y >= 0 && y < C, "cross_entropy: label ", y, " outside [0, ", C, ")");
  Tensor loss = Tensor::empty({}, logits.dtype());
  if (dlogits) *dlogits = Tensor::empty(logits.shape(), logits.dtype());
  on_fp(logits, "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    kernels::cpu::cross_entropy_fused<T>(logits.data<T>(), labels.data<int64_t>(), opt<T>(offset),
                                         opt<T>(weight), N, C, mean, loss.data<T>(),
                                         dlogits ? dlogits->data<T>() : nullptr, T(dloss));
  });
  return loss;
}

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& offset,
                     const Tensor& weight, bool mean, Tensor* dlogits, const Tensor& dloss) {
  MC_CHECK(dloss.numel() == 1 && dloss.device() == logits.device(), "cross_entropy: dloss must be ",
           "one element on ", logits.device().str(), ", got ", dloss.str());
  MC_ROUTE_CUDA(logits, cross_entropy(logits, labels, offset, weight, mean, dlogits, dloss));
  return cross_entropy(logits, labels, offset, weight, mean, dlogits, dloss.item());
}

Tensor broadcast_scalar(const Tensor& s, const Shape& shape, double alpha) {
  MC_CHECK(s.numel() == 1, "broadcast_scalar: needs one element, got ", s.str());
  MC_ROUTE_CUDA(s, broadcast_scalar(s, shape, alpha));
  return Tensor::full(shape, s.item() * alpha, s.dtype());
}

}  // namespace mc::prims
