#include <cmath>

#include "kernels/optim.h"

namespace mc::kernels::cpu {

// PyTorch's _single_tensor_adamw in float arithmetic: decay first, then the moments, then
// param -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps).
void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamWArgs& a, Stream) {
  // Scalars in double as Python computes them, then used as float like torch's CPU kernels.
  const double bc1 = 1.0 - std::pow(a.beta1, double(a.step));
  const double bc2 = 1.0 - std::pow(a.beta2, double(a.step));
  const float step_size = float(a.lr / bc1), bc2_sqrt = float(std::sqrt(bc2));
  const float decay = float(1.0 - a.lr * a.weight_decay), w1 = float(1.0 - a.beta1);
  const float b2 = float(a.beta2), w2 = float(1.0 - a.beta2), eps = float(a.eps);
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    p[i] *= decay;
    m[i] += w1 * (g[i] - m[i]);  // torch's lerp for weight < 0.5
    v[i] = v[i] * b2 + w2 * g[i] * g[i];
    const float denom = std::sqrt(v[i]) / bc2_sqrt + eps;
    p[i] -= step_size * (m[i] / denom);
  }
}

void sgd_step(float* p, const float* g, float* buf, int64_t n, const SGDArgs& a, Stream) {
  const float lr = float(a.lr), mom = float(a.momentum), damp = float(1.0 - a.dampening);
  const float wd = float(a.weight_decay);
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    float d = g[i];
    if (wd != 0.f) d += wd * p[i];
    if (mom != 0.f) {
      buf[i] = a.first_step ? d : buf[i] * mom + damp * d;
      d = a.nesterov ? d + mom * buf[i] : buf[i];
    }
    p[i] -= lr * d;
  }
}

}  // namespace mc::kernels::cpu
