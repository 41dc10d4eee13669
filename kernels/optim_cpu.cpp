#include <cmath>

#include "kernels/optim.h"

namespace mc::kernels::cpu {
namespace {

// torch.lerp's formula for a scalar weight (two branches keep it exact at both ends).
template <class T>
inline T lerp(T a, T b, T w) {
  return w < T(0.5) ? a + w * (b - a) : b - (b - a) * (T(1) - w);
}

// PyTorch's _single_tensor_adamw: decay first, then the moments, then
// param -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps). Scalars in double as Python computes
// them, then used as T like torch's CPU kernels.
template <class T>
void adamw(T* p, const T* g, T* m, T* v, int64_t n, const AdamWArgs& a) {
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

// The reference: scale = rho / (grad_norm + 1e-12); e_w = p.grad * scale; p.add_(e_w).
template <class T>
void perturb(T* p, const T* g, T* old, const T* sumsq, double rho, int64_t n) {
  const T scale = T(rho) / (std::sqrt(*sumsq) + T(1e-12));
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    old[i] = p[i];
    p[i] += g[i] * scale;
  }
}

// adamw_schedulefree.py's step (foreach=False), in its order of operations.
template <class T>
void schedulefree(T* y, const T* g, T* z, T* v, int64_t n, const ScheduleFreeArgs& a) {
  const T b2 = T(a.beta2), w2 = T(1.0 - a.beta2), bc2 = T(a.bc2), eps = T(a.eps);
  const T wd = T(a.weight_decay), ckp1 = T(a.ckp1), y_lr = T(a.y_lr), lr = T(a.lr);
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    v[i] = v[i] * b2 + w2 * g[i] * g[i];
    const T denom = std::sqrt(v[i] / bc2) + eps;
    T u = g[i] / denom;
    if (wd != T(0)) u += wd * y[i];  // weight decay evaluated at y
    y[i] = lerp(y[i], z[i], ckp1);
    y[i] += y_lr * u;
    z[i] -= lr * u;
  }
}

template <class T>
void lerp_all(T* p, const T* z, double w, int64_t n) {
  const T wt = T(w);
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) p[i] = lerp(p[i], z[i], wt);
}

}  // namespace

void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamWArgs& a, Stream) {
  adamw(p, g, m, v, n, a);
}
void adamw_step(double* p, const double* g, double* m, double* v, int64_t n, const AdamWArgs& a, Stream) {
  adamw(p, g, m, v, n, a);
}
void sgd_step(float* p, const float* g, float* buf, int64_t n, const SGDArgs& a, Stream) { sgd(p, g, buf, n, a); }
void sgd_step(double* p, const double* g, double* buf, int64_t n, const SGDArgs& a, Stream) { sgd(p, g, buf, n, a); }
void sam_perturb(float* p, const float* g, float* old, const float* sumsq, double rho, int64_t n, Stream) {
  perturb(p, g, old, sumsq, rho, n);
}
void sam_perturb(double* p, const double* g, double* old, const double* sumsq, double rho, int64_t n, Stream) {
  perturb(p, g, old, sumsq, rho, n);
}
void schedulefree_step(float* y, const float* g, float* z, float* v, int64_t n, const ScheduleFreeArgs& a, Stream) {
  schedulefree(y, g, z, v, n, a);
}
void schedulefree_step(double* y, const double* g, double* z, double* v, int64_t n, const ScheduleFreeArgs& a,
                       Stream) {
  schedulefree(y, g, z, v, n, a);
}
void lerp_to(float* p, const float* z, double w, int64_t n, Stream) { lerp_all(p, z, w, n); }
void lerp_to(double* p, const double* z, double w, int64_t n, Stream) { lerp_all(p, z, w, n); }

}  // namespace mc::kernels::cpu
