// Optimizer updates over flat f32 arrays, PyTorch's exact semantics (torch.optim.AdamW / SGD,
// single-tensor "foreach=False" arithmetic). Both backends round every step alike: results agree
// bit for bit.
#pragma once
#include <cstdint>

#include "kernels/common.h"

namespace mc::kernels {

struct AdamWArgs {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 1e-2;
  int64_t step = 1;  // 1-based step count after increment (bias correction)
};
struct SGDArgs {
  double lr = 1e-2, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
  bool first_step = false;  // momentum buffer is initialised to the gradient on the first step
};

namespace cpu {
void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamWArgs& a, Stream s);
void sgd_step(float* p, const float* g, float* buf, int64_t n, const SGDArgs& a, Stream s);
// float64, CPU only (golden runs against PyTorch in float64): the same arithmetic in double.
void adamw_step(double* p, const double* g, double* m, double* v, int64_t n, const AdamWArgs& a, Stream s);
void sgd_step(double* p, const double* g, double* buf, int64_t n, const SGDArgs& a, Stream s);
}  // namespace cpu
namespace cuda {
void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamWArgs& a, Stream s);
void sgd_step(float* p, const float* g, float* buf, int64_t n, const SGDArgs& a, Stream s);
}  // namespace cuda
}  // namespace mc::kernels
