// Fused cross-entropy family over N x C logits: one pass gives the loss and d(loss)/d(logits).
//
//   z_i   = logits_i + offset          (offset: per-class, may be null; logit adjustment uses
//                                       tau * log(prior), Balanced Softmax log(n_y))
//   l_i   = w[y_i] * (logsumexp(z_i) - z_i[y_i])   (w: per-class weights, may be null = 1)
//   loss  = sum_i l_i / sum_i w[y_i]   (reduction mean: PyTorch's weighted mean)
//         = sum_i l_i                  (reduction sum)
//   dlogits_i = scale * w[y_i] * (softmax(z_i) - onehot(y_i)), scale = dloss (/ sum w for mean)
//
// logits, offset, weight, loss, dlogits and dloss have dtype `dt` (CPU: f32 or f64; CUDA: f32);
// dloss is one element in the backend's memory (on CUDA a device scalar: no host sync, graph
// capturable), read only when dlogits is non-null. A label outside [0, C) sets *bad_label to 1
// (an int in the backend's memory, may be null), contributes nothing and gets a zero gradient
// row. `work` holds cross_entropy_workspace(N, C) bytes of the backend's memory (partial sums:
// two calls on two streams never share scratch).
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/common.h"

namespace mc::kernels {
namespace cpu {
size_t cross_entropy_workspace(int64_t N, int64_t C);
void cross_entropy_fused(const void* logits, const int64_t* labels, const void* offset,
                         const void* weight, int dt, int64_t N, int64_t C, bool mean, void* loss,
                         void* dlogits, const void* dloss, int* bad_label, void* work,
                         size_t work_bytes, Stream s);
}  // namespace cpu
namespace cuda {
size_t cross_entropy_workspace(int64_t N, int64_t C);
void cross_entropy_fused(const void* logits, const int64_t* labels, const void* offset,
                         const void* weight, int dt, int64_t N, int64_t C, bool mean, void* loss,
                         void* dlogits, const void* dloss, int* bad_label, void* work,
                         size_t work_bytes, Stream s);
}  // namespace cuda
}  // namespace mc::kernels
