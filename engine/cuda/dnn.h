// The prims that cuDNN and cuBLAS compute on the GPU (engine/cuda/conv.cpp, bn.cpp, linear.cpp).
// engine/prims.cpp calls them for CUDA tensors after its device-independent checks; every other
// prim runs our own kernels through engine/dispatch.h. Same contracts as engine/prims.h; all work
// is enqueued on cuda::stream(device), with no host sync and, once warm, no cudaMalloc.
//
// Precision (engine/precision.h): in bf16 mode convolutions take and give bf16 activations
// (an f32 input is cast on the way in, f32 weights are cast per call) and return f32 weight
// gradients; batch norm takes bf16 activations with f32 parameters and statistics; linear
// computes in f32 (a bf16 input is widened, its gradient narrowed back). Layout: every op keeps
// its activation input's layout tag (NCDHW or NDHWC); nothing reads a process-wide layout.
#pragma once
#include "engine/prims.h"

namespace mc::cuda {

using kernels::ConvGeom;

Tensor conv3d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const ConvGeom& g);
Tensor conv3d_backward_data(const Tensor& dy, const Tensor& w, const ConvGeom& g);
Tensor conv3d_backward_weight(const Tensor& x, const Tensor& dy, const ConvGeom& g, Tensor* db);

Tensor batchnorm_forward_train(const Tensor& x, const Tensor& w, const Tensor& b,
                               Tensor& running_mean, Tensor& running_var, double momentum,
                               double eps, prims::BNSaved& saved);
Tensor batchnorm_forward_eval(const Tensor& x, const Tensor& w, const Tensor& b,
                              const Tensor& running_mean, const Tensor& running_var, double eps);
Tensor batchnorm_backward_train(const Tensor& x, const Tensor& dy, const Tensor& w,
                                const prims::BNSaved& saved, Tensor& dw, Tensor& db);
Tensor batchnorm_backward_eval(const Tensor& x, const Tensor& dy, const Tensor& w,
                               const Tensor& running_mean, const Tensor& running_var, double eps,
                               Tensor& dw, Tensor& db);

Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& b);
void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, Tensor* dw,
                     Tensor* db);

}  // namespace mc::cuda
