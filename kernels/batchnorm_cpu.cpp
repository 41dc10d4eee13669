// CPU batch norm (contract in kernels/batchnorm.h). Both layouts visit each channel's values
// in the same (n, s) order, so NDHWC results equal NCDHW results bit for bit.
#include <cmath>
#include <type_traits>

#include "engine/check.h"
#include "kernels/batchnorm.h"

namespace mc::kernels::cpu {
constexpr const char* kWhere = "kernels/batchnorm_cpu.cpp";  // names the file in errors
namespace {

// Offset of (n, c, s) in [N, C, S] (NCDHW) or [N, S, C] (NDHWC).
template <bool CL> int64_t at(int64_t n, int64_t c, int64_t s, int64_t C, int64_t S) {
  return CL ? (n * S + s) * C + c : (n * C + c) * S + s;
}

template <class T, bool CL>
void forward_train(const T* x, const T* w, const T* b, T* y, T* rm, T* rv, T* save_mean,
                             T* save_invstd, int64_t N, int64_t C, int64_t S, double momentum,
                             double eps) {
  const double M = double(N * S);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    double sum = 0;
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t s = 0; s < S; ++s) sum += x[at<CL>(n, c, s, C, S)];
    }
    const double mean = sum / M;
    double sq = 0;  // two-pass variance: no cancellation
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t s = 0; s < S; ++s) {
        const T v = x[at<CL>(n, c, s, C, S)];
        sq += (v - mean) * (v - mean);
      }
    }
    const double var = sq / M, invstd = 1.0 / std::sqrt(var + eps);
    const double scale = (w ? double(w[c]) : 1.0) * invstd, shift = b ? double(b[c]) : 0.0;
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t s = 0; s < S; ++s) {
        const int64_t i = at<CL>(n, c, s, C, S);
        y[i] = T((x[i] - mean) * scale + shift);
      }
    }
    save_mean[c] = T(mean);
    save_invstd[c] = T(invstd);
    if (rm) rm[c] = T((1 - momentum) * rm[c] + momentum * mean);
    if (rv) rv[c] = T((1 - momentum) * rv[c] + momentum * (M > 1 ? sq / (M - 1) : var));
  }
}

template <class T, bool CL>
void forward_eval(const T* x, const T* w, const T* b, const T* rm, const T* rv, T* y,
                            int64_t N, int64_t C, int64_t S, double eps) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    const double invstd = 1.0 / std::sqrt(double(rv[c]) + eps);
    const double scale = (w ? double(w[c]) : 1.0) * invstd;
    const double shift = (b ? double(b[c]) : 0.0) - double(rm[c]) * scale;
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t s = 0; s < S; ++s) {
        const int64_t i = at<CL>(n, c, s, C, S);
        y[i] = T(x[i] * scale + shift);
      }
    }
  }
}

template <class T, bool CL>
void backward_train(const T* x, const T* dy, const T* w, const T* save_mean,
                              const T* save_invstd, T* dx, T* dw, T* db, int64_t N, int64_t C,
                              int64_t S) {
  const double M = double(N * S);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    const double mean = save_mean[c], invstd = save_invstd[c];
    double sdy = 0, sdyx = 0;  // sum(dy), sum(dy * xhat)
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t s = 0; s < S; ++s) {
        const int64_t i = at<CL>(n, c, s, C, S);
        sdy += dy[i];
        sdyx += dy[i] * (x[i] - mean) * invstd;
      }
    }
    if (dw) dw[c] = T(sdyx);
    if (db) db[c] = T(sdy);
    if (!dx) continue;
    const double wc = w ? double(w[c]) : 1.0, k = wc * invstd;
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t s = 0; s < S; ++s) {
        const int64_t i = at<CL>(n, c, s, C, S);
        const double xhat = (x[i] - mean) * invstd;
        dx[i] = T(k * (dy[i] - sdy / M - xhat * sdyx / M));
      }
    }
  }
}

template <class T, bool CL>
void backward_eval(const T* x, const T* dy, const T* w, const T* rm, const T* rv, T* dx,
                             T* dw, T* db, int64_t N, int64_t C, int64_t S, double eps) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    const double invstd = 1.0 / std::sqrt(double(rv[c]) + eps), mean = rm[c];
    const double k = (w ? double(w[c]) : 1.0) * invstd;
    double sdy = 0, sdyx = 0;
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t s = 0; s < S; ++s) {
        const int64_t i = at<CL>(n, c, s, C, S);
        sdy += dy[i];
        sdyx += dy[i] * (x[i] - mean) * invstd;
        if (dx) dx[i] = T(dy[i] * k);
      }
    }
    if (dw) dw[c] = T(sdyx);
    if (db) db[c] = T(sdy);
  }
}

template <class T> const T* in(const void* p) { return static_cast<const T*>(p); }
template <class T> T* out(void* p) { return static_cast<T*>(p); }

}  // namespace

void batchnorm_forward_train(const void* x, const void* w, const void* b, void* y, void* rm,
                             void* rv, void* save_mean, void* save_invstd, int dt, int layout,
                             int64_t N, int64_t C, int64_t S, double momentum, double eps,
                             Stream) {
  by_type<float, double>(dt, layout, kWhere, "batch_norm", [&](auto t, auto cl) {
    using T = decltype(t);
    forward_train<T, decltype(cl)::value>(in<T>(x), in<T>(w), in<T>(b), out<T>(y), out<T>(rm),
                                          out<T>(rv), out<T>(save_mean), out<T>(save_invstd), N,
                                          C, S, momentum, eps);
  });
}

void batchnorm_forward_eval(const void* x, const void* w, const void* b, const void* rm,
                            const void* rv, void* y, int dt, int layout, int64_t N, int64_t C,
                            int64_t S, double eps, Stream) {
  by_type<float, double>(dt, layout, kWhere, "batch_norm", [&](auto t, auto cl) {
    using T = decltype(t);
    forward_eval<T, decltype(cl)::value>(in<T>(x), in<T>(w), in<T>(b), in<T>(rm), in<T>(rv),
                                         out<T>(y), N, C, S, eps);
  });
}

void batchnorm_backward_train(const void* x, const void* dy, const void* w, const void* save_mean,
                              const void* save_invstd, void* dx, void* dw, void* db, int dt,
                              int layout, int64_t N, int64_t C, int64_t S, Stream) {
  by_type<float, double>(dt, layout, kWhere, "batch_norm backward", [&](auto t, auto cl) {
    using T = decltype(t);
    backward_train<T, decltype(cl)::value>(in<T>(x), in<T>(dy), in<T>(w), in<T>(save_mean),
                                           in<T>(save_invstd), out<T>(dx), out<T>(dw),
                                           out<T>(db), N, C, S);
  });
}

void batchnorm_backward_eval(const void* x, const void* dy, const void* w, const void* rm,
                             const void* rv, void* dx, void* dw, void* db, int dt, int layout,
                             int64_t N, int64_t C, int64_t S, double eps, Stream) {
  by_type<float, double>(dt, layout, kWhere, "batch_norm backward", [&](auto t, auto cl) {
    using T = decltype(t);
    backward_eval<T, decltype(cl)::value>(in<T>(x), in<T>(dy), in<T>(w), in<T>(rm), in<T>(rv),
                                          out<T>(dx), out<T>(dw), out<T>(db), N, C, S, eps);
  });
}

}  // namespace mc::kernels::cpu
