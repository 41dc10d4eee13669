// Batch norm over (N, spatial) per channel, PyTorch semantics: normalise with the biased batch
// variance, store the unbiased one in running_var, momentum m: r = (1 - m) r + m batch.
// x, y, dx, dy: [N, C, S] (NCDHW) or [N, S, C] (NDHWC); per-channel tensors: C values of the
// same dtype. Statistics accumulate in double. CPU only, f32 and f64: the CUDA path is cuDNN
// (engine/cuda/bn.cpp), which takes the same layouts.
#pragma once
#include <cstdint>

#include "kernels/common.h"

namespace mc::kernels::cpu {
// Training: also writes save_mean / save_invstd (per channel) for backward, and updates the
// running statistics (when non-null). w, b may be null (affine = False).
void batchnorm_forward_train(const void* x, const void* w, const void* b, void* y,
                             void* running_mean, void* running_var, void* save_mean,
                             void* save_invstd, int dt, int layout, int64_t N, int64_t C,
                             int64_t S, double momentum, double eps, Stream s);
void batchnorm_forward_eval(const void* x, const void* w, const void* b, const void* running_mean,
                            const void* running_var, void* y, int dt, int layout, int64_t N,
                            int64_t C, int64_t S, double eps, Stream s);
// Gradients for the training-mode forward (batch statistics). dx, dw, db may be null.
void batchnorm_backward_train(const void* x, const void* dy, const void* w, const void* save_mean,
                              const void* save_invstd, void* dx, void* dw, void* db, int dt,
                              int layout, int64_t N, int64_t C, int64_t S, Stream s);
// Gradients for the eval-mode forward (fixed running statistics).
void batchnorm_backward_eval(const void* x, const void* dy, const void* w,
                             const void* running_mean, const void* running_var, void* dx, void* dw,
                             void* db, int dt, int layout, int64_t N, int64_t C, int64_t S,
                             double eps, Stream s);
}  // namespace mc::kernels::cpu
