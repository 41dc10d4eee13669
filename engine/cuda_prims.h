// The CUDA side of engine/prims.h: same functions, same signatures, tensors on one GPU.
// prims.cpp routes here when the first tensor argument lives on a GPU. Everything runs on
// cuda::stream(device); no op syncs with the host or calls cudaMalloc once warmed up.
//
// Precision (engine/precision.h): in bf16 mode convolutions take and give bf16 activations
// (an f32 input is cast on the way in, f32 weights are cast per call) and return f32 weight
// gradients; batch norm takes bf16 activations with f32 parameters and statistics; linear,
// softmax and the loss compute in f32. Elementwise ops keep their input's dtype (f32 or bf16)
// and layout tag (NCDHW or NDHWC).
//
// Files: cuda_conv_cuda.cpp (conv), cuda_bn_cuda.cpp (batch norm), cuda_pool_cuda.cpp (pooling),
// cuda_linear_cuda.cpp (linear), cuda_elementwise_cuda.cpp (the rest).
#pragma once
#include "engine/prims.h"

namespace mc::cuda_prims {

using kernels::ConvGeom;
using kernels::PoolGeom;
using prims::BNSaved;

Tensor conv3d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const ConvGeom& g);
Tensor conv3d_backward_data(const Tensor& dy, const Tensor& w, const ConvGeom& g);
Tensor conv3d_backward_weight(const Tensor& x, const Tensor& dy, const ConvGeom& g, Tensor* db);

Tensor batchnorm_forward_train(const Tensor& x, const Tensor& w, const Tensor& b,
                               Tensor& running_mean, Tensor& running_var, double momentum,
                               double eps, BNSaved& saved);
Tensor batchnorm_forward_eval(const Tensor& x, const Tensor& w, const Tensor& b,
                              const Tensor& running_mean, const Tensor& running_var, double eps);
Tensor batchnorm_backward_train(const Tensor& x, const Tensor& dy, const Tensor& w,
                                const BNSaved& saved, Tensor& dw, Tensor& db);
Tensor batchnorm_backward_eval(const Tensor& x, const Tensor& dy, const Tensor& w,
                               const Tensor& running_mean, const Tensor& running_var, double eps,
                               Tensor& dw, Tensor& db);

// argmax: i32, the input-plane index (d*H + h)*W + w of each window's maximum (CPU: i64).
Tensor maxpool3d_forward(const Tensor& x, const PoolGeom& g, Tensor& argmax);
Tensor maxpool3d_backward(const Tensor& dy, const Tensor& argmax, const PoolGeom& g);
Tensor avgpool_global_forward(const Tensor& x);
// The layout of dx is not in the signature: NDHWC when channels_last() is on (see report of
// issue #3: prims should pass the input's layout).
Tensor avgpool_global_backward(const Tensor& dy, const Shape& x_shape);

Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& b);
void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor* dw,
                     Tensor* db);

Tensor relu_forward(const Tensor& x);
Tensor relu_backward(const Tensor& y, const Tensor& dy);
Tensor add(const Tensor& a, const Tensor& b);
void add_(Tensor& y, const Tensor& x);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, double alpha);
Tensor sum_all(const Tensor& x);

Tensor softmax_forward(const Tensor& x, bool log);
Tensor softmax_backward(const Tensor& y, const Tensor& dy, bool log);

// Labels are validated on the device: one outside [0, C) raises cuda::DeviceFlag::BadLabel
// (checked by cuda::check_device_flags, or at once with MC_SYNC_CHECK=1) and adds nothing.
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& offset,
                     const Tensor& weight, bool mean, Tensor* dlogits, double dloss);
// Same with d(loss) as a device scalar (f32, one element): what autograd should pass so that
// backward never reads the loss gradient on the host.
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& offset,
                     const Tensor& weight, bool mean, Tensor* dlogits, const Tensor& dloss);

// ---- beyond prims.h ----
// alpha * s[0] in every element of a new tensor of `shape` (s: one element, on the device):
// the backward of sum/mean without reading the gradient on the host.
Tensor broadcast_scalar(const Tensor& s, const Shape& shape, double alpha);
// A copy of x (5-D) in the given memory layout and dtype (cast and transpose in one pass).
Tensor to_layout(const Tensor& x, Layout layout, DType dt);
inline Tensor to_layout(const Tensor& x, Layout layout) { return to_layout(x, layout, x.dtype()); }

}  // namespace mc::cuda_prims
