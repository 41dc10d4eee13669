// Fused cross-entropy family over N x C logits: one pass gives the loss and d(loss)/d(logits).
//
//   z_i   = logits_i + offset          (offset: per-class, may be null; logit adjustment uses
//                                       tau * log(prior), Balanced Softmax log(n_y))
//   l_i   = w[y_i] * (logsumexp(z_i) - z_i[y_i])   (w: per-class weights, may be null = 1)
//   loss  = sum_i l_i / sum_i w[y_i]   (reduction mean: PyTorch's weighted mean)
//         = sum_i l_i                  (reduction sum)
//   dlogits_i = scale * w[y_i] * (softmax(z_i) - onehot(y_i)), scale = dloss (/ sum w for mean)
//
// Labels outside [0, C) are an error the caller checks first (CPU) or reports via `bad_label`.
#pragma once
#include <cstdint>

#include "kernels/common.h"

namespace mc::kernels {
namespace cpu {
// Writes loss[0]; when dlogits is non-null also the gradient scaled by dloss.
template <class T>
void cross_entropy_fused(const T* logits, const int64_t* labels, const T* offset, const T* weight,
                         int64_t N, int64_t C, bool mean, T* loss, T* dlogits, T dloss);
}  // namespace cpu
namespace cuda {
// Same contract on device pointers; dloss is a device scalar (no host sync, graph capturable).
// A label outside [0, C) sets *bad_label to 1 (device int, may be null) and contributes nothing.
void cross_entropy_fused(const float* logits, const int64_t* labels, const float* offset,
                         const float* weight, int64_t N, int64_t C, bool mean, float* loss,
                         float* dlogits, const float* dloss, int* bad_label, Stream s);
}  // namespace cuda
}  // namespace mc::kernels
