// Primitives: forward and backward of every op on Tensors, for any device. Each checks dtype,
// shape and device, allocates its outputs on the inputs' device, and launches through
// engine/dispatch.h: our kernels (kernels/<family>.h, CPU twin or CUDA) or, on the GPU, cuDNN and
// cuBLAS (engine/cuda/dnn.h). No autograd here: engine/ops.h builds the differentiable ops.
//
// Layout: a 5-D activation's memory order is its tensor's layout tag (NCDHW or NDHWC); every op
// takes it from its input and gives its output the same tag, on both backends (the CPU computes
// NDHWC exactly as NCDHW). Nothing reads a process-wide layout. Tags on tensors of other ranks
// mean nothing.
#pragma once
#include <array>

#include "engine/tensor.h"
#include "kernels/conv3d.h"
#include "kernels/elementwise.h"
#include "kernels/pool.h"

namespace mc::prims {

using kernels::ConvGeom;
using kernels::PoolGeom;
using kernels::Pointwise;

// x [N,C,D,H,W], w [O, C/groups, kd, kh, kw], b [O] or undefined.
Tensor conv3d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const ConvGeom& g);
Tensor conv3d_backward_data(const Tensor& dy, const Tensor& w, const ConvGeom& g);
// Returns dw; writes db when `db` is non-null.
Tensor conv3d_backward_weight(const Tensor& x, const Tensor& dy, const ConvGeom& g, Tensor* db);

struct BNSaved {
  Tensor mean, invstd;
  double eps = 1e-5;    // the forward's
  int cudnn_mode = -1;  // the CUDA forward's cuDNN batch-norm mode (its backward runs the same)
};
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

// argmax: i32, the input-plane index of each window's maximum, in x's layout (kernels/pool.h).
Tensor maxpool3d_forward(const Tensor& x, const PoolGeom& g, Tensor& argmax);
Tensor maxpool3d_backward(const Tensor& dy, const Tensor& argmax, const PoolGeom& g);
// Average pool, count_include_pad=False (g.ceil for ceil_mode); dx in dy's layout.
Tensor avgpool3d_forward(const Tensor& x, const PoolGeom& g);
Tensor avgpool3d_backward(const Tensor& dy, const PoolGeom& g);
// y[n, c, ...] = x[n, c, ...] * gate[n, c] (kernels/channel_scale.h): gate [N, C] in x's dtype.
Tensor channel_scale(const Tensor& x, const Tensor& gate);
// d(gate)[n, c] = sum over the spatial axes of dy * x ([N, C]); dy is taken in x's layout.
Tensor channel_scale_backward_gate(const Tensor& x, const Tensor& dy);
Tensor avgpool_global_forward(const Tensor& x);  // [N,C,...] -> [N,C]
// dx of shape x_shape in x_layout: the forward input's, which its autograd node records.
Tensor avgpool_global_backward(const Tensor& dy, const Shape& x_shape, Layout x_layout);

// x [N, in], w [out, in], b [out] or undefined.
Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& b);
void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor* dw,
                     Tensor* db);

// y = op(a, b, alpha) elementwise (kernels/elementwise.h); b undefined for one-input ops, else
// a's shape, dtype and device (converted to a's layout when it differs). y takes a's layout.
Tensor pointwise(Pointwise op, const Tensor& a, const Tensor& b = Tensor(), double alpha = 0);
Tensor relu_forward(const Tensor& x);
Tensor relu_backward(const Tensor& y, const Tensor& dy);
Tensor add(const Tensor& a, const Tensor& b);
void add_(Tensor& y, const Tensor& x);  // y += x
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, double alpha);
Tensor sum_all(const Tensor& x);  // scalar, accumulated in double in a fixed order
// alpha * s[0] in every element of a new tensor of `shape` (s: one element, read where it
// lives: no host sync): the backward of sum and mean.
Tensor broadcast_scalar(const Tensor& s, const Shape& shape, double alpha);
// A copy of x in memory layout `layout` and dtype `dt` (one pass); x itself when nothing changes.
// Only 5-D tensors change memory order; others keep their data and tag.
Tensor to_layout(const Tensor& x, Layout layout, DType dt);
inline Tensor to_layout(const Tensor& x, Layout layout) { return to_layout(x, layout, x.dtype()); }

Tensor softmax_forward(const Tensor& x, bool log);  // over the last dim
Tensor softmax_backward(const Tensor& y, const Tensor& dy, bool log);

// Fused cross-entropy family (kernels/loss.h). Per-class terms are named, so they cannot be
// swapped unseen: weight and offset each [C] in the logits' dtype, or undefined.
struct CrossEntropyArgs {
  Tensor weight, offset;
  bool mean = true;
};
// Returns the scalar loss; when dlogits is non-null fills it with d(loss)/d(logits) * dloss,
// dloss a one-element tensor of the logits' dtype on their device (autograd's path: a backward
// never reads the loss gradient on the host, so it needs no sync and is CUDA-graph capturable).
// Both overloads check the same things. A label outside [0, C) is an error: at once on the CPU;
// on the GPU the kernel raises cuda::DeviceFlag::BadLabel (check_device_flags in
// engine/device.h; at once with MC_SYNC_CHECK=1) and the row adds nothing.
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const CrossEntropyArgs& a,
                     Tensor* dlogits, const Tensor& dloss);
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const CrossEntropyArgs& a,
                     Tensor* dlogits = nullptr, double dloss = 1.0);

}  // namespace mc::prims
