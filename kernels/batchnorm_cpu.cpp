#include <cmath>

#include "kernels/batchnorm.h"

namespace mc::kernels::cpu {

template <class T>
void batchnorm_forward_train(const T* x, const T* w, const T* b, T* y, T* rm, T* rv, T* save_mean,
                             T* save_invstd, int64_t N, int64_t C, int64_t S, double momentum,
                             double eps) {
  const double M = double(N * S);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    double sum = 0;
    for (int64_t n = 0; n < N; ++n) {
      const T* p = x + (n * C + c) * S;
      for (int64_t s = 0; s < S; ++s) sum += p[s];
    }
    const double mean = sum / M;
    double sq = 0;  // two-pass variance: no cancellation
    for (int64_t n = 0; n < N; ++n) {
      const T* p = x + (n * C + c) * S;
      for (int64_t s = 0; s < S; ++s) sq += (p[s] - mean) * (p[s] - mean);
    }
    const double var = sq / M, invstd = 1.0 / std::sqrt(var + eps);
    const double scale = (w ? double(w[c]) : 1.0) * invstd, shift = b ? double(b[c]) : 0.0;
    for (int64_t n = 0; n < N; ++n) {
      const T* p = x + (n * C + c) * S;
      T* q = y + (n * C + c) * S;
      for (int64_t s = 0; s < S; ++s) q[s] = T((p[s] - mean) * scale + shift);
    }
    save_mean[c] = T(mean);
    save_invstd[c] = T(invstd);
    if (rm) rm[c] = T((1 - momentum) * rm[c] + momentum * mean);
    if (rv) rv[c] = T((1 - momentum) * rv[c] + momentum * (M > 1 ? sq / (M - 1) : var));
  }
}

template <class T>
void batchnorm_forward_eval(const T* x, const T* w, const T* b, const T* rm, const T* rv, T* y,
                            int64_t N, int64_t C, int64_t S, double eps) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    const double invstd = 1.0 / std::sqrt(double(rv[c]) + eps);
    const double scale = (w ? double(w[c]) : 1.0) * invstd;
    const double shift = (b ? double(b[c]) : 0.0) - double(rm[c]) * scale;
    for (int64_t n = 0; n < N; ++n) {
      const T* p = x + (n * C + c) * S;
      T* q = y + (n * C + c) * S;
      for (int64_t s = 0; s < S; ++s) q[s] = T(p[s] * scale + shift);
    }
  }
}

template <class T>
void batchnorm_backward_train(const T* x, const T* dy, const T* w, const T* save_mean,
                              const T* save_invstd, T* dx, T* dw, T* db, int64_t N, int64_t C,
                              int64_t S) {
  const double M = double(N * S);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    const double mean = save_mean[c], invstd = save_invstd[c];
    double sdy = 0, sdyx = 0;  // sum(dy), sum(dy * xhat)
    for (int64_t n = 0; n < N; ++n) {
      const T* p = x + (n * C + c) * S;
      const T* g = dy + (n * C + c) * S;
      for (int64_t s = 0; s < S; ++s) {
        sdy += g[s];
        sdyx += g[s] * (p[s] - mean) * invstd;
      }
    }
    if (dw) dw[c] = T(sdyx);
    if (db) db[c] = T(sdy);
    if (!dx) continue;
    const double wc = w ? double(w[c]) : 1.0, k = wc * invstd;
    for (int64_t n = 0; n < N; ++n) {
      const T* p = x + (n * C + c) * S;
      const T* g = dy + (n * C + c) * S;
      T* q = dx + (n * C + c) * S;
      for (int64_t s = 0; s < S; ++s) {
        const double xhat = (p[s] - mean) * invstd;
        q[s] = T(k * (g[s] - sdy / M - xhat * sdyx / M));
      }
    }
  }
}

template <class T>
void batchnorm_backward_eval(const T* x, const T* dy, const T* w, const T* rm, const T* rv, T* dx,
                             T* dw, T* db, int64_t N, int64_t C, int64_t S, double eps) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    const double invstd = 1.0 / std::sqrt(double(rv[c]) + eps), mean = rm[c];
    const double k = (w ? double(w[c]) : 1.0) * invstd;
    double sdy = 0, sdyx = 0;
    for (int64_t n = 0; n < N; ++n) {
      const T* p = x + (n * C + c) * S;
      const T* g = dy + (n * C + c) * S;
      T* q = dx ? dx + (n * C + c) * S : nullptr;
      for (int64_t s = 0; s < S; ++s) {
        sdy += g[s];
        sdyx += g[s] * (p[s] - mean) * invstd;
        if (q) q[s] = T(g[s] * k);
      }
    }
    if (dw) dw[c] = T(sdyx);
    if (db) db[c] = T(sdy);
  }
}

#define MC_INST(T)                                                                              \
  template void batchnorm_forward_train<T>(const T*, const T*, const T*, T*, T*, T*, T*, T*,    \
                                           int64_t, int64_t, int64_t, double, double);          \
  template void batchnorm_forward_eval<T>(const T*, const T*, const T*, const T*, const T*, T*, \
                                          int64_t, int64_t, int64_t, double);                   \
  template void batchnorm_backward_train<T>(const T*, const T*, const T*, const T*, const T*,   \
                                            T*, T*, T*, int64_t, int64_t, int64_t);             \
  template void batchnorm_backward_eval<T>(const T*, const T*, const T*, const T*, const T*,    \
                                           T*, T*, T*, int64_t, int64_t, int64_t, double);
MC_INST(float)
MC_INST(double)
#undef MC_INST

}  // namespace mc::kernels::cpu
