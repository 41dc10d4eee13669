#include <cmath>

#include "kernels/optim.h"

namespace mc::kernels::cpu {
namespace {

// PyTorch's _single_tensor_adamw in float arithmetic: decay first, then the moments, then
// param -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps).
template <class T>
void adamw(T* p, const T* g, T* m, T* v, int64_t n, const AdamWArgs& a) {
  // Scalars in double as Python computes them, then used as T like torch's CPU kernels.
  const double bc1 = 1.0 - std::pow(a.beta1, double(a.step));
  const double bc2 = 1.0 - std::pow(a.beta2, double(a.step));
  const T step_size = T(a.lr / bc1), bc2_sqrt = T(std::sqrt(bc2));
  const T decay = T(1.0 - a.lr * a.weight_decay), w1 = T(1.0 - a.beta1);
  const T b2 = T(a.beta2), w2 = T(1.0 - a.beta2), eps = T(a.eps);
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    p[i] *= decay;
    m[i] += w1 * (g[i] - m[i]);  // torch's lerp for weight < 0.5
    v[i] = v[i] * b2 + w2 * g[i] * g[i];
    const T denom = std::sqrt(v[i]) / bc2_sqrt + eps;
    p[i] -= step_size * (m[i] / denom);
  }
}

template <class T>
void sgd(T* p, const T* g, T* buf, int64_t n, const SGDArgs& a) {
  const T lr = T(a.lr), mom = T(a.momentum), damp = T(1.0 - a.dampening);
  const T wd = T(a.weight_decay);
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    T d = g[i];
    if (wd != T(0)) d += wd * p[i];
    if (mom != T(0)) {
      buf[i] = a.first_step ? d : buf[i] * mom + damp * d;
      d = a.nesterov ? d + mom * buf[i] : buf[i];
    }
    p[i] -= lr * d;
  }
}

}  // namespace

void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamWArgs& a, Stream) {
  adamw(p, g, m, v, n, a);
}
void adamw_step(double* p, const double* g, double* m, double* v, int64_t n, const AdamWArgs& a, Stream) {
  adamw(p, g, m, v, n, a);
}
void sgd_step(float* p, const float* g, float* buf, int64_t n, const SGDArgs& a, Stream) {
  sgd(p, g, buf, n, a);
}
void sgd_step(double* p, const double* g, double* buf, int64_t n, const SGDArgs& a, Stream) {
  sgd(p, g, buf, n, a);
}

}  // namespace mc::kernels::cpu
