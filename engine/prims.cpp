// Convolution, batch norm, pooling and the dense layer (engine/prims.h). CUDA convolution,
// batch norm and linear are cuDNN / cuBLAS (engine/cuda/dnn.h); everything else is our kernels
// through MC_DISPATCH. The pointwise ops, reductions, layouts, softmax and the loss are in
// engine/prims_pointwise.cpp.
#include "engine/prims.h"

#include "engine/cuda/dnn.h"
#include "engine/prims_util.h"
#include "kernels/batchnorm.h"
#include "kernels/linear.h"

namespace mc::prims {
using namespace detail;

namespace {

// Weights may be f32 masters under bf16 activations (the GPU casts them), and indices i64.
void same(const Tensor& a, const Tensor& b, const char* op, const char* what) {
  if (!b.defined()) return;
  same_device(a, b, op, what);
  MC_CHECK(a.dtype() == b.dtype() || b.dtype() == DType::I64 || b.dtype() == DType::F32, op, ": ",
           what, " is ", dtype_name(b.dtype()), ", input is ", dtype_name(a.dtype()));
}

}  // namespace

// ---------------- convolution ----------------

Tensor conv3d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const ConvGeom& g) {
  same(x, w, "conv3d", "weight");
  same(x, b, "conv3d", "bias");
  if (x.is_cuda()) return on_cuda(x.device(), "conv3d", [&] { return cuda::conv3d_forward(x, w, b, g); });
  cpu_same_dtype(x, {&w, &b}, "conv3d", "parameter");
  Tensor y = empty_like_device(x, {g.N, g.O, g.oD(), g.oH(), g.oW()}, x.dtype(), layout_of(x));
  kernels::cpu::conv3d_forward(g, x.raw(), w.raw(), opt(b), y.raw(), kdt(x.dtype()), klay(x),
                               nullptr);
  return y;
}

Tensor conv3d_backward_data(const Tensor& dy, const Tensor& w, const ConvGeom& g) {
  same(dy, w, "conv3d backward", "weight");
  if (dy.is_cuda())
    return on_cuda(dy.device(), "conv3d backward", [&] { return cuda::conv3d_backward_data(dy, w, g); });
  cpu_same_dtype(dy, {&w}, "conv3d backward", "weight");
  Tensor dx = empty_like_device(dy, {g.N, g.C, g.D, g.H, g.W}, dy.dtype(), layout_of(dy));
  kernels::cpu::conv3d_backward_data(g, dy.raw(), w.raw(), dx.raw(), kdt(dy.dtype()), klay(dy),
                                     nullptr);
  return dx;
}

Tensor conv3d_backward_weight(const Tensor& x, const Tensor& dy, const ConvGeom& g, Tensor* db) {
  same_device(x, dy, "conv3d backward", "output gradient");
  if (x.is_cuda())
    return on_cuda(x.device(), "conv3d backward",
                   [&] { return cuda::conv3d_backward_weight(x, dy, g, db); });
  cpu_same_dtype(x, {&dy}, "conv3d backward", "output gradient");
  // Both activations in x's layout (the kernel reads them in one memory order).
  const Tensor dyl = to_layout(dy, layout_of(x));
  Tensor dw = Tensor::empty({g.O, g.C / g.groups, g.k[0], g.k[1], g.k[2]}, x.dtype());
  if (db) *db = Tensor::empty({g.O}, x.dtype());
  kernels::cpu::conv3d_backward_weight(g, x.raw(), dyl.raw(), dw.raw(), db ? db->raw() : nullptr,
                                       kdt(x.dtype()), klay(x), nullptr);
  return dw;
}

// ---------------- batch norm ----------------

namespace {

struct BnDims {
  int64_t N, C, S;
};
BnDims bn_dims(const Tensor& x) {
  MC_CHECK(x.dim() >= 2, "batch_norm: input must have a channel axis, got ", x.str());
  const int64_t N = x.size(0), C = x.size(1);
  return {N, C, N * C ? x.numel() / (N * C) : 0};
}

// Per-channel tensors on the CPU: C values of x's dtype on x's device.
void bn_params(const Tensor& x, std::initializer_list<const Tensor*> ts, const char* op) {
  const int64_t C = x.size(1);
  for (const Tensor* t : ts) {
    same_device(x, *t, op, "per-channel tensor");
    MC_CHECK(!t->defined() || t->numel() == C, op, ": per-channel tensor ", t->str(),
             " does not fit ", C, " channels of ", x.str());
  }
  cpu_same_dtype(x, ts, op, "per-channel tensor");
}

}  // namespace

Tensor batchnorm_forward_train(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& rm,
                               Tensor& rv, double momentum, double eps, BNSaved& saved) {
  const BnDims d = bn_dims(x);
  MC_CHECK(d.N * d.S > 1, "batch_norm: training needs more than one value per channel, got ",
           x.str());
  MC_CHECK(rm.defined() == rv.defined(), "batch_norm: running mean and variance go together");
  bn_params(x, {&w, &b, &rm, &rv}, "batch_norm");
  if (x.is_cuda())
    return on_cuda(x.device(), "batch_norm", [&] {
      return cuda::batchnorm_forward_train(x, w, b, rm, rv, momentum, eps, saved);
    });
  saved.eps = eps;
  Tensor y = empty_like_device(x, x.shape(), x.dtype(), layout_of(x));
  saved.mean = Tensor::empty({d.C}, x.dtype());
  saved.invstd = Tensor::empty({d.C}, x.dtype());
  kernels::cpu::batchnorm_forward_train(x.raw(), opt(w), opt(b), y.raw(), opt_mut(rm), opt_mut(rv),
                                        saved.mean.raw(), saved.invstd.raw(), kdt(x.dtype()),
                                        klay(x), d.N, d.C, d.S, momentum, eps, nullptr);
  return y;
}

Tensor batchnorm_forward_eval(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& rm,
                              const Tensor& rv, double eps) {
  const BnDims d = bn_dims(x);
  MC_CHECK(rm.defined() && rv.defined(), "batch_norm: evaluation needs running statistics");
  bn_params(x, {&w, &b, &rm, &rv}, "batch_norm");
  if (x.is_cuda())
    return on_cuda(x.device(), "batch_norm",
                   [&] { return cuda::batchnorm_forward_eval(x, w, b, rm, rv, eps); });
  Tensor y = empty_like_device(x, x.shape(), x.dtype(), layout_of(x));
  kernels::cpu::batchnorm_forward_eval(x.raw(), opt(w), opt(b), rm.raw(), rv.raw(), y.raw(),
                                       kdt(x.dtype()), klay(x), d.N, d.C, d.S, eps, nullptr);
  return y;
}

Tensor batchnorm_backward_train(const Tensor& x, const Tensor& dy_in, const Tensor& w,
                                const BNSaved& saved, Tensor& dw, Tensor& db) {
  const BnDims d = bn_dims(x);
  same_device(x, dy_in, "batch_norm backward", "output gradient");
  MC_CHECK(dy_in.shape() == x.shape(), "batch_norm backward: gradient ", dy_in.str(),
           " for input ", x.str());
  bn_params(x, {&w, &saved.mean, &saved.invstd}, "batch_norm backward");
  if (x.is_cuda())
    return on_cuda(x.device(), "batch_norm backward", [&] {
      return cuda::batchnorm_backward_train(x, dy_in, w, saved, dw, db);
    });
  cpu_same_dtype(x, {&dy_in}, "batch_norm backward", "output gradient");
  const Tensor dy = to_layout(dy_in, layout_of(x));
  Tensor dx = empty_like_device(x, x.shape(), x.dtype(), layout_of(x));
  dw = Tensor::empty({d.C}, x.dtype());
  db = Tensor::empty({d.C}, x.dtype());
  kernels::cpu::batchnorm_backward_train(x.raw(), dy.raw(), opt(w), saved.mean.raw(),
                                         saved.invstd.raw(), dx.raw(), dw.raw(), db.raw(),
                                         kdt(x.dtype()), klay(x), d.N, d.C, d.S, nullptr);
  return dx;
}

Tensor batchnorm_backward_eval(const Tensor& x, const Tensor& dy_in, const Tensor& w,
                               const Tensor& rm, const Tensor& rv, double eps, Tensor& dw,
                               Tensor& db) {
  const BnDims d = bn_dims(x);
  same_device(x, dy_in, "batch_norm backward", "output gradient");
  MC_CHECK(dy_in.shape() == x.shape(), "batch_norm backward: gradient ", dy_in.str(),
           " for input ", x.str());
  MC_CHECK(rm.defined() && rv.defined(), "batch_norm backward: needs running statistics");
  bn_params(x, {&w, &rm, &rv}, "batch_norm backward");
  if (x.is_cuda())
    return on_cuda(x.device(), "batch_norm backward", [&] {
      return cuda::batchnorm_backward_eval(x, dy_in, w, rm, rv, eps, dw, db);
    });
  cpu_same_dtype(x, {&dy_in}, "batch_norm backward", "output gradient");
  const Tensor dy = to_layout(dy_in, layout_of(x));
  Tensor dx = empty_like_device(x, x.shape(), x.dtype(), layout_of(x));
  dw = Tensor::empty({d.C}, x.dtype());
  db = Tensor::empty({d.C}, x.dtype());
  kernels::cpu::batchnorm_backward_eval(x.raw(), dy.raw(), opt(w), rm.raw(), rv.raw(), dx.raw(),
                                        dw.raw(), db.raw(), kdt(x.dtype()), klay(x), d.N, d.C,
                                        d.S, eps, nullptr);
  return dx;
}

// ---------------- pooling ----------------

Tensor maxpool3d_forward(const Tensor& x, const PoolGeom& g, Tensor& argmax) {
  MC_CHECK(x.dim() == 5, "max_pool3d: input must be [N, C, D, H, W], got ", x.str());
  const Shape ys{g.N, g.C, g.out(0), g.out(1), g.out(2)};
  Tensor y = empty_like_device(x, ys, x.dtype(), x.layout());
  argmax = empty_like_device(x, ys, DType::I32, x.layout());
  MC_DISPATCH(x.device(), maxpool3d_forward, g, x.raw(), y.raw(), argmax.data<int32_t>(),
              kdt(x.dtype()), klay(x));
  return y;
}

Tensor maxpool3d_backward(const Tensor& dy_in, const Tensor& argmax, const PoolGeom& g) {
  same_device(dy_in, argmax, "max_pool3d backward", "argmax");
  MC_CHECK(argmax.dtype() == DType::I32 && argmax.shape() == dy_in.shape(),
           "max_pool3d backward: argmax must be the i32 tensor of the forward (", dy_in.str(),
           "), got ", argmax.str());
  const Tensor dy = to_layout(dy_in, argmax.layout());  // argmax carries the forward's layout
  Tensor dx = empty_like_device(dy, {g.N, g.C, g.D, g.H, g.W}, dy.dtype(), dy.layout());
  MC_DISPATCH(dy.device(), maxpool3d_backward, g, dy.raw(), argmax.data<int32_t>(), dx.raw(),
              kdt(dy.dtype()), klay(dy));
  return dx;
}

Tensor avgpool_global_forward(const Tensor& x) {
  MC_CHECK(x.dim() >= 3, "global_avg_pool: need [N, C, spatial...], got ", x.str());
  const int64_t N = x.size(0), C = x.size(1), S = N * C ? x.numel() / (N * C) : 0;
  Tensor y = empty_like_device(x, {N, C}, x.dtype());
  MC_DISPATCH(x.device(), avgpool_global_forward, x.raw(), y.raw(), kdt(x.dtype()), N, C, S,
              klay(x));
  return y;
}

Tensor avgpool_global_backward(const Tensor& dy, const Shape& xs, Layout xl) {
  MC_CHECK(xs.size() >= 3 && dy.numel() == xs[0] * xs[1], "global_avg_pool backward: gradient ",
           dy.str(), " does not fit input shape ", shape_str(xs));
  const Layout lay = xs.size() == 5 ? xl : Layout::NCDHW;
  const int64_t N = xs[0], C = xs[1], S = N * C ? numel_of(xs) / (N * C) : 0;
  Tensor dx = empty_like_device(dy, xs, dy.dtype(), lay);
  MC_DISPATCH(dy.device(), avgpool_global_backward, dy.raw(), dx.raw(), kdt(dy.dtype()), N, C, S,
              klayout(lay));
  return dx;
}

// ---------------- linear ----------------

Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& b) {
  same(x, w, "linear", "weight");
  same(x, b, "linear", "bias");
  MC_CHECK(x.dim() == 2 && w.dim() == 2 && x.size(1) == w.size(1), "linear: input ", x.str(),
           " does not fit weight ", w.str());
  MC_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == w.size(0)), "linear: bias ", b.str(),
           " does not fit weight ", w.str());
  if (x.is_cuda()) return on_cuda(x.device(), "linear", [&] { return cuda::linear_forward(x, w, b); });
  cpu_same_dtype(x, {&w, &b}, "linear", "parameter");
  const int64_t N = x.size(0), In = x.size(1), Out = w.size(0);
  Tensor y = Tensor::empty({N, Out}, x.dtype());
  kernels::cpu::linear_forward(x.raw(), w.raw(), opt(b), y.raw(), kdt(x.dtype()), N, In, Out,
                               nullptr);
  return y;
}

void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor* dw,
                     Tensor* db) {
  same(x, w, "linear backward", "weight");
  same_device(x, dy, "linear backward", "output gradient");
  MC_CHECK(x.dim() == 2 && w.dim() == 2 && dy.dim() == 2 && dy.size(0) == x.size(0) &&
               dy.size(1) == w.size(0),
           "linear backward: gradient ", dy.str(), " does not fit input ", x.str(), " and weight ",
           w.str());
  if (x.is_cuda())
    return on_cuda(x.device(), "linear backward",
                   [&] { cuda::linear_backward(x, w, dy, dx, dw, db); });
  cpu_same_dtype(x, {&w, &dy}, "linear backward", "operand");
  const int64_t N = x.size(0), In = x.size(1), Out = w.size(0);
  if (dx) *dx = Tensor::empty({N, In}, x.dtype());
  if (dw) *dw = Tensor::empty({Out, In}, x.dtype());
  if (db) *db = Tensor::empty({Out}, x.dtype());
  kernels::cpu::linear_backward(x.raw(), w.raw(), dy.raw(), dx ? dx->raw() : nullptr,
                                dw ? dw->raw() : nullptr, db ? db->raw() : nullptr,
                                kdt(x.dtype()), N, In, Out, nullptr);
}

}  // namespace mc::prims
