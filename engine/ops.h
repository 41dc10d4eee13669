// Differentiable ops (the public math API). Each records a Node when an input requires grad.
// Shapes follow PyTorch: conv3d on [N,C,D,H,W], linear on [N, in], softmax over the last dim.
#pragma once
#include <array>

#include "engine/autograd.h"
#include "engine/random.h"
#include "engine/tensor.h"
#include "kernels/elementwise.h"

namespace mc {

struct Conv3dOpts {
  std::array<int64_t, 3> stride{1, 1, 1}, padding{0, 0, 0}, dilation{1, 1, 1};
  int64_t groups = 1;
};
Tensor conv3d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv3dOpts& o = {});

// training: batch statistics and running-stat update (momentum, unbiased running var);
// otherwise the running statistics. weight/bias may be undefined (affine=False).
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& running_mean,
                  Tensor& running_var, bool training, double momentum = 0.1, double eps = 1e-5);

// y = f(x) for a one-input pointwise op of kernels/elementwise.h, with its backward
// dx = g(saved, dy, alpha) (g a two-input op; saved is y when backward_uses_output, else x).
Tensor pointwise_op(kernels::Pointwise f, kernels::Pointwise g, bool backward_uses_output,
                    const Tensor& x, double alpha = 0);
Tensor relu(const Tensor& x);
// Elementwise Huber of x with threshold delta (> 0), and x^2: the regression losses' pieces.
Tensor huber(const Tensor& x, double delta);
Tensor square(const Tensor& x);
Tensor relu6(const Tensor& x);    // min(max(x, 0), 6)
Tensor silu(const Tensor& x);     // x * sigmoid(x) (swish)
Tensor sigmoid(const Tensor& x);  // 1 / (1 + e^-x)
Tensor add(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, double alpha);
Tensor sum(const Tensor& x);
Tensor mean(const Tensor& x);
void add_(Tensor& y, const Tensor& x);  // in place, not recorded

Tensor max_pool3d(const Tensor& x, std::array<int64_t, 3> kernel, std::array<int64_t, 3> stride,
                  std::array<int64_t, 3> padding);
Tensor global_avg_pool3d(const Tensor& x);  // [N,C,D,H,W] -> [N,C]
// PyTorch's AvgPool3d(kernel, stride, padding 0, ceil_mode, count_include_pad=False).
Tensor avg_pool3d(const Tensor& x, std::array<int64_t, 3> kernel, std::array<int64_t, 3> stride,
                  bool ceil_mode);
// x [N, C, ...] * gate [N, C] broadcast over the spatial axes (squeeze-and-excitation);
// differentiable in both.
Tensor channel_mul(const Tensor& x, const Tensor& gate);
// Stochastic depth (timm's drop_path): in training each sample is zeroed with probability p
// and the kept ones scaled by 1 / (1 - p); the mask comes from `g` (seeded: runs repeat). x itself
// when not training or p == 0.
Tensor drop_path(const Tensor& x, double p, bool training, Generator& g);
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias);
// x in memory layout `layout` (engine/precision.h's ComputeMode says which a program uses); x
// itself when it already is. The gradient goes back in x's layout.
Tensor to_layout(const Tensor& x, Layout layout);
// Not for NDHWC 5-D tensors (their memory order is not the logical one): to_layout first.
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor flatten(const Tensor& x, int64_t start_dim = 1);
Tensor softmax(const Tensor& x);
Tensor log_softmax(const Tensor& x);

// Mean (or sum) cross-entropy of logits [N,C] against int64 labels [N], with optional
// per-class logit offset (logit adjustment) and per-class weights (weighted mean, as PyTorch).
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& weight = Tensor(),
                     const Tensor& offset = Tensor(), bool mean = true);

}  // namespace mc
