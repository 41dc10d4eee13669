#include <algorithm>
#include <cmath>

#include "kernels/softmax.h"

namespace mc::kernels::cpu {

template <class T> void softmax_forward(const T* x, T* y, int64_t R, int64_t C, bool log) {
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
void softmax_backward(const T* y, const T* dy, T* dx, int64_t R, int64_t C, bool log) {
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

#define MC_INST(T)                                                              \
  template void softmax_forward<T>(const T*, T*, int64_t, int64_t, bool);       \
  template void softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t, bool);
MC_INST(float)
MC_INST(double)
#undef MC_INST

}  // namespace mc::kernels::cpu
