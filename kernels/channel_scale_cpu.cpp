// CPU twin of kernels/channel_scale.cu (contract in kernels/channel_scale.h).
#include <type_traits>

#include "engine/check.h"
#include "kernels/channel_scale.h"

namespace mc::kernels::cpu {
namespace {

template <bool CL> int64_t at(int64_t n, int64_t c, int64_t s, int64_t C, int64_t S) {
  return CL ? (n * S + s) * C + c : (n * C + c) * S + s;
}

template <class F> void by_type(int dt, int layout, const char* what, F&& f) {
  MC_CHECK(layout == NCDHW || layout == NDHWC, "kernels/channel_scale_cpu.cpp: ", what,
           ": unknown layout code ", layout);
  MC_CHECK(dt == F32 || dt == F64, "kernels/channel_scale_cpu.cpp: ", what,
           " takes f32 or f64, got ", dt_name(dt));
  const bool cl = layout == NDHWC;
  if (dt == F32)
    cl ? f(float{}, std::true_type{}) : f(float{}, std::false_type{});
  else
    cl ? f(double{}, std::true_type{}) : f(double{}, std::false_type{});
}

}  // namespace

void channel_scale_forward(const void* xv, const void* gv, void* yv, int dt, int64_t N, int64_t C,
                           int64_t S, int layout, Stream) {
  by_type(dt, layout, "channel_scale", [&](auto t, auto cl) {
    using T = decltype(t);
    constexpr bool CL = decltype(cl)::value;
    const T* x = static_cast<const T*>(xv);
    const T* g = static_cast<const T*>(gv);
    T* y = static_cast<T*>(yv);
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < N * C; ++nc) {
      const int64_t n = nc / C, c = nc % C;
      for (int64_t s = 0; s < S; ++s) y[at<CL>(n, c, s, C, S)] = x[at<CL>(n, c, s, C, S)] * g[nc];
    }
  });
}

void channel_scale_backward_gate(const void* xv, const void* dyv, void* dgv, int dt, int64_t N,
                                 int64_t C, int64_t S, int layout, Stream) {
  by_type(dt, layout, "channel_scale backward", [&](auto t, auto cl) {
    using T = decltype(t);
    constexpr bool CL = decltype(cl)::value;
    const T* x = static_cast<const T*>(xv);
    const T* dy = static_cast<const T*>(dyv);
    T* dg = static_cast<T*>(dgv);
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < N * C; ++nc) {
      const int64_t n = nc / C, c = nc % C;
      double acc = 0;
      for (int64_t s = 0; s < S; ++s)
        acc += double(dy[at<CL>(n, c, s, C, S)]) * double(x[at<CL>(n, c, s, C, S)]);
      dg[nc] = T(acc);
    }
  });
}

}  // namespace mc::kernels::cpu
