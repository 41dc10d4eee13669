// Primitives: forward and backward of every op on Tensors, dispatched by device (CPU reference
// kernels in kernels/*_cpu.cpp; CUDA through cuDNN, cuBLAS and kernels/*.cu, declared in
// engine/cuda_prims.h). No autograd here: engine/ops.h builds the differentiable ops on these.
// Each checks dtype, shape and device, and allocates its outputs.
#pragma once
#include <array>

#include "engine/tensor.h"
#include "kernels/conv3d.h"
#include "kernels/pool.h"

namespace mc::prims {

using kernels::ConvGeom;
using kernels::PoolGeom;

// x [N,C,D,H,W], w [O, C/groups, kd, kh, kw], b [O] or undefined.
Tensor conv3d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const ConvGeom& g);
Tensor conv3d_backward_data(const Tensor& dy, const Tensor& w, const ConvGeom& g);
// Returns dw; writes db when `db` is non-null.
Tensor conv3d_backward_weight(const Tensor& x, const Tensor& dy, const ConvGeom& g, Tensor* db);

struct BNSaved { Tensor mean, invstd; };
// Training: batch statistics; updates running stats in place when defined.
Tensor batchnorm_forward_train(const Tensor& x, const Tensor& w, const Tensor& b,
                               Tensor& running_mean, Tensor& running_var, double momentum,
                               double eps, BNSaved& saved);
Tensor batchnorm_forward_eval(const Tensor& x, const Tensor& w, const Tensor& b,
                              const Tensor& running_mean, const Tensor& running_var, double eps);
// Returns dx; writes dw, db.
Tensor batchnorm_backward_train(const Tensor& x, const Tensor& dy, const Tensor& w,
                                const BNSaved& saved, Tensor& dw, Tensor& db);
Tensor batchnorm_backward_eval(const Tensor& x, const Tensor& dy, const Tensor& w,
                               const Tensor& running_mean, const Tensor& running_var, double eps,
                               Tensor& dw, Tensor& db);

Tensor maxpool3d_forward(const Tensor& x, const PoolGeom& g, Tensor& argmax);
Tensor maxpool3d_backward(const Tensor& dy, const Tensor& argmax, const PoolGeom& g);
Tensor avgpool_global_forward(const Tensor& x);                   // [N,C,...] -> [N,C]
Tensor avgpool_global_backward(const Tensor& dy, const Shape& x_shape);

// x [N, in], w [out, in], b [out] or undefined.
Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& b);
void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor* dw,
                     Tensor* db);

Tensor relu_forward(const Tensor& x);
Tensor relu_backward(const Tensor& y, const Tensor& dy);
Tensor add(const Tensor& a, const Tensor& b);
void add_(Tensor& y, const Tensor& x);  // y += x
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, double alpha);
Tensor sum_all(const Tensor& x);         // scalar, accumulated in double

Tensor softmax_forward(const Tensor& x, bool log);  // over the last dim
Tensor softmax_backward(const Tensor& y, const Tensor& dy, bool log);

// Fused cross-entropy family (kernels/loss.h): returns the scalar loss; when dlogits is
// non-null fills it with d(loss)/d(logits) * dloss. offset, weight: [C] or undefined.
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& offset,
                     const Tensor& weight, bool mean, Tensor* dlogits, double dloss);
// The same with d(loss) as a one-element tensor on the logits' device: autograd's path, so a
// backward never reads the loss gradient on the host (no sync; CUDA-graph capturable).
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& offset,
                     const Tensor& weight, bool mean, Tensor* dlogits, const Tensor& dloss);
// alpha * s[0] in every element of a new tensor of `shape` (s: one element): sum's backward.
Tensor broadcast_scalar(const Tensor& s, const Shape& shape, double alpha);

}  // namespace mc::prims
