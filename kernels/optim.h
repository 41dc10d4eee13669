// Optimizer updates over flat f32 arrays, PyTorch's exact semantics (torch.optim.AdamW / SGD,
// single-tensor "foreach=False" arithmetic), SAM's ascent step (Foret et al. 2021, the reference
// code davda54/sam) and schedule-free AdamW (Defazio et al. 2024, facebookresearch/schedule_free).
// Both backends round every f32 step alike: results agree bit for bit. The CPU twins also take
// double, for the float64 checks against PyTorch.
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

// Schedule-free AdamW's scalars for one step, derived on the host (engine/optim.cpp) as the
// reference code derives them: lr = lr * warm-up, ckp1 = weight / weight_sum,
// y_lr = lr * (beta1 * (1 - ckp1) - 1), bc2 = 1 - beta2^(k+1).
struct ScheduleFreeArgs {
  double lr = 0, ckp1 = 1, y_lr = 0, beta2 = 0.999, bc2 = 1, eps = 1e-8, weight_decay = 0;
};

namespace cpu {
void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamWArgs& a, Stream s);
void adamw_step(double* p, const double* g, double* m, double* v, int64_t n, const AdamWArgs& a, Stream s);
void sgd_step(float* p, const float* g, float* buf, int64_t n, const SGDArgs& a, Stream s);
void sgd_step(double* p, const double* g, double* buf, int64_t n, const SGDArgs& a, Stream s);
// SAM's ascent: old = p; p += g * rho / (sqrt(*sumsq) + 1e-12), where *sumsq is the squared L2
// norm of the whole gradient (read where it lives: on the GPU, no host sync).
void sam_perturb(float* p, const float* g, float* old, const float* sumsq, double rho, int64_t n, Stream s);
void sam_perturb(double* p, const double* g, double* old, const double* sumsq, double rho, int64_t n, Stream s);
// One schedule-free AdamW step on p = y (z, v its state): v = b2 v + (1-b2) g^2,
// u = g / (sqrt(v / bc2) + eps) + wd * y, y = lerp(y, z, ckp1) + y_lr * u, z -= lr * u.
void schedulefree_step(float* y, const float* g, float* z, float* v, int64_t n, const ScheduleFreeArgs& a, Stream s);
void schedulefree_step(double* y, const double* g, double* z, double* v, int64_t n, const ScheduleFreeArgs& a, Stream s);
// p = lerp(p, z, w) (torch.lerp's formula): y -> x with w = 1 - 1/beta1, x -> y with 1 - beta1.
void lerp_to(float* p, const float* z, double w, int64_t n, Stream s);
void lerp_to(double* p, const double* z, double w, int64_t n, Stream s);
}  // namespace cpu
namespace cuda {
void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamWArgs& a, Stream s);
void sgd_step(float* p, const float* g, float* buf, int64_t n, const SGDArgs& a, Stream s);
void sam_perturb(float* p, const float* g, float* old, const float* sumsq, double rho, int64_t n, Stream s);
void schedulefree_step(float* y, const float* g, float* z, float* v, int64_t n, const ScheduleFreeArgs& a, Stream s);
void lerp_to(float* p, const float* z, double w, int64_t n, Stream s);
}  // namespace cuda
}  // namespace mc::kernels
