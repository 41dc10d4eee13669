// CPU twins of kernels/pool.cu (contract in kernels/pool.h). Both layouts visit elements in the
// same order (only the address differs), so NDHWC results equal NCDHW results bit for bit.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "engine/check.h"
#include "kernels/pool.h"

namespace mc::kernels::cpu {
constexpr const char* kWhere = "kernels/pool_cpu.cpp";  // names the file in errors
namespace {

// Element (n, c, plane index p) of a [N, C, P] (NCDHW) or [N, P, C] (NDHWC) buffer.
template <bool CL> int64_t at(int64_t n, int64_t c, int64_t p, int64_t C, int64_t P) {
  return CL ? (n * P + p) * C + c : (n * C + c) * P + p;
}

// Calls f(n, c, od, oh, ow, o) for every output element, o its flat index in layout CL; the
// N x C planes are split across threads, so each output is written by one thread.
template <bool CL, class F>
void for_each_output(const PoolGeom& g, F&& f) {
  const int64_t oD = g.out(0), oH = g.out(1), oW = g.out(2), oS = oD * oH * oW;
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < g.N * g.C; ++nc) {
    const int64_t n = nc / g.C, c = nc % g.C;
    for (int64_t od = 0; od < oD; ++od)
      for (int64_t oh = 0; oh < oH; ++oh)
        for (int64_t ow = 0; ow < oW; ++ow) f(n, c, od, oh, ow, at<CL>(n, c, (od * oH + oh) * oW + ow, g.C, oS));
  }
}

template <class T, bool CL>
void maxpool_forward(const PoolGeom& g, const T* x, T* y, int32_t* argmax) {
  const int64_t inS = g.D * g.H * g.W;
  for_each_output<CL>(g, [&](int64_t n, int64_t c, int64_t od, int64_t oh, int64_t ow, int64_t o) {
    T best = -std::numeric_limits<T>::infinity();
    int64_t arg = -1;
    [&] {  // returns at the first NaN: it is the window's maximum, as in PyTorch
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
            const T v = x[at<CL>(n, c, idx, g.C, inS)];
            if (arg < 0 || v > best || std::isnan(v)) {
              best = v;
              arg = idx;
              if (std::isnan(v)) return;
            }
          }
        }
      }
    }();
    y[o] = best;
    argmax[o] = int32_t(arg);
  });
}

template <class T, bool CL>
void maxpool_backward(const PoolGeom& g, const T* dy, const int32_t* argmax, T* dx) {
  const int64_t oS = g.out(0) * g.out(1) * g.out(2), inS = g.D * g.H * g.W;
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < g.N * g.C; ++nc) {
    const int64_t n = nc / g.C, c = nc % g.C;
    for (int64_t p = 0; p < inS; ++p) dx[at<CL>(n, c, p, g.C, inS)] = T(0);
    for (int64_t o = 0; o < oS; ++o) {
      const int64_t i = at<CL>(n, c, o, g.C, oS);
      if (argmax[i] >= 0) dx[at<CL>(n, c, argmax[i], g.C, inS)] += dy[i];
    }
  }
}

// Window [lo, hi) of output o along axis a, clipped to the input (count_include_pad=False).
inline void window(const PoolGeom& g, int a, int64_t o, int64_t& lo, int64_t& hi) {
  const int64_t in = a == 0 ? g.D : a == 1 ? g.H : g.W;
  lo = o * g.stride[a] - g.pad[a];
  hi = std::min(lo + g.k[a], in);
  lo = std::max<int64_t>(lo, 0);
}

template <class T, bool CL>
void avgpool_forward(const PoolGeom& g, const T* x, T* y) {
  const int64_t inS = g.D * g.H * g.W;
  for_each_output<CL>(g, [&](int64_t n, int64_t c, int64_t od, int64_t oh, int64_t ow, int64_t o) {
    int64_t d0, d1, h0, h1, w0, w1;
    window(g, 0, od, d0, d1), window(g, 1, oh, h0, h1), window(g, 2, ow, w0, w1);
    T acc = T(0);
    for (int64_t d = d0; d < d1; ++d)
      for (int64_t h = h0; h < h1; ++h)
        for (int64_t w = w0; w < w1; ++w) acc += x[at<CL>(n, c, (d * g.H + h) * g.W + w, g.C, inS)];
    y[o] = acc / T((d1 - d0) * (h1 - h0) * (w1 - w0));
  });
}

// Output windows covering input index i along axis a: [first, last].
inline void covering(const PoolGeom& g, int a, int64_t i, int64_t& first, int64_t& last) {
  const int64_t p = i + g.pad[a], s = g.stride[a];
  first = p < g.k[a] ? 0 : (p - g.k[a]) / s + 1;
  last = std::min(p / s, g.out(a) - 1);
}

template <class T, bool CL>
void avgpool_backward(const PoolGeom& g, const T* dy, T* dx) {
  const int64_t oD = g.out(0), oH = g.out(1), oW = g.out(2), inS = g.D * g.H * g.W;
  const int64_t oS = oD * oH * oW;
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < g.N * g.C; ++nc) {
    const int64_t n = nc / g.C, c = nc % g.C;
    for (int64_t d = 0; d < g.D; ++d)
      for (int64_t h = 0; h < g.H; ++h)
        for (int64_t w = 0; w < g.W; ++w) {
          int64_t a0, a1, b0, b1, e0, e1;
          covering(g, 0, d, a0, a1), covering(g, 1, h, b0, b1), covering(g, 2, w, e0, e1);
          T acc = T(0);
          for (int64_t od = a0; od <= a1; ++od)
            for (int64_t oh = b0; oh <= b1; ++oh)
              for (int64_t ow = e0; ow <= e1; ++ow) {
                int64_t d0, d1, h0, h1, w0, w1;
                window(g, 0, od, d0, d1), window(g, 1, oh, h0, h1), window(g, 2, ow, w0, w1);
                const int64_t cnt = (d1 - d0) * (h1 - h0) * (w1 - w0);
                acc += dy[at<CL>(n, c, (od * oH + oh) * oW + ow, g.C, oS)] / T(cnt);
              }
          dx[at<CL>(n, c, (d * g.H + h) * g.W + w, g.C, inS)] = acc;
        }
  }
}

template <class T, bool CL>
void gap_forward(const T* x, T* y, int64_t N, int64_t C, int64_t S) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N * C; ++i) {
    const int64_t n = i / C, c = i % C;
    double acc = 0;
    for (int64_t s = 0; s < S; ++s) acc += x[at<CL>(n, c, s, C, S)];
    y[i] = T(acc / double(S));
  }
}

template <class T, bool CL>
void gap_backward(const T* dy, T* dx, int64_t N, int64_t C, int64_t S) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N * C; ++i) {
    const int64_t n = i / C, c = i % C;
    const T v = T(double(dy[i]) / double(S));
    for (int64_t s = 0; s < S; ++s) dx[at<CL>(n, c, s, C, S)] = v;
  }
}

}  // namespace

void avgpool3d_forward(const PoolGeom& g, const void* x, void* y, int dt, int layout, Stream) {
  by_type<float, double>(dt, layout, kWhere, "avg_pool3d", [&](auto t, auto cl) {
    using T = decltype(t);
    avgpool_forward<T, decltype(cl)::value>(g, static_cast<const T*>(x), static_cast<T*>(y));
  });
}

void avgpool3d_backward(const PoolGeom& g, const void* dy, void* dx, int dt, int layout, Stream) {
  by_type<float, double>(dt, layout, kWhere, "avg_pool3d backward", [&](auto t, auto cl) {
    using T = decltype(t);
    avgpool_backward<T, decltype(cl)::value>(g, static_cast<const T*>(dy), static_cast<T*>(dx));
  });
}

void maxpool3d_forward(const PoolGeom& g, const void* x, void* y, int32_t* argmax, int dt,
                       int layout, Stream) {
  MC_CHECK(g.D * g.H * g.W <= 0x7fffffff, "max_pool3d: plane of ", g.D * g.H * g.W,
           " voxels is too large for the i32 argmax");
  by_type<float, double>(dt, layout, kWhere, "max_pool3d", [&](auto t, auto cl) {
    using T = decltype(t);
    maxpool_forward<T, decltype(cl)::value>(g, static_cast<const T*>(x), static_cast<T*>(y),
                                            argmax);
  });
}

void maxpool3d_backward(const PoolGeom& g, const void* dy, const int32_t* argmax, void* dx, int dt,
                        int layout, Stream) {
  by_type<float, double>(dt, layout, kWhere, "max_pool3d backward", [&](auto t, auto cl) {
    using T = decltype(t);
    maxpool_backward<T, decltype(cl)::value>(g, static_cast<const T*>(dy), argmax,
                                             static_cast<T*>(dx));
  });
}

void avgpool_global_forward(const void* x, void* y, int dt, int64_t N, int64_t C, int64_t S,
                            int layout, Stream) {
  by_type<float, double>(dt, layout, kWhere, "global_avg_pool", [&](auto t, auto cl) {
    using T = decltype(t);
    gap_forward<T, decltype(cl)::value>(static_cast<const T*>(x), static_cast<T*>(y), N, C, S);
  });
}

void avgpool_global_backward(const void* dy, void* dx, int dt, int64_t N, int64_t C, int64_t S,
                             int layout, Stream) {
  by_type<float, double>(dt, layout, kWhere, "global_avg_pool backward", [&](auto t, auto cl) {
    using T = decltype(t);
    gap_backward<T, decltype(cl)::value>(static_cast<const T*>(dy), static_cast<T*>(dx), N, C, S);
  });
}

}  // namespace mc::kernels::cpu
