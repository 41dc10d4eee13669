// Batch norm over (N, spatial) per channel, NCDHW, PyTorch semantics: normalise with the biased
// batch variance, store the unbiased one in running_var, momentum m: r = (1 - m) r + m batch.
#pragma once
#include <cstdint>

namespace mc::kernels::cpu {
// Training: also writes save_mean / save_invstd (per channel) for backward, and updates the
// running statistics (when non-null). Statistics are accumulated in double.
template <class T>
void batchnorm_forward_train(const T* x, const T* w, const T* b, T* y, T* running_mean,
                             T* running_var, T* save_mean, T* save_invstd, int64_t N, int64_t C,
                             int64_t S, double momentum, double eps);
template <class T>
void batchnorm_forward_eval(const T* x, const T* w, const T* b, const T* running_mean,
                            const T* running_var, T* y, int64_t N, int64_t C, int64_t S, double eps);
// Gradients for the training-mode forward (batch statistics). dx, dw, db may be null.
template <class T>
void batchnorm_backward_train(const T* x, const T* dy, const T* w, const T* save_mean,
                              const T* save_invstd, T* dx, T* dw, T* db, int64_t N, int64_t C,
                              int64_t S);
// Gradients for the eval-mode forward (fixed running statistics).
template <class T>
void batchnorm_backward_eval(const T* x, const T* dy, const T* w, const T* running_mean,
                             const T* running_var, T* dx, T* dw, T* db, int64_t N, int64_t C,
                             int64_t S, double eps);
}  // namespace mc::kernels::cpu
