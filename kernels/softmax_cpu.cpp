#include <algorithm>
#include <cmath>

#include "engine/check.h"
#include "kernels/softmax.h"

namespace mc::kernels::cpu {
namespace {

template <class T> void forward(const T* x, T* y, int64_t R, int64_t C, bool log) {
#pragma omp parallel for schedule(static) if (R * C > (1 << 16))
  for (int64_t r = 0; r < R; ++r) {
    const T* xr = x + r * C;
    T* yr = y + r * C;
    const double m = *std::max_element(xr, xr + C);
    double s = 0;
    for (int64_t c = 0; c < C; ++c) s += std::exp(double(xr[c]) - m);
    const double lse = m + std::log(s);
    for (int64_t c = 0; c < C; ++c)
      yr[c] = log ? T(double(xr[c]) - lse) : T(std::exp(double(xr[c]) - lse));
  }
}

template <class T>
void backward(const T* y, const T* dy, T* dx, int64_t R, int64_t C, bool log) {
#pragma omp parallel for schedule(static) if (R * C > (1 << 16))
  for (int64_t r = 0; r < R; ++r) {
    const T* yr = y + r * C;
    const T* g = dy + r * C;
    T* d = dx + r * C;
    double s = 0;
    for (int64_t c = 0; c < C; ++c) s += log ? double(g[c]) : double(g[c]) * yr[c];
    for (int64_t c = 0; c < C; ++c)
      d[c] = log ? T(g[c] - std::exp(double(yr[c])) * s) : T(yr[c] * (g[c] - s));
  }
}

template <class F> void on_fp(int dt, const char* what, F&& f) {
  if (dt == F32) return f(float{});
  MC_CHECK(dt == F64, "kernels/softmax_cpu.cpp: ", what, " takes f32 or f64, got ", dt_name(dt));
  f(double{});
}

}  // namespace

void softmax_forward(const void* x, void* y, int dt, int64_t R, int64_t C, bool log, Stream) {
  on_fp(dt, "softmax", [&](auto t) {
    using T = decltype(t);
    forward(static_cast<const T*>(x), static_cast<T*>(y), R, C, log);
  });
}

void softmax_backward(const void* y, const void* dy, void* dx, int dt, int64_t R, int64_t C,
                      bool log, Stream) {
  on_fp(dt, "softmax backward", [&](auto t) {
    using T = decltype(t);
    backward(static_cast<const T*>(y), static_cast<const T*>(dy), static_cast<T*>(dx), R, C, log);
  });
}

}  // namespace mc::kernels::cpu
