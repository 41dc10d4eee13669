#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/pool.h"

namespace mc::kernels::cpu {

template <class T>
void maxpool3d_forward(const PoolGeom& g, const T* x, T* y, int64_t* argmax) {
  const int64_t oD = g.out(0), oH = g.out(1), oW = g.out(2), inS = g.D * g.H * g.W;
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < g.N * g.C; ++nc) {
    const T* xp = x + nc * inS;
    for (int64_t od = 0; od < oD; ++od)
      for (int64_t oh = 0; oh < oH; ++oh)
        for (int64_t ow = 0; ow < oW; ++ow) {
          T best = -std::numeric_limits<T>::infinity();
          int64_t arg = -1;
          for (int64_t a = 0; a < g.k[0]; ++a) {
            const int64_t id = od * g.stride[0] - g.pad[0] + a;
            if (id < 0 || id >= g.D) continue;
            for (int64_t b = 0; b < g.k[1]; ++b) {
              const int64_t ih = oh * g.stride[1] - g.pad[1] + b;
              if (ih < 0 || ih >= g.H) continue;
              for (int64_t e = 0; e < g.k[2]; ++e) {
                const int64_t iw = ow * g.stride[2] - g.pad[2] + e;
                if (iw < 0 || iw >= g.W) continue;
                const int64_t idx = (id * g.H + ih) * g.W + iw;
                const T v = xp[idx];
                if (arg < 0 || v > best || std::isnan(v)) {
                  best = v;
                  arg = idx;
                  if (std::isnan(v)) goto done;
                }
              }
            }
          }
        done:
          const int64_t o = nc * oD * oH * oW + (od * oH + oh) * oW + ow;
          y[o] = best;
          argmax[o] = arg;
        }
  }
}

template <class T>
void maxpool3d_backward(const PoolGeom& g, const T* dy, const int64_t* argmax, T* dx) {
  const int64_t oS = g.out(0) * g.out(1) * g.out(2), inS = g.D * g.H * g.W;
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < g.N * g.C; ++nc) {
    T* d = dx + nc * inS;
    std::fill(d, d + inS, T(0));
    for (int64_t o = 0; o < oS; ++o) {
      const int64_t a = argmax[nc * oS + o];
      if (a >= 0) d[a] += dy[nc * oS + o];
    }
  }
}

template <class T> void avgpool_global_forward(const T* x, T* y, int64_t NC, int64_t S) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < NC; ++i) {
    double acc = 0;
    for (int64_t s = 0; s < S; ++s) acc += x[i * S + s];
    y[i] = T(acc / double(S));
  }
}

template <class T> void avgpool_global_backward(const T* dy, T* dx, int64_t NC, int64_t S) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < NC; ++i) {
    const T v = T(double(dy[i]) / double(S));
    std::fill(dx + i * S, dx + (i + 1) * S, v);
  }
}

#define MC_INST(T)                                                                     \
  template void maxpool3d_forward<T>(const PoolGeom&, const T*, T*, int64_t*);          \
  template void maxpool3d_backward<T>(const PoolGeom&, const T*, const int64_t*, T*);   \
  template void avgpool_global_forward<T>(const T*, T*, int64_t, int64_t);              \
  template void avgpool_global_backward<T>(const T*, T*, int64_t, int64_t);
MC_INST(float)
MC_INST(double)
#undef MC_INST

}  // namespace mc::kernels::cpu
